"""One worker against two (or any counts): interleaved rounds of ``tidings bench --url``.

    .venv/bin/python bench/workers_ab.py --rounds 3 --workers 1,2 -- --duration 5 private group

Each run gets a fresh PostgreSQL database and Redis prefix and its own
``tidings serve --workers N`` on a free loopback port (rate limits off,
cheap password hashing, as ``tidings bench --spawn`` sets them), waits
until N nodes answer ``/readyz``, runs ``tidings bench --url`` with the
arguments after ``--`` (labelled ``workers N``), stops the server with
SIGTERM (it must exit 0) and drops the database. Rounds alternate the
counts (1, 2, 1, 2, ...), so a machine that slows down mid-session
disturbs both sides alike. ``bench/summarize.py`` on the results file
gives each label's medians. docs/operations.md (Sizing) explains the use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tidings.harness.spawn import CHEAP_HASHING, ServerProcess, serve_command, serve_env

SERVER_SETTINGS = {
    "TIDINGS_RATE_LIMIT_CONNECTION": "0",
    "TIDINGS_RATE_LIMIT_USER": "0",
    "TIDINGS_MAX_CONNECTIONS_PER_USER": "0",
    "TIDINGS_LOG_LEVEL": "WARNING",
    **CHEAP_HASHING,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="counts to compare, comma-separated")
    parser.add_argument(
        "--postgres",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="a URL that may CREATE DATABASE",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--redis-cluster", action="store_true", help="--redis names a node of a Redis Cluster"
    )
    parser.add_argument("--server-cpus", default="", help="taskset list for the server ('' any)")
    parser.add_argument("--label", default="workers", help="label prefix of the records")
    parser.add_argument("bench", nargs=argparse.REMAINDER, help="-- then tidings bench arguments")
    args = parser.parse_args()
    bench_args = args.bench[1:] if args.bench[:1] == ["--"] else args.bench
    counts = [int(n) for n in args.workers.split(",")]
    for round_ in range(1, args.rounds + 1):
        for count in counts:
            print(f"round {round_}: {count} worker(s)", flush=True)
            code = one_run(args, count, bench_args)
            if code != 0:
                print(f"round {round_}, {count} worker(s): exit {code}", file=sys.stderr)
                return code
    return 0


def one_run(args: argparse.Namespace, count: int, bench_args: list[str]) -> int:
    database = f"tidings_workers_{secrets.token_hex(4)}"
    asyncio.run(_database(args.postgres, f"CREATE DATABASE {database}"))
    try:
        url = make_url(args.postgres).set(database=database).render_as_string(False)
        env = serve_env(
            SERVER_SETTINGS
            | {
                "TIDINGS_DATABASE_URL": url,
                "TIDINGS_REDIS_URL": args.redis,
                "TIDINGS_REDIS_PREFIX": f"{database}:",
                "TIDINGS_WORKERS": str(count),
                "TIDINGS_REDIS_CLUSTER": "1" if args.redis_cluster else "",
            }
        )
        pin = ["taskset", "-c", args.server_cpus] if args.server_cpus else []
        server = ServerProcess(pin + serve_command(), env, cwd=Path.cwd(), discard_stdout=True)
        try:
            wait_for_nodes(server.url, count)
            bench = [sys.executable, "-m", "tidings", "bench", "--url", server.url]
            if count == 1:  # one process serves: its CPU is the server's (server_cpu_pct)
                bench += ["--server-pid", str(server.process.pid)]
            label = f"{args.label} {count}"
            bus = bus_messages(args.redis) if args.redis_cluster else None
            load = primaries_load(args.redis) if args.redis_cluster else None
            code = subprocess.call([*bench, "--label", label, *bench_args])
            if bus is not None and load is not None:
                now = bus_messages(args.redis)
                sent = ", ".join(f"{now[kind] - bus[kind]:,} {kind}" for kind in sorted(now))
                print(f"{label}: cluster bus pub/sub messages: {sent}", flush=True)
                print(f"{label}: per primary: {load_shares(load, primaries_load(args.redis))}")
                print(f"{label}: {slot_owners(args.redis, database + ':')}", flush=True)
        finally:
            stopped, _, drained = server.stop(timeout=60)
        if stopped != 0 or not drained:
            print(f"the server exited {stopped} (drained: {drained})", file=sys.stderr)
            return code or 1
        return code
    finally:
        asyncio.run(_database(args.postgres, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


def bus_messages(url: str) -> dict[str, int]:
    """Pub/sub messages the cluster's Redis processes sent each other over the
    bus so far: ``publish`` (a classic PUBLISH reaches every process) and
    ``publishshard`` (an SPUBLISH reaches its shard's replicas)."""
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(url)
    totals = {"publish": 0, "publishshard": 0}
    try:
        for node in client.get_nodes():
            info = client.cluster_info(target_nodes=node)
            for kind in totals:
                totals[kind] += int(info.get(f"cluster_stats_messages_{kind}_sent", 0))
    finally:
        client.close()
    return totals


def primaries_load(url: str) -> dict[str, tuple[float, int]]:
    """Each primary's CPU seconds (user + sys) and commands processed so far."""
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(url)
    load: dict[str, tuple[float, int]] = {}
    try:
        for node in client.get_primaries():
            info = client.info(target_nodes=node)
            cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
            load[node.name] = (cpu, int(info["total_commands_processed"]))
    finally:
        client.close()
    return load


def slot_owners(url: str, prefix: str) -> str:
    """Which primary holds the deployment's slot and which the chat-list
    copy's epoch (the whole copy up to stop 36; since, it spreads over every
    primary and only the epoch stays in one slot)."""
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(url)
    try:
        owners = [f"deployment on {client.get_node_from_key('{' + prefix + '}').name}"]
        for epoch in client.scan_iter(match="{" + prefix + "cl2:*epoch", count=10_000):
            owners.append(f"chat-list epoch on {client.get_node_from_key(epoch).name}")
    finally:
        client.close()
    return ", ".join(owners)


def load_shares(before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]) -> str:
    """What each primary did in between, busiest first: CPU seconds and commands."""
    done = {
        name: (after[name][0] - cpu, after[name][1] - commands)
        for name, (cpu, commands) in before.items()
        if name in after
    }
    return ", ".join(
        f"{name} {cpu:.2f} s CPU, {commands:,} commands"
        for name, (cpu, commands) in sorted(done.items(), key=lambda kv: -kv[1][0])
    )


def wait_for_nodes(url: str, count: int, within: float = 60) -> None:
    """Return once ``count`` distinct nodes answered GET /readyz (new connection each)."""
    seen: set[str] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
                seen.add(json.load(answer)["node"])
        except OSError:
            time.sleep(0.2)
        if len(seen) >= count:
            return
    raise RuntimeError(f"only {len(seen)} of {count} workers answered /readyz in {within}s")


async def _database(admin_url: str, statement: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
