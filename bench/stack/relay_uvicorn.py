"""Minimal IM relay as a raw ASGI app on uvicorn + uvloop.

Same protocol as relay_aiohttp.py. Stack benchmark, not production code.
ASGI can only carry text frames as ``str``, so the relayed JSON is encoded once with orjson and
decoded once to ``str``; uvicorn re-encodes it per recipient.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn
from uvicorn.config import WS_PROTOCOLS

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# user id -> ASGI send callables of that user's connections (dict used as an ordered set)
users: dict[int, dict[Send, None]] = {}


async def _send(send: Send, event: Message) -> None:
    try:
        await send(event)
    except Exception:  # uvicorn raises ClientDisconnected / OSError subclasses on dead peers
        pass


def _text(msg: Message) -> str | bytes:
    text = msg.get("text")
    return text if text is not None else msg.get("bytes") or b""


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["type"] != "websocket":
        return
    if (await receive())["type"] != "websocket.connect":
        return
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 4004})
        return
    await send({"type": "websocket.accept"})
    first = await receive()
    if first["type"] != "websocket.receive":
        return
    auth = orjson.loads(_text(first))
    if auth.get("type") != "auth":
        await send({"type": "websocket.close", "code": 4001})
        return
    user = int(auth["user"])
    users.setdefault(user, {})[send] = None
    try:
        while True:
            msg = await receive()
            if msg["type"] != "websocket.receive":
                break  # websocket.disconnect
            frame = orjson.loads(_text(msg))
            kind = frame.get("type")
            if kind == "send":
                conns = users.get(frame["to"])
                if conns:
                    data = orjson.dumps({"type": "message", "from": user, "body": frame["body"]})
                    event = {"type": "websocket.send", "text": data.decode()}
                    for s in tuple(conns):
                        await _send(s, event)
            elif kind == "gsend":
                data = orjson.dumps({"type": "message", "from": user, "body": frame["body"]})
                event = {"type": "websocket.send", "text": data.decode()}
                targets = [s for uid, ss in users.items() if uid != user for s in ss]
                for s in targets:
                    await _send(s, event)
    finally:
        conns = users.get(user)
        if conns is not None:
            conns.pop(send, None)
            if not conns:
                del users[user]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    ws_impl = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        ws=ws_impl,  # type: ignore[arg-type]
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=2048,
    )


if __name__ == "__main__":
    main()
