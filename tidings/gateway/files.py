"""``POST /api/v1/files`` and ``GET /api/v1/files/{id}`` (PROTOCOL-v2 §3): the HTTP of files.

Uploads are read as a stream (raw body, or the ``file`` part of a
multipart form) and handed to ``Files.upload`` chunk by chunk: the body is
never held whole, and aiohttp's ``client_max_size`` (which bounds bodies
read at once) does not apply; ``TIDINGS_MAX_FILE_BYTES`` does, while
reading. Downloads stream from the blob store with the headers a browser
needs: an exact type, no sniffing, a sandbox, ``ETag`` (the SHA-256),
``Range`` (one range; several are answered whole, as RFC 9110 allows).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from tidings.errors import bad_request
from tidings.files import RangeNotSatisfiable
from tidings.gateway.context import Edge
from tidings.gateway.http import authenticated_user, json_response, query_bool
from tidings.ids import UserId
from tidings.store import FileRecord

CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# Multipart fields before ``file`` are skipped, up to this many bytes in all.
_SKIPPED_FIELDS_BYTES = 64 * 1024


async def upload(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await authenticated_user(request, edge)
    record = await receive(request, edge, user)
    return json_response(edge.links.file_object(record), 201)


async def receive(request: web.Request, edge: Edge, user: UserId) -> FileRecord:
    """Stream the request's file into the store as ``user``'s upload.

    Shared by ``POST /api/v1/files`` and the integration API's upload."""
    name = request.query.get("name")
    duration_ms = _stated_duration(request.query.get("duration_ms"))
    if request.content_type == "multipart/form-data":
        try:
            part = await _file_part(await request.multipart())
        except (HttpProcessingError, ValueError, AssertionError) as error:
            # A body that is no multipart form (aiohttp asserts on some of them).
            raise bad_request(f"multipart: {str(error).splitlines()[0][:200]}") from None
        return await edge.files.upload(
            user, name or part.filename, _part_chunks(part), stated_duration_ms=duration_ms
        )
    return await edge.files.upload(
        user,
        name,
        request.content.iter_chunked(CHUNK),
        request.content_length,
        stated_duration_ms=duration_ms,
    )


def _stated_duration(text: str | None) -> int | None:
    """``?duration_ms=``, a tidings extension: the length a recording client
    measured, as a decimal integer (its bounds are checked by ``Files.upload``)."""
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        raise bad_request("duration_ms must be a whole number of milliseconds")
    return int(text)


async def _file_part(multipart: MultipartReader) -> BodyPartReader:
    skipped = 0
    while True:
        part = await multipart.next()
        if part is None:
            raise bad_request("multipart: no field named file")
        if isinstance(part, BodyPartReader) and part.name == "file":
            return part
        if not isinstance(part, BodyPartReader):
            raise bad_request("multipart: a nested multipart is not a file")
        while chunk := await part.read_chunk(CHUNK):
            skipped += len(chunk)
            if skipped > _SKIPPED_FIELDS_BYTES:
                raise bad_request("multipart: put the file field first")


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


async def download(request: web.Request) -> web.StreamResponse:
    edge = request.app[Edge.KEY]
    file_id = request.match_info["file_id"]
    thumbnail = query_bool(request, "thumbnail")
    query = request.query
    reader: UserId | None = None
    if "sig" in query or "exp" in query:
        edge.links.check(file_id, thumbnail, query.get("exp"), query.get("sig"))
    else:
        reader = await authenticated_user(request, edge)
    record = await edge.files.readable(file_id, reader)
    etag = f'"{record.digest}-t"' if thumbnail else f'"{record.digest}"'
    content_type = (record.thumbnail_type if thumbnail else record.content_type) or ""
    headers = {
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # Served from the API's origin: never let a file run as a page there.
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": disposition(content_type, record.name),
        "Cache-Control": "private, no-cache",
        "Accept-Ranges": "bytes",
    }
    if _matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    start, end = 0, None
    wanted = _range(request.headers.get("Range"), record.size if not thumbnail else None)
    if wanted is not None:
        start, end = wanted
    try:
        blob = await edge.files.read(record, thumbnail=thumbnail, start=start, end=end)
    except RangeNotSatisfiable as refused:
        headers["Content-Range"] = f"bytes */{refused.size}"
        return web.Response(status=416, headers=headers)
    async with blob:
        response = web.StreamResponse(status=206 if wanted is not None else 200, headers=headers)
        response.content_type = content_type
        response.content_length = blob.length
        if wanted is not None:
            response.headers["Content-Range"] = (
                f"bytes {blob.start}-{blob.end - 1}/{blob.info.size}"
            )
        await response.prepare(request)
        try:
            if request.method != "HEAD":
                async for chunk in blob:
                    await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            # The client went away mid-file (a player seeking, a tab closed):
            # nothing to answer and nothing wrong here; the reader is closed.
            pass
    return response


def disposition(content_type: str, name: str) -> str:
    """``inline`` for images and audio, ``attachment`` for the rest, with the
    name twice (RFC 6266): ASCII for old clients, UTF-8 in ``filename*``."""
    kind = "inline" if content_type.startswith(("image/", "audio/")) else "attachment"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def _range(header: str | None, size: int | None) -> tuple[int, int | None] | None:
    """One ``bytes=`` range as (start, end exclusive or None); None to answer whole.

    A suffix range (``bytes=-N``) needs the size: for a thumbnail, whose size
    the row does not keep, it is answered whole.
    """
    if not header:
        return None
    found = _RANGE.fullmatch(header.strip())
    if found is None:  # several ranges, or another unit: the whole file (RFC 9110 §14.2)
        return None
    first, last = found.group(1), found.group(2)
    if first:
        start = int(first)
        end = int(last) + 1 if last else None
        if end is not None and end <= start:
            return None  # an invalid range is ignored
        return start, end
    if last and size is not None:
        suffix = int(last)
        if suffix == 0:
            return size, None  # unsatisfiable: the store answers 416
        return max(0, size - suffix), None
    return None


def add_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post("/api/v1/files", upload),
            web.get("/api/v1/files/{file_id}", download),
        ]
    )
