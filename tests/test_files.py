"""PROTOCOL-v2 §3 from outside, on every stack: uploads, signed links, downloads,
sends that carry files, recall, the orphan collector (and its race with a
send), and the issue's list of bad input, each leaving nothing in the store."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from PIL import Image

from tests.conftest import Account, AccountFactory, RunningServer, ServerFactory, private
from tests.contract import assert_error
from tidings.app import files_location
from tidings.client import AdminClient, ApiError, Client, File
from tidings.config import Settings
from tidings.gateway.context import Edge
from tidings.models import now_ms

FILES = "/api/v1/files"


# -- what uploads are made of -------------------------------------------------------


def png(width: int = 640, height: int = 480, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 30) if mode == "RGB" else 0).save(out, "PNG")
    return out.getvalue()


def jpeg(width: int = 400, height: int = 300) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def png_bomb(side: int = 10_000) -> bytes:
    """A 1-bit PNG of side x side pixels (100 megapixels) in a few kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = (b"\x00" + b"\x00" * ((side + 7) // 8)) * side
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    frames = b"\x00\x00" * int(seconds * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(frames)) + frames
    return b"RIFF" + struct.pack("<I", len(body)) + body


def stored_blobs(server: RunningServer) -> list[Path]:
    """Every file in the server's blob folder, temporary ones included."""
    root = Path(server.settings.files_url.removeprefix("file://"))
    return sorted(p for p in root.rglob("*") if p.is_file())


async def raw_upload(
    account: Account,
    data: bytes,
    *,
    name: str | None = "x.bin",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    path = FILES if name is None else f"{FILES}?name={name}"
    return await account.client.request("POST", path, data, headers=headers)


async def get(
    server: RunningServer, path: str, token: str | None = None, **headers: str
) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    sent = dict(headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.get(server.url + path, headers=sent) as r:
        return r.status, await r.read(), r.headers


# -- uploads ---------------------------------------------------------------------------


async def test_an_image_upload_has_its_size_a_thumbnail_and_signed_links(
    server: RunningServer, alice: Account
) -> None:
    uploaded = await alice.client.upload(png(640, 480), name="photo.png")
    assert uploaded.content_type == "image/png"
    assert (uploaded.width, uploaded.height) == (640, 480)
    assert uploaded.size == len(png(640, 480))
    assert uploaded.name == "photo.png" and uploaded.duration_ms is None
    assert uploaded.url.startswith(f"{FILES}/{uploaded.id}?exp=")
    assert uploaded.thumbnail_url is not None
    status, body, headers = await get(server, uploaded.thumbnail_url)
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    thumbnail = Image.open(io.BytesIO(body))
    assert max(thumbnail.size) <= 320 and thumbnail.size == (320, 240)


async def test_a_turned_photo_reports_its_size_as_shown(alice: Account) -> None:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: turn a quarter clockwise to show
    Image.new("RGB", (400, 100), (1, 2, 3)).save(out, "JPEG", exif=exif)
    uploaded = await alice.client.upload(out.getvalue(), name="turned.jpg")
    assert (uploaded.width, uploaded.height) == (100, 400)
    assert uploaded.thumbnail_url is not None
    thumbnail = Image.open(io.BytesIO(await alice.client.download(uploaded.thumbnail_url)))
    assert thumbnail.size == (80, 320)


async def test_a_transparent_image_gets_a_png_thumbnail(alice: Account) -> None:
    uploaded = await alice.client.upload(png(32, 32, mode="RGBA"))
    assert uploaded.thumbnail_url is not None
    thumbnail = await alice.client.download(uploaded.thumbnail_url)
    assert thumbnail.startswith(b"\x89PNG")


async def test_the_type_comes_from_the_bytes_not_the_header(alice: Account) -> None:
    status, body = await raw_upload(
        alice,
        b"<html><script>alert(1)</script>",
        name="a.png",
        headers={"Content-Type": "image/png"},
    )
    assert status == 201, body
    assert body["content_type"] == "application/octet-stream"
    assert body["thumbnail_url"] is None and body["width"] is None
    status, body = await raw_upload(
        alice, jpeg(), name="not-a.txt", headers={"Content-Type": "text/plain"}
    )
    assert status == 201 and body["content_type"] == "image/jpeg", body
    assert (body["width"], body["height"]) == (400, 300)


async def test_a_wav_file_says_its_duration(alice: Account) -> None:
    uploaded = await alice.client.upload(wav(1.5), name="note.wav")
    assert uploaded.content_type == "audio/wav"
    assert uploaded.duration_ms == 1500
    assert uploaded.thumbnail_url is None


async def test_a_multipart_upload_takes_the_file_field_and_its_filename(
    server: RunningServer, alice: Account
) -> None:
    form = aiohttp.FormData()
    form.add_field("note", "ignored")
    form.add_field("file", png(20, 10), filename="form.png", content_type="text/plain")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.url + FILES, data=form, headers={"Authorization": f"Bearer {alice.client.token}"}
        ) as r,
    ):
        body = await r.json()
        assert r.status == 201, body
    assert body["name"] == "form.png" and body["content_type"] == "image/png"
    assert (body["width"], body["height"]) == (20, 10)


async def test_a_name_loses_its_path_and_control_characters(alice: Account) -> None:
    status, body = await raw_upload(
        alice, b"data", name="..%2F..%2Fetc%2Fpa%0Ass%E2%80%AEwd%00.txt"
    )
    assert status == 201, body
    assert body["name"] == "passwd.txt"
    status, body = await raw_upload(alice, b"data", name="C:%5Cdir%5C" + "n" * 400 + ".pdf")
    assert status == 201, body
    assert body["name"].endswith(".pdf") and len(body["name"]) == 200 and "\\" not in body["name"]
    status, body = await raw_upload(alice, b"data", name=None)
    assert status == 201 and body["name"] == "file", body


def test_files_default_to_a_folder_beside_the_sqlite_database(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'chat.db'}"
    url, base = files_location(Settings(database_url=database))
    assert (url, base) == ("file://files", tmp_path / "db")
    assert files_location(Settings()) == ("file://files", Path("./data"))
    other = Settings(database_url=database, files_url="file:///srv/files")
    assert files_location(other)[0] == "file:///srv/files"


# -- bad input: each refused, nothing left in the store -----------------------------


async def test_an_empty_body_is_refused_and_nothing_is_stored(
    server: RunningServer, alice: Account
) -> None:
    assert_error(await raw_upload(alice, b""), 422, "bad_request")
    assert stored_blobs(server) == []


async def test_a_truncated_png_is_refused_and_nothing_is_stored(
    server: RunningServer, alice: Account
) -> None:
    whole = png(300, 300)
    assert_error(
        await raw_upload(alice, whole[: len(whole) // 2], name="cut.png"), 422, "bad_request"
    )
    assert stored_blobs(server) == []


async def test_a_100_megapixel_png_of_a_few_kilobytes_is_refused(
    server: RunningServer, alice: Account
) -> None:
    bomb = png_bomb()
    assert len(bomb) < 64 * 1024
    assert_error(await raw_upload(alice, bomb, name="bomb.png"), 422, "bad_request")
    assert stored_blobs(server) == []
    assert (await alice.client.upload(png(8, 8))).width == 8  # the server keeps serving


async def test_over_the_size_limit_is_413_with_nothing_left_behind(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = await make_server(max_file_bytes=100_000)
    async with Client(server.url) as client:
        await client.signup("sizer", "correct horse")
        await client.login("sizer", "correct horse")
        account = Account(await client.me(), client, "sizer")
        assert_error(await raw_upload(account, b"x" * 100_001), 413, "too_large")

        # Without a Content-Length, the limit is met while reading.
        async def body() -> Any:
            for _ in range(40):
                yield b"y" * 10_000

        async with (
            aiohttp.ClientSession() as http,
            http.post(
                server.url + FILES, data=body(), headers={"Authorization": f"Bearer {client.token}"}
            ) as r,
        ):
            assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"
        assert stored_blobs(server) == []
        assert (await client.upload(b"x" * 100_000)).size == 100_000
        status, metrics = await client.request("GET", "/metrics")
        assert 'tidings_uploads_refused_total{reason="too_large"} 2.0' in str(metrics)


async def test_an_upload_cut_off_half_way_leaves_nothing(
    server: RunningServer, alice: Account
) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {FILES}?name=half.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        f"{alice.client.token}\r\nContent-Length: 1000000\r\n\r\n".encode()
        + b"z" * 300_000
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        await asyncio.sleep(0.05)
        if not stored_blobs(server):
            break
    assert stored_blobs(server) == []
    assert (await alice.client.upload(b"after")).size == 5  # still serving


async def test_a_failing_store_is_503_unavailable_and_the_next_upload_works(
    server: RunningServer, alice: Account
) -> None:
    files = server.app[Edge.KEY].files
    real = files._blobs

    class DiskFull:
        async def put(self, key: str, chunks: Any) -> Any:
            async for _ in chunks:
                raise OSError("no space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    files.use_blobs(DiskFull())  # type: ignore[arg-type]
    try:
        assert_error(await raw_upload(alice, b"data"), 503, "unavailable")
    finally:
        files.use_blobs(real)
    assert (await alice.client.upload(b"data")).size == 4


async def test_uploads_are_rate_limited_per_user(make_server: ServerFactory) -> None:
    server = await make_server(rate_limit_uploads=2)
    async with Client(server.url) as client:
        await client.signup("quick", "correct horse")
        await client.login("quick", "correct horse")
        await client.upload(b"1")
        await client.upload(b"2")
        with pytest.raises(ApiError) as refused:
            await client.upload(b"3")
        assert refused.value.status == 429 and refused.value.code == "rate_limited"


# -- downloads -------------------------------------------------------------------------


async def test_a_download_is_byte_exact_with_the_contract_headers(
    server: RunningServer, alice: Account
) -> None:
    data = bytes(range(256)) * 1000
    uploaded = await alice.client.upload(data, name="Grüße report.bin")
    status, body, headers = await get(server, uploaded.url)
    assert status == 200 and body == data
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Length"] == str(len(data))
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"Gr__e report.bin\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20report.bin"
    )
    etag = headers["ETag"]
    status, body, headers = await get(server, uploaded.url, **{"If-None-Match": etag})
    assert status == 304 and body == b""
    image = await alice.client.upload(png(10, 10))
    _, _, headers = await get(server, image.url)
    assert headers["Content-Disposition"].startswith("inline;")
    async with aiohttp.ClientSession() as http, http.head(server.url + uploaded.url) as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
        assert await r.read() == b""
    assert await alice.client.download(f"{FILES}/{uploaded.id}") == data  # with the token


async def test_a_file_of_several_mib_from_a_path_goes_up_and_down_byte_exact(
    alice: Account, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than the HTTP body limit (256 KiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    uploaded = await alice.client.upload(source)  # streamed from disk by the client
    assert (uploaded.name, uploaded.size) == ("big.bin", len(data))
    assert await alice.client.download(uploaded.url) == data


async def test_ranges_are_answered_206_and_past_the_end_416(
    server: RunningServer, alice: Account
) -> None:
    data = bytes(range(256)) * 40
    uploaded = await alice.client.upload(data)
    status, body, headers = await get(server, uploaded.url, Range="bytes=100-199")
    assert status == 206 and body == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    status, body, headers = await get(server, uploaded.url, Range="bytes=-10")
    assert status == 206 and body == data[-10:]
    status, body, headers = await get(server, uploaded.url, Range="bytes=10000-")
    assert status == 206 and body == data[10000:]
    status, body, headers = await get(server, uploaded.url, Range=f"bytes={len(data)}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


async def test_a_forged_or_expired_signature_is_403(server: RunningServer, alice: Account) -> None:
    uploaded = await alice.client.upload(b"secret")
    query = parse_qs(urlsplit(uploaded.url).query)
    exp, sig = query["exp"][0], query["sig"][0]
    forged = "0" * len(sig)
    for path in (
        f"{FILES}/{uploaded.id}?exp={exp}&sig={forged}",
        f"{FILES}/{uploaded.id}?exp={int(exp) + 1}&sig={sig}",
        f"{FILES}/{uploaded.id}?exp={exp}&thumbnail=1&sig={sig}",  # not the thumbnail's
        f"{FILES}/{uploaded.id}?exp={exp}",
        f"{FILES}/{uploaded.id}?exp={exp}&sig=%C2%85%C2%B6.",  # not ASCII (a fuzzer's 500)
    ):
        status, body, _ = await get(server, path)
        assert status == 403, (path, body)
    links = server.app[Edge.KEY].links
    expired = links.path(uploaded.id, now=now_ms() / 1000 - 7200)
    status, _, _ = await get(server, expired)
    assert status == 403
    status, _, _ = await get(server, f"{FILES}/{uploaded.id}")
    assert status == 401  # neither a signature nor a token


async def test_someone_elses_file_is_not_found_until_a_message_shows_it(
    server: RunningServer, alice: Account, bob: Account, carol: Account
) -> None:
    uploaded = await alice.client.upload(png(30, 20), name="p.png")
    for account in (bob, carol):
        with pytest.raises(ApiError) as refused:
            await account.client.download(f"{FILES}/{uploaded.id}")
        assert refused.value.status == 404
    # Someone else's file id cannot be sent.
    with pytest.raises(ApiError) as refused:
        await bob.client.send(private(alice, bob), None, kind="image", file_id=uploaded.id)
    assert refused.value.status == 404 and refused.value.code == "not_found"
    sent = await alice.client.send(private(alice, bob), "look", kind="image", file_id=uploaded.id)
    assert sent.file is not None and sent.file.id == uploaded.id and sent.body == "look"
    assert await bob.client.download(f"{FILES}/{uploaded.id}") == png(30, 20)
    with pytest.raises(ApiError) as refused:
        await carol.client.download(f"{FILES}/{uploaded.id}")
    assert refused.value.status == 404


# -- messages that carry files ------------------------------------------------------------


async def test_history_and_chat_list_carry_fresh_signed_links(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    sent = await alice.client.send_image(chat, png(50, 40), name="a.png", caption="hi")
    assert sent.kind == "image" and sent.file is not None
    attachment = sent.file
    assert (attachment.width, attachment.height, attachment.name) == (50, 40, "a.png")
    assert attachment.thumbnail_url is not None
    await asyncio.sleep(1.1)  # a second later: links are signed again, with a later exp
    [seen] = await bob.client.messages(chat, after=0)
    assert seen.file is not None and seen.file.url != attachment.url
    status, body, _ = await get(server, seen.file.url)
    assert status == 200 and body == png(50, 40)
    listed = await bob.client.chat_list()
    [entry] = listed.conversations
    assert entry.last_message is not None and entry.last_message.file is not None
    assert entry.last_message.file.url.startswith(f"{FILES}/{attachment.id}?exp=")
    status, _, _ = await get(server, entry.last_message.file.url)
    assert status == 200


async def test_a_message_event_carries_signed_links(alice: Account, bob: Account) -> None:
    async with await bob.client.connect() as socket_:
        sent = await alice.client.send_file(private(alice, bob), b"%PDF-1.4 ...", name="a.pdf")
        event = await socket_.next_event(timeout=5)
        assert event["type"] == "message"
        attachment = event["message"]["attachment"]
        assert attachment["id"] == sent.file.id if sent.file else False
        assert set(attachment) == {
            "id",
            "name",
            "size",
            "content_type",
            "width",
            "height",
            "duration_ms",
            "url",
            "thumbnail_url",
        }
        assert attachment["url"].startswith(f"{FILES}/") and attachment["thumbnail_url"] is None
        assert await bob.client.download(attachment["url"]) == b"%PDF-1.4 ..."


async def test_a_file_sent_over_the_websocket_is_acked_with_signed_links(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    uploaded = await alice.client.upload(png(16, 16))
    async with await alice.client.connect() as socket_:
        acked = await socket_.send(private(alice, bob), None, kind="image", file_id=uploaded.id)
    assert acked.file is not None and acked.file.thumbnail_url is not None
    status, body, _ = await get(server, acked.file.thumbnail_url)
    assert status == 200 and body.startswith(b"\xff\xd8\xff")


async def test_kind_image_with_a_file_that_is_no_image_is_422(alice: Account, bob: Account) -> None:
    uploaded = await alice.client.upload(b"plain text")
    with pytest.raises(ApiError) as refused:
        await alice.client.send(private(alice, bob), None, kind="image", file_id=uploaded.id)
    assert refused.value.status == 422
    with pytest.raises(ApiError) as refused:
        await alice.client.send(private(alice, bob), None, kind="voice", file_id=uploaded.id)
    assert refused.value.status == 422
    voice = await alice.client.send_voice(private(alice, bob), wav(0.5))
    assert voice.kind == "voice" and voice.file is not None and voice.file.duration_ms == 500


async def test_a_recall_stops_serving_the_file_to_members(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    sent = await alice.client.send_image(chat, png(10, 10))
    assert sent.file is not None
    signed = sent.file.url
    assert await bob.client.download(f"{FILES}/{sent.file.id}") == png(10, 10)
    await alice.client.recall(chat, sent.seq)
    [recalled, _notice] = await bob.client.messages(chat, after=0)
    assert recalled.recalled and recalled.attachment is None
    with pytest.raises(ApiError) as refused:
        await bob.client.download(f"{FILES}/{sent.file.id}")
    assert refused.value.status == 404
    status, _, _ = await get(server, signed)
    assert status == 404  # a link signed before the recall no longer serves it
    # Its uploader still may, until the orphan collector takes it.
    assert await alice.client.download(f"{FILES}/{sent.file.id}") == png(10, 10)


async def test_a_forward_carries_the_file_to_the_other_conversation(
    alice: Account, bob: Account, carol: Account
) -> None:
    sent = await alice.client.send_file(private(alice, bob), b"shared bytes", name="s.bin")
    forwarded = await bob.client.send(
        private(bob, carol), None, forward=(private(alice, bob), sent.seq)
    )
    assert forwarded.kind == "file" and forwarded.file is not None
    assert forwarded.file.id == sent.file.id if sent.file else False
    assert await carol.client.download(f"{FILES}/{forwarded.file.id}") == b"shared bytes"


async def test_a_backend_uploads_and_sends_in_a_users_name(
    make_server: ServerFactory,
) -> None:
    server = await make_server(service_token="backend-token-123")
    async with AdminClient(server.url, "backend-token-123") as admin:
        ann = await admin.create_user("ann")
        ben = await admin.create_user("ben")
        uploaded = await admin.upload_as(ann.id, png(12, 12), name="from-backend.png")
        assert isinstance(uploaded, File) and uploaded.width == 12
        low, high = sorted((ann.id, ben.id))
        sent = await admin.send_as(
            ann.id, f"p:{low}-{high}", None, kind="image", file_id=uploaded.id
        )
        assert sent.file is not None and sent.file.id == uploaded.id
        async with Client(server.url, await admin.mint_token(ben.id)) as ben_client:
            assert await ben_client.download(sent.file.url) == png(12, 12)


async def test_a_file_message_is_found_by_its_caption_and_its_file_name(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    await alice.client.send_file(chat, b"q3", name="Quarterly Report 报告.pdf", caption="numbers")
    await alice.client.send_image(chat, png(4, 4), name="beach.png")
    for query, expected in (("REPORT", 1), ("报告", 1), ("numbers", 1), ("beach", 1), ("png", 1)):
        found = await bob.client.search_messages(query)
        assert len(found.messages) == expected, (query, found)
    assert (await bob.client.search_messages("content_type")).messages == []


# -- the orphan collector -------------------------------------------------------------


async def test_orphans_are_collected_and_files_in_messages_are_kept(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    files = server.app[Edge.KEY].files
    kept = await alice.client.send_image(private(alice, bob), png(10, 10))
    orphan = await alice.client.upload(png(11, 11))
    assert len(stored_blobs(server)) == 4  # two files, two thumbnails
    assert await files.collect_orphans() == 0  # younger than a day
    later = now_ms() + 86_400_000 + 1000
    assert await files.collect_orphans(later) == 1
    assert len(stored_blobs(server)) == 2
    with pytest.raises(ApiError) as refused:
        await alice.client.download(f"{FILES}/{orphan.id}")
    assert refused.value.status == 404
    assert kept.file is not None
    assert await bob.client.download(kept.file.url) == png(10, 10)


async def test_a_send_that_commits_after_the_collector_looked_keeps_its_file(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    """The interleaving that loses files in a naive collector: it lists the
    orphans, a send attaches one, then it deletes what it listed."""
    edge = server.app[Edge.KEY]
    records = edge.files._records  # the store's side, to stop the collector half way
    uploaded = await alice.client.upload(b"raced bytes")
    cutoff = now_ms() + 1000
    [listed] = await records.orphans(cutoff, 10)
    assert listed.id == uploaded.id
    sent = await alice.client.send(private(alice, bob), None, kind="file", file_id=uploaded.id)
    assert not await records.delete_orphan(listed, cutoff)
    assert sent.file is not None
    assert await bob.client.download(sent.file.url) == b"raced bytes"


async def test_sends_racing_the_collector_never_lose_a_file(
    make_server: ServerFactory,
) -> None:
    server = await make_server(file_orphan_seconds=0, rate_limit_uploads=0)
    files = server.app[Edge.KEY].files
    async with Client(server.url) as a, Client(server.url) as b:
        ua = await a.signup("racer_a", "correct horse")
        await a.login("racer_a", "correct horse")
        ub = await b.signup("racer_b", "correct horse")
        await b.login("racer_b", "correct horse")
        low, high = sorted((ua.id, ub.id))
        chat = f"p:{low}-{high}"
        uploads = [await a.upload(f"file {i}".encode()) for i in range(24)]
        stop = asyncio.Event()

        async def collect() -> None:
            while not stop.is_set():
                await files.collect_orphans(now_ms() + 1000)

        async def send(uploaded: File) -> tuple[File, bool]:
            try:
                await a.send(chat, None, kind="file", file_id=uploaded.id)
                return uploaded, True
            except ApiError as refused:
                assert refused.code == "not_found"  # collected before the send: refused
                return uploaded, False

        collector = asyncio.create_task(collect())
        outcomes = await asyncio.gather(*(send(u) for u in uploads))
        stop.set()
        await collector
        await files.collect_orphans(now_ms() + 1000)
        for number, (uploaded, sent) in enumerate(outcomes):
            if sent:  # a message carries it: it is still there, for the peer too
                assert await b.download(f"{FILES}/{uploaded.id}") == f"file {number}".encode()
        carried = [m.file for m in await b.messages(chat, after=0) if m.file is not None]
        assert len(carried) == sum(sent for _, sent in outcomes)


# -- S3 ----------------------------------------------------------------------------------


async def test_upload_and_download_through_an_s3_store(
    make_server: ServerFactory, s3_files_url: str
) -> None:
    server = await make_server(files_url=s3_files_url)
    async with Client(server.url) as client:
        await client.signup("s3user", "correct horse")
        await client.login("s3user", "correct horse")
        data = png(64, 48)
        uploaded = await client.upload(data, name="s3.png")
        assert (uploaded.width, uploaded.height) == (64, 48)
        assert await client.download(uploaded.url) == data
        status, body, _ = await get(server, uploaded.url, Range="bytes=0-7")
        assert status == 206 and body == data[:8]
        assert uploaded.thumbnail_url is not None
        assert (await client.download(uploaded.thumbnail_url)).startswith(b"\xff\xd8\xff")


_ = AccountFactory  # the factories' types, for readers of these tests
