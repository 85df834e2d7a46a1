"""The peer: the usual Python stack doing tidings' relay, for side-by-side figures.

python-socketio (ASGI) on uvicorn, with its AsyncRedisManager when
``--redis`` is given (every emit then goes through Redis pub/sub, as a
multi-node deployment would). Same relay semantics as the tidings
workloads, nothing stored:

- ``auth`` ``{"user": id, "rooms": [...]}``: join ``u:<id>`` and the rooms; ack.
- ``send`` ``{"to": room, "body", "cmid"}``: one emit of ``message`` to the
  room (``u:<peer>`` for a private message, ``g:<name>`` for a group), the
  sending connection skipped; ack ``{"ok": true}`` to the sender.

Run: ``python bench/peers/socketio_relay.py --port 8090 [--redis redis://127.0.0.1:6379/0]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn


def build(redis_url: str | None) -> socketio.ASGIApp:
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins=[],
        max_http_buffer_size=64 * 1024,
    )

    @sio.on("auth")  # type: ignore[misc]
    async def auth(sid: str, data: dict[str, Any]) -> dict[str, bool]:
        await sio.enter_room(sid, f"u:{int(data['user'])}")
        for room in data.get("rooms", []):
            await sio.enter_room(sid, str(room))
        await sio.save_session(sid, {"user": int(data["user"])})
        return {"ok": True}

    @sio.on("send")  # type: ignore[misc]
    async def send(sid: str, data: dict[str, Any]) -> dict[str, bool]:
        session = await sio.get_session(sid)
        message = {"from": session["user"], "body": data["body"], "cmid": data["cmid"]}
        await sio.emit("message", message, room=str(data["to"]), skip_sid=sid)
        return {"ok": True}

    return socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--redis", help="Redis URL for AsyncRedisManager")
    args = parser.parse_args()
    uvicorn.run(
        build(args.redis),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets",
        log_level="warning",
        access_log=False,
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    main()
