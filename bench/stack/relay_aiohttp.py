"""Minimal IM relay on aiohttp + uvloop (stack benchmark, not production code).

Protocol (JSON text frames):
  client -> server  {"type": "auth", "user": N}               (first frame)
  client -> server  {"type": "send", "to": M, "body": "..."}  relay to all connections of user M
  client -> server  {"type": "gsend", "body": "..."}          fan out to every other connected user
  server -> client  {"type": "message", "from": N, "body": ...}
"""

from __future__ import annotations

import argparse

import orjson
import uvloop
from aiohttp import WSMsgType, web

TEXT = WSMsgType.TEXT

# user id -> open connections of that user (insertion-ordered dict used as a set)
users: dict[int, dict[web.WebSocketResponse, None]] = {}


async def _send(ws: web.WebSocketResponse, data: bytes) -> None:
    try:
        await ws.send_frame(data, TEXT)
    except (ConnectionError, RuntimeError):
        pass  # peer went away mid-relay; its own handler cleans up


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    first = await ws.receive()
    if first.type != TEXT:
        await ws.close()
        return ws
    auth = orjson.loads(first.data)
    if auth.get("type") != "auth":
        await ws.close(code=4001, message=b"auth required")
        return ws
    user = int(auth["user"])
    users.setdefault(user, {})[ws] = None
    try:
        async for msg in ws:
            if msg.type != TEXT:
                continue
            frame = orjson.loads(msg.data)
            kind = frame.get("type")
            if kind == "send":
                conns = users.get(frame["to"])
                if conns:
                    data = orjson.dumps({"type": "message", "from": user, "body": frame["body"]})
                    for c in tuple(conns):
                        await _send(c, data)
            elif kind == "gsend":
                data = orjson.dumps({"type": "message", "from": user, "body": frame["body"]})
                targets = [c for uid, cs in users.items() if uid != user for c in cs]
                for c in targets:
                    await _send(c, data)
    finally:
        conns = users.get(user)
        if conns is not None:
            conns.pop(ws, None)
            if not conns:
                del users[user]
    return ws


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    web.run_app(
        make_app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=2048,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
