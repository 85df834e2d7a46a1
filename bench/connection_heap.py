"""What one idle authenticated WebSocket costs the server's Python heap, and who owns it.

    .venv/bin/python bench/connection_heap.py [--connections 1000] [--lines 15]

Starts ``tidings serve`` (this checkout, a temporary SQLite database, port
picked free) under ``tracemalloc``, opens and closes 200 sockets to warm
every cache, snapshots the heap, holds N more authenticated sockets,
snapshots again and prints the difference per connection: by owner
(aiohttp, the event loop and its transports, tidings, other) and by the
line that allocated it. ``tidings bench connect`` gives the RSS figure;
this says where it goes (tracemalloc itself inflates RSS, so read RSS
there, not here). The client is aiohttp's, in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
WARM = 200


def serve(snapshot_dir: str) -> None:
    """The server side: tidings under tracemalloc; SIGUSR1 writes heap snapshot k."""
    import gc

    tracemalloc.start(8)
    taken = 0

    def dump(_signum: int, _frame: object) -> None:
        nonlocal taken
        gc.collect()
        taken += 1
        path = Path(snapshot_dir, f"heap{taken}")
        tracemalloc.take_snapshot().dump(f"{path}.tmp")
        os.replace(f"{path}.tmp", path)

    signal.signal(signal.SIGUSR1, dump)
    from tidings.cli import main

    sys.exit(main(["serve"]))


def _load_when_written(path: Path) -> tracemalloc.Snapshot:
    while not path.exists():
        time.sleep(0.05)
    return tracemalloc.Snapshot.load(str(path))


def owner(filename: str) -> str:
    if "aiohttp" in filename or "multidict" in filename or "yarl" in filename:
        return "aiohttp (request, parser, WebSocket reader/writer)"
    if "/tidings/" in filename:
        return "tidings"
    if "asyncio" in filename or "uvloop" in filename or "weakref" in filename:
        return "event loop (tasks, transports, sockets)"
    return "other"


async def hold(url: str, pid: int, workdir: str, count: int) -> None:
    async def snapshot(k: int) -> tracemalloc.Snapshot:
        os.kill(pid, signal.SIGUSR1)
        # The server writes the file under another name and renames it when whole.
        return await asyncio.to_thread(_load_when_written, Path(workdir, f"heap{k}"))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        account = {"username": "heap_probe", "password": "heap-probe-password"}
        await http.post(f"{url}/api/v1/users", json=account)
        async with http.post(f"{url}/api/v1/sessions", json=account) as answer:
            token = (await answer.json())["token"]

        async def connect() -> aiohttp.ClientWebSocketResponse:
            ws = await http.ws_connect(f"{url}/ws")
            await ws.send_json({"type": "auth", "token": token})
            frame = await ws.receive_json(timeout=30)
            if frame.get("type") != "auth_ok":
                raise RuntimeError(f"auth failed: {frame}")
            return ws

        async def batch(n: int) -> list[aiohttp.ClientWebSocketResponse]:
            sockets = []
            for start in range(0, n, 100):
                sockets += await asyncio.gather(*(connect() for _ in range(min(100, n - start))))
            return sockets

        for ws in await batch(WARM):
            await ws.close()
        await asyncio.sleep(1)
        before = await snapshot(1)
        held = await batch(count)
        await asyncio.sleep(2)
        after = await snapshot(2)
        for ws in held:
            await ws.close()
    report(before, after, count)


def report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, count: int) -> None:
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"Python heap per idle authenticated connection: {total / count:,.0f} B")
    owners: dict[str, int] = defaultdict(int)
    for s in stats:
        owners[owner(s.traceback[0].filename)] += s.size_diff
    for name, size in sorted(owners.items(), key=lambda item: -item[1]):
        print(f"  {size / count:7,.0f} B  {name}")
    print("by allocating line (the event loop's lines stand for C objects it made):")
    for s in stats[: ARGS.lines]:
        where = s.traceback[0]
        short = where.filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        each = f"{s.size_diff / count:7,.0f} B {s.count_diff / count:6.1f} blocks"
        print(f"  {each}  {short}:{where.lineno}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tidings-heap-") as workdir:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = dict(os.environ)
        env.update(
            TIDINGS_HOST="127.0.0.1",
            TIDINGS_PORT=str(port),
            TIDINGS_DATABASE_URL=f"sqlite+aiosqlite:///{workdir}/heap.db",
            TIDINGS_RATE_LIMIT_CONNECTION="0",
            TIDINGS_RATE_LIMIT_USER="0",
            TIDINGS_MAX_CONNECTIONS_PER_USER="1000000",
            TIDINGS_LOG_LEVEL="WARNING",
            TIDINGS_ARGON2_TIME_COST="1",
            TIDINGS_ARGON2_MEMORY_KIB="8192",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        )
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", workdir], env=env, stdout=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.2)
            url = f"http://127.0.0.1:{port}"
            asyncio.run(hold(url, server.pid, workdir, ARGS.connections))
        finally:
            server.terminate()
            server.wait(20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=15, help="allocating lines to list")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    ARGS = parser.parse_args()
    if ARGS.serve:
        serve(ARGS.serve)
    else:
        main()
