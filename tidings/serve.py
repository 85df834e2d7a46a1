"""One node: build the app, serve until SIGTERM or SIGINT, then drain and return.

``tidings serve`` runs this in its own process; with ``--workers N`` each
worker runs it on the listening socket the supervisor bound
(:mod:`tidings.workers`) instead of binding one itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from tidings import __version__, gc_tuning
from tidings.app import backends, build_app
from tidings.config import Settings
from tidings.errors import TidingsError, missing_extra

log = logging.getLogger("tidings")

#: How often a worker checks that its supervisor still runs.
ORPHAN_CHECK_SECONDS = 1.0


class StartupError(Exception):
    """The server could not start (database, Redis or port); the message says which."""


def run(main_coroutine: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (every platform but Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(main_coroutine)
    else:
        uvloop.run(main_coroutine)


async def serve_forever(
    settings: Settings,
    *,
    listener: socket.socket | None = None,
    announce: bool = True,
    supervisor: int | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain: close sockets with 1001, commit, return.

    ``listener``: a socket already bound and listening (a worker's, shared
    with its siblings); None binds ``settings.host:settings.port``.
    ``announce`` prints the "listening on" line on stdout (a worker leaves
    that to its supervisor). ``supervisor``: the pid of a worker's
    supervisor; should it die (SIGKILL, OOM), the worker drains as on
    SIGTERM rather than hold the port with no one to restart or stop it.
    """
    try:
        app = build_app(settings)
    except ModuleNotFoundError as exc:
        raise StartupError(missing_extra(exc.name or "")) from exc
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=10)
    try:
        await runner.setup()
        site: web.BaseSite
        if listener is None:
            site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        else:
            site = web.SockSite(runner, listener)
        await site.start()
    except (TidingsError, ConnectionError, OSError) as exc:
        await runner.cleanup()
        message = exc.message if isinstance(exc, TidingsError) else str(exc)
        raise StartupError(message) from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = None if supervisor is None else asyncio.create_task(_orphaned(supervisor, stop))
    address = _address(site, settings)
    # Startup made the modules, SQLAlchemy's and aiohttp's tables and the app.
    gc_tuning.settle()
    log.info("tidings %s listening on %s (%s)", __version__, address, backends(settings))
    if announce:
        print(f"tidings listening on {address}", flush=True)
    try:
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        log.info("shutting down")
        await runner.cleanup()


async def _orphaned(supervisor: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once this process's parent is no longer ``supervisor``."""
    # Polled: nothing portable tells a process that its parent died.
    while True:
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)
        if os.getppid() != supervisor:
            break
    log.warning("the supervisor (pid %d) is gone; stopping", supervisor)
    stop.set()


def _address(site: web.BaseSite, settings: Settings) -> str:
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else settings.port
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    return f"http://{host}:{port}"
