"""Minimal IM relay on websockets (new asyncio implementation) + uvloop.

Same protocol as relay_aiohttp.py. Stack benchmark, not production code.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

# user id -> open connections of that user (insertion-ordered dict used as a set)
users: dict[int, dict[ServerConnection, None]] = {}


async def _send(conn: ServerConnection, data: bytes) -> None:
    try:
        await conn.send(data, text=True)
    except ConnectionClosed:
        pass  # peer went away mid-relay; its own handler cleans up


async def handler(conn: ServerConnection) -> None:
    if conn.request is None or conn.request.path != "/ws":
        await conn.close(code=4004, reason="not found")
        return
    try:
        first = await conn.recv(decode=False)
    except ConnectionClosed:
        return
    auth = orjson.loads(first)
    if auth.get("type") != "auth":
        await conn.close(code=4001, reason="auth required")
        return
    user = int(auth["user"])
    users.setdefault(user, {})[conn] = None
    try:
        while True:
            try:
                raw = await conn.recv(decode=False)  # text frames as UTF-8 bytes, no decode
            except ConnectionClosed:
                break
            frame = orjson.loads(raw)
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
            conns.pop(conn, None)
            if not conns:
                del users[user]


async def serve_forever(host: str, port: int) -> None:
    async with serve(handler, host, port, backlog=2048) as server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    uvloop.install()
    asyncio.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
