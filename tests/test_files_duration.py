"""``POST /api/v1/files?duration_ms=N``, a tidings extension: the length a
recording client measured, kept for audio whose container gave none.

A browser's MediaRecorder streams WebM (Chromium) or Ogg (Firefox) with no
length in the first bytes the server reads; the recorder knows how long it
recorded. What the bytes say still wins (a WAV header), and the value is
ignored for anything that is not audio.
"""

from __future__ import annotations

import pytest

from tests.conftest import Account, RunningServer, private
from tests.contract import assert_error
from tests.test_files import png, raw_upload, stored_blobs, wav

# The start of a live WebM as MediaRecorder writes it: the EBML header
# (DocType "webm"), then a Segment and a Cluster of unknown size, no Duration.
WEBM_HEAD = (
    bytes.fromhex("1a45dfa3 9f 4286 81 01 42f7 81 01 42f2 81 04 42f3 81 08 4282 84")
    + b"webm"
    + bytes.fromhex("4287 81 04 4285 81 02")
    + bytes.fromhex("18538067 01ffffffffffffff 1f43b675 01ffffffffffffff")
)
OGG_HEAD = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead"


def webm(size: int = 2000) -> bytes:
    return WEBM_HEAD + b"\x00" * (size - len(WEBM_HEAD))


async def test_a_recorded_webm_keeps_the_length_its_client_measured(
    alice: Account, bob: Account
) -> None:
    status, body = await raw_upload(alice, webm(), name="voice.webm&duration_ms=1530")
    assert status == 201, body
    assert (body["content_type"], body["duration_ms"]) == ("audio/webm", 1530)
    sent = await alice.client.send(private(alice, bob), None, kind="voice", file_id=body["id"])
    assert sent.file is not None and sent.file.duration_ms == 1530
    # The reader sees it in the history as well (read back from the row).
    [seen] = await bob.client.messages(private(alice, bob))
    assert seen.file is not None and seen.file.duration_ms == 1530

    status, body = await raw_upload(alice, OGG_HEAD + b"\x00" * 500, name="v.ogg&duration_ms=61000")
    assert status == 201, body
    assert (body["content_type"], body["duration_ms"]) == ("audio/ogg", 61000)


async def test_without_the_hint_a_webm_has_no_length(alice: Account) -> None:
    status, body = await raw_upload(alice, webm(), name="voice.webm")
    assert status == 201 and body["duration_ms"] is None


async def test_what_the_container_says_wins_and_non_audio_ignores_the_hint(
    alice: Account,
) -> None:
    status, body = await raw_upload(alice, wav(1.5), name="note.wav&duration_ms=9000")
    assert status == 201 and body["duration_ms"] == 1500
    status, body = await raw_upload(alice, png(8, 8), name="a.png&duration_ms=9000")
    assert status == 201 and body["content_type"] == "image/png" and body["duration_ms"] is None
    status, body = await raw_upload(alice, b"plain notes", name="a.txt&duration_ms=9000")
    assert status == 201 and body["duration_ms"] is None


async def test_one_hour_is_the_longest_length_a_client_may_state(alice: Account) -> None:
    status, body = await raw_upload(alice, webm(), name="long.webm&duration_ms=3600000")
    assert status == 201 and body["duration_ms"] == 3_600_000


@pytest.mark.parametrize(
    "value", ["0", "-5", "3600001", "1.5", "1e3", "abc", "", "%EF%BC%91", "99999999999999"]
)
async def test_a_bad_length_is_422_and_nothing_is_kept(
    server: RunningServer, alice: Account, value: str
) -> None:
    assert_error(
        await raw_upload(alice, webm(), name=f"v.webm&duration_ms={value}"), 422, "bad_request"
    )
    assert stored_blobs(server) == []


async def test_the_python_client_sends_a_recording_with_its_length(
    alice: Account, bob: Account
) -> None:
    sent = await alice.client.send_voice(
        private(alice, bob), webm(), name="note.webm", duration_ms=2750
    )
    assert sent.kind == "voice"
    assert sent.file is not None and sent.file.duration_ms == 2750
    uploaded = await alice.client.upload(webm(), name="plain.webm")
    assert uploaded.duration_ms is None  # no hint, and the container says nothing
