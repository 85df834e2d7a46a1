"""``tidings bench``: parse the options, start (or find) the server, run the scenarios.

The parent process sets up (users, groups, seeded history), samples the
server with psutil, and reports; the load itself runs in child processes
(:mod:`tidings.bench.fleet`). It pins itself and its children to
``--load-cpus`` and a spawned server to ``--server-cpus``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tidings.bench import report
from tidings.bench.context import Context
from tidings.bench.fleet import raise_open_files_limit
from tidings.bench.probe import ServerProbe
from tidings.bench.scenarios import chatlist, connect, group, history, private
from tidings.bench.server import spawn_socketio_peer, spawn_tidings
from tidings.harness.spawn import ServerProcess

SCENARIOS = ("connect", "private", "private-open", "group", "chatlist", "history")
DEFAULT_SCENARIOS = ("connect", "private", "private-open", "group", "chatlist")
PEER_SCENARIOS = ("connect", "private", "private-open", "group")
QUICK = {
    "warmup": 0.2,
    "duration": 1.0,
    "pairs": 4,
    "window": 5,
    "rate": 400.0,
    "members": 12,
    "senders": 2,
    "group_window": 4,
    "connections": "40",
    "connect_users": 4,
    "conversations": 30,
    "history_messages": 2000,
    "history_conversations": 4,
    "processes": 2,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tidings bench",
        description="Load generator for tidings (and its python-socketio peer).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("scenarios", nargs="*", help=f"some of {', '.join(SCENARIOS)}, or all")
    where = p.add_argument_group("server")
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    where.add_argument("--spawn", action="store_true", help="start the server for the run")
    where.add_argument("--target", choices=("tidings", "socketio"), default="tidings")
    where.add_argument("--database", help="database URL (spawned tidings; history seeding)")
    where.add_argument(
        "--redis", help="Redis URL: the spawned server's, or the socketio peer's manager"
    )
    where.add_argument("--server-pid", type=int, help="sample this pid's CPU and RSS")
    where.add_argument("--server-cpus", default="0", help="taskset CPU list of a spawned server")
    where.add_argument("--load-cpus", default="1", help="CPU list of the load ('' = any)")
    run = p.add_argument_group("run")
    run.add_argument("--processes", type=int, default=2, help="load processes")
    run.add_argument("--repeat", type=int, default=1, help="runs of each scenario")
    run.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    run.add_argument("--duration", type=float, default=8.0, help="seconds measured")
    run.add_argument("--body-size", type=int, default=100, help="characters per message")
    run.add_argument("--quick", action="store_true", help="tiny sizes: a functional check")
    run.add_argument("--results", help="JSON-lines file or folder (default bench/results/)")
    run.add_argument("--label", default="", help="added to each record")
    run.add_argument("--profile", help="py-spy the server in each load run into this folder")
    sc = p.add_argument_group("scenarios")
    sc.add_argument("--pairs", type=int, default=100, help="private: sender/receiver pairs")
    sc.add_argument("--window", type=int, default=20, help="private: in flight per sender")
    sc.add_argument("--rate", type=float, default=10_000, help="private-open: msgs/s in all")
    sc.add_argument("--members", type=int, default=500, help="group: members, all online")
    sc.add_argument("--senders", type=int, default=2, help="group: members sending")
    sc.add_argument("--group-window", type=int, default=20, help="group: in flight per sender")
    sc.add_argument("--connections", default="10000", help="connect: counts, comma-separated")
    sc.add_argument("--connect-users", type=int, default=20, help="connect: users (tokens)")
    sc.add_argument("--conversations", type=int, default=1000, help="chatlist: of the user")
    sc.add_argument("--chatlist-limit", type=int, help="chatlist: ?limit= (server default)")
    sc.add_argument(
        "--mention-every",
        type=int,
        default=0,
        help="group: every Nth send @s --mentions members (v2 traffic; 0: none)",
    )
    sc.add_argument("--mentions", type=int, default=5, help="group: members each mention names")
    sc.add_argument(
        "--recall-every",
        type=int,
        default=0,
        help="private/group: every Nth send recalls the sender's last message instead",
    )
    sc.add_argument(
        "--typing-rate",
        type=float,
        default=0.0,
        help="group: typing frames/s from the members, round robin (v2 §5; 0: none)",
    )
    sc.add_argument(
        "--chatlist-recalls",
        type=int,
        default=0,
        help="chatlist: per conversation, a peer's mentions recalled (v2 counts' worst case)",
    )
    sc.add_argument("--http-concurrency", type=int, default=1, help="chatlist/history")
    sc.add_argument("--history-messages", type=int, default=10_000_000, help="history: rows")
    sc.add_argument("--history-conversations", type=int, default=100, help="history: spread")
    sc.add_argument("--page", type=int, default=50, help="history: page size")
    return p


def main(argv: list[str]) -> int:
    p = parser()
    options = p.parse_args(argv)
    if options.quick:
        explicit = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv}
        for name, value in QUICK.items():
            if name not in explicit:
                setattr(options, name, value)
    names = options.scenarios or list(DEFAULT_SCENARIOS)
    if "all" in names:
        names = list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if bool(options.url) == options.spawn:
        p.error("give either --url (a running server) or --spawn")
    if options.target == "socketio":
        names = [n for n in names if n in PEER_SCENARIOS]
    raise_open_files_limit()  # before spawning: the server inherits it
    load_cpus = tuple(int(c) for c in options.load_cpus.split(",") if c.strip())
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as workdir:
        spawner = _Spawner(options, workdir) if options.spawn else None
        try:
            server = spawner.start() if spawner else None
            if load_cpus:
                os.sched_setaffinity(0, load_cpus)
            url = server.url if server else options.url
            pid = server.pid if server else options.server_pid
            database = options.database
            if server and options.target == "tidings" and not database:
                database = spawner.sqlite_url() if spawner else None
            ctx = Context(
                url,
                options.target,
                options,
                ServerProbe(pid) if pid else None,
                database,
                load_cpus,
            )
            if spawner is not None:
                ctx.respawn = lambda: spawner.restart(ctx)
            records = _run_all(ctx, names)
        finally:
            if spawner is not None:
                spawner.stop()
    report.print_table(records)
    failures = ("lost", "duplicated", "errors", "unanswered")
    bad = [r for r in records if any(r.get(name) for name in failures)]
    return 1 if bad else 0


class _Spawner:
    """The spawned server of a run; restarted on the same database when a scenario asks."""

    def __init__(self, options: argparse.Namespace, workdir: str) -> None:
        self.options = options
        self.workdir = workdir
        self.server: ServerProcess | None = None

    def sqlite_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.workdir}/bench.db"

    def start(self) -> ServerProcess:
        o = self.options
        if o.target == "socketio":
            self.server = spawn_socketio_peer(o.redis, o.server_cpus, self.workdir)
        else:
            self.server = spawn_tidings(o.database, o.redis, o.server_cpus, self.workdir)
        return self.server

    def restart(self, ctx: Context) -> None:
        self.stop()
        server = self.start()
        ctx.retarget(server.url, ServerProbe(server.pid))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _run_all(ctx: Context, names: list[str]) -> list[dict[str, Any]]:
    import uvloop

    return uvloop.run(_scenarios(ctx, names))


async def _scenarios(ctx: Context, names: list[str]) -> list[dict[str, Any]]:
    o = ctx.options
    results_file = _results_file(o.results)
    records = []
    reference = machine_reference_ms()
    for name in names:
        variants = o.connections.split(",") if name == "connect" else [""]
        for variant in variants:
            for index in range(o.repeat):
                ctx.cache["scenario"] = name
                figures = await _one(ctx, name, variant)
                record = {
                    "scenario": name,
                    "target": ctx.target
                    + ("+redis" if o.redis and ctx.target != "tidings" else ""),
                    "database": _dialect(ctx.database_url) if ctx.target == "tidings" else None,
                    "run": index + 1,
                    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "label": o.label,
                    "commit": _commit(),
                    **figures,
                    # Other work on the machine shows here (2 = server + load only).
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                    # The same machine is not equally fast every day: read
                    # figures of two sessions against this, never raw.
                    "machine_reference_ms": reference,
                }
                report.emit(record, results_file)
                records.append(record)
    return records


async def _one(ctx: Context, name: str, variant: str) -> dict[str, Any]:
    if name == "connect":
        return await connect.run(ctx, int(variant))
    if name == "private":
        return await private.run(ctx, open_loop=False)
    if name == "private-open":
        return await private.run(ctx, open_loop=True)
    if name == "group":
        return await group.run(ctx)
    if name == "chatlist":
        return await chatlist.run(ctx)
    return await history.run(ctx)


def machine_reference_ms() -> float:
    """Median time of a fixed pure-Python loop on the load's core, in ms.

    Two sessions on "the same" shared 2-core machine differed by 3x in
    absolute figures with no code change; a record carrying this lets a
    reader tell a slower code path from a slower machine.
    """
    times = []
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def _commit() -> str | None:
    """The source's git commit (``-dirty`` with local changes): figures belong to a version.

    ``TIDINGS_BENCH_COMMIT`` names it when the code runs from an export without ``.git``.
    """
    if os.environ.get("TIDINGS_BENCH_COMMIT"):
        return os.environ["TIDINGS_BENCH_COMMIT"]
    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None


def _dialect(url: str | None) -> str | None:
    if url is None:
        return None
    return url.split(":", 1)[0].split("+", 1)[0]


def _results_file(option: str | None) -> Path | None:
    if option == "-":
        return None
    if option is None:
        folder = Path("bench/results")
        if not folder.parent.is_dir():
            return None
        option = str(folder)
    path = Path(option)
    if path.suffix != ".jsonl":
        stamp = datetime.date.today().isoformat()
        path = path / f"{stamp}.jsonl"
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
