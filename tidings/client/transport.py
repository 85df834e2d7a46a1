"""The HTTP plumbing :class:`Client` and :class:`AdminClient` share: one aiohttp session,
the bearer token, JSON in and out, and refusals raised as ApiError."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Self, TypeVar

import aiohttp
import msgspec

from tidings.client.errors import error_of

Params = dict[str, str] | None
T = TypeVar("T")


def decode_or_text(data: bytes) -> object:
    """JSON of ``data``; None when empty; the text itself when it is not JSON."""
    if not data:
        return None
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data.decode("utf-8", "replace")


class HttpBase:
    """The HTTP plumbing shared by :class:`Client` and :class:`AdminClient`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session = session
        self._owns_session = session is None

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def _exchange(
        self, method: str, path: str, json: object, params: Params = None, headers: Params = None
    ) -> tuple[int, bytes]:
        sent = {"Accept": "application/json"}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        data: bytes | None = None
        if json is not None:
            data = json if isinstance(json, bytes) else msgspec.json.encode(json)
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        http = self._http()
        async with http.request(
            method, self.base_url + path, data=data, params=params, headers=sent
        ) as r:
            return r.status, await r.read()

    async def _call(
        self, method: str, path: str, json: object = None, params: Params = None
    ) -> bytes:
        status, data = await self._exchange(method, path, json, params)
        if not 200 <= status < 300:
            raise error_of(status, decode_or_text(data))
        return data

    async def _fetch(
        self, into: type[T], method: str, path: str, json: object = None, params: Params = None
    ) -> T:
        return msgspec.json.decode(await self._call(method, path, json, params), type=into)

    async def _upload(
        self,
        into: type[T],
        path: str,
        content: bytes | Path,
        name: str | None,
        duration_ms: int | None = None,
    ) -> T:
        """POST a file's bytes as the raw body: a path is streamed from disk, never read whole."""
        sent = {"Accept": "application/json", "Content-Type": "application/octet-stream"}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        if name is None and isinstance(content, Path):
            name = content.name
        params = {"name": name} if name else {}
        if duration_ms is not None:
            params["duration_ms"] = str(duration_ms)
        url = self.base_url + path
        with contextlib.ExitStack() as files:
            # A file object either way: aiohttp streams it in chunks (and warns
            # that a large bytes body would stall the loop).
            data: object = (
                files.enter_context(content.open("rb"))
                if isinstance(content, Path)
                else io.BytesIO(content)
            )
            async with self._http().post(url, data=data, params=params, headers=sent) as r:
                status, body = r.status, await r.read()
        if not 200 <= status < 300:
            raise error_of(status, decode_or_text(body))
        return msgspec.json.decode(body, type=into)

    async def download(self, url: str, *, headers: Params = None) -> bytes:
        """The bytes at a file's ``url`` (a signed path, or ``/api/v1/files/{id}``
        with this client's token); raises ApiError for a refusal."""
        sent = dict(headers or {})
        if self.token is not None and "sig=" not in url:
            sent["Authorization"] = f"Bearer {self.token}"
        full = url if url.startswith(("http://", "https://")) else self.base_url + url
        async with self._http().get(full, headers=sent) as r:
            status, body = r.status, await r.read()
        if not 200 <= status < 300:
            raise error_of(status, decode_or_text(body))
        return body

    async def request(
        self, method: str, path: str, json: object = None, *, headers: Params = None
    ) -> tuple[int, object]:
        """Send any request and return ``(status, body)``, whatever the status.

        ``path`` starts with ``/`` and may carry a query string. ``json`` is
        encoded as JSON, except ``bytes``, which go as the body verbatim (use
        them for malformed JSON); None sends no body. The body comes back
        decoded from JSON, None when empty, or as text when it is not JSON.
        Network failures still raise aiohttp's exceptions.
        """
        status, data = await self._exchange(method, path, json, headers=headers)
        return status, decode_or_text(data)
