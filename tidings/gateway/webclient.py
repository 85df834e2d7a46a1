"""The web client: ``GET /`` serves its page, ``GET /static/{name}`` its files,
``GET /sw.js`` its service worker (at the root, so its scope is the whole app).

The files are hand-written and live in the package (``tidings/web``); there is
no build step and nothing is fetched from elsewhere. They are read once, when
the routes are added, and served from memory with an ETag, so a browser
revalidates cheaply and always gets the version of the running server.

Every response here carries the secure headers: a Content-Security-Policy
that allows scripts, styles and images only from this origin and network
connections only to it (HTTP and its WebSocket), ``nosniff``, no referrer,
and no framing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

_CONTENT_TYPES = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
}
# A Host header we are willing to repeat in the CSP: a name or address and a port.
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


ASSETS = web.AppKey("web_assets", dict[str, Asset])


def load_assets() -> dict[str, Asset]:
    """The files of ``tidings/web`` by name (one level, known types only)."""
    folder = resources.files("tidings") / "web"
    assets: dict[str, Asset] = {}
    for entry in folder.iterdir():
        kind = _CONTENT_TYPES.get(entry.name.rpartition(".")[2])
        if kind is None or not entry.is_file():
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[entry.name] = Asset(body, kind, etag)
    return assets


def content_security_policy(host: str | None) -> str:
    connect = "'self'"
    if host and _HOST.fullmatch(host):
        # CSP3 browsers let 'self' cover ws:/wss: to this host; older ones need it said.
        connect += f" ws://{host} wss://{host}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        # Voice notes play from the same origin's signed file links.
        "media-src 'self'; "
        f"connect-src {connect}; manifest-src 'self'; worker-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def secure_headers(request: web.Request) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(request.host),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


def _serve(request: web.Request, name: str) -> web.Response:
    asset = request.app[ASSETS].get(name)
    if asset is None:
        raise web.HTTPNotFound(reason=f"no file {name!r}")
    headers = secure_headers(request) | {"ETag": asset.etag}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, headers=headers, content_type=asset.content_type, charset="utf-8"
    )


async def index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


async def static(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])


async def service_worker(request: web.Request) -> web.Response:
    # A worker's scope is at most its script's folder: /static/sw.js could not cover "/".
    return _serve(request, "sw.js")


def add_routes(app: web.Application) -> None:
    app[ASSETS] = load_assets()
    app.router.add_get("/", index)
    app.router.add_get("/sw.js", service_worker)
    # One path segment only: no "..", no folders, nothing outside the asset table.
    app.router.add_get(r"/static/{name:[A-Za-z0-9_\-]+\.[a-z]+}", static)
