"""An echo server on tidings' frame layer, for the Autobahn fuzzing suite.

A test-only aiohttp app: ``GET /`` upgrades exactly as tidings' ``/ws``
does (:func:`tidings.gateway.wire.take_over`) and echoes every text or
binary message back. Nothing else of tidings runs, so what the suite
checks is the frame layer alone. Run as
``python -m tests.autobahn_echo`` (prints ``port N`` once listening).
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from tidings.gateway import frames
from tidings.gateway.wire import Listener, WebSocketWire, take_over

# Autobahn's largest messages (cases 9.x) are 16 MiB; tidings' own limit
# (docs/protocol.md, 64 KiB by default) is a setting, not the frame layer's.
MAX_MESSAGE = 16 * 1024 * 1024 + 1024


class Echo:
    __slots__ = ("wire",)

    def __init__(self, wire: WebSocketWire) -> None:
        self.wire = wire

    def on_message(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.wire.write(frames.wire_text(data.encode()))
        else:
            # The same frame with the binary opcode (0x2) instead of text.
            self.wire.write(b"\x82" + frames.wire_text(data)[1:])

    def on_activity(self) -> None:
        pass

    def on_closed(self) -> None:
        pass


def _echo(wire: WebSocketWire) -> Listener:
    return Echo(wire)


async def upgrade(request: web.Request) -> web.StreamResponse:
    key = request.headers.get("Sec-WebSocket-Key", "")
    if request.headers.get("Upgrade", "").lower() != "websocket" or not key:
        raise web.HTTPBadRequest(text="GET / needs a WebSocket upgrade")
    take_over(request, key, MAX_MESSAGE, _echo)
    return web.Response(status=101)  # never written: the socket is the wire's


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_get("/", upgrade)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # noqa: SLF001 - the bound port when asked for 0
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    print(f"port {bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.host, arguments.port))


if __name__ == "__main__":
    main()
