"""An aiohttp app served on 127.0.0.1 at a free port: a server under test, or
a stand-in for what tidings talks to (a webhook receiver, a push service, a
business backend)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web


async def start_loopback(app: web.Application, **runner_options: Any) -> tuple[web.AppRunner, str]:
    """Start ``app``; its runner (the caller cleans it up) and its origin ``http://127.0.0.1:{port}``."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def serving(app: web.Application, **runner_options: Any) -> AsyncIterator[str]:
    """``app`` served for the block; yields its origin."""
    runner, origin = await start_loopback(app, **runner_options)
    try:
        yield origin
    finally:
        await runner.cleanup()
