"""``tidings soak``: the run itself — setup, warm-up, traffic with faults, settle, check, report.

Phases, and why each is there:

1. **setup**: users, groups and pairs over HTTP (:mod:`tidings.soak.world`);
2. **warm-up**: the same traffic for a few seconds, so that caches, pools
   and allocator arenas reach their working size before the baseline;
3. **baseline**: every client disconnected, ``/metrics`` read on each node
   (memory and asyncio tasks of an idle server);
4. **traffic**: every client runs its random loop until the deadline while,
   with ``--restart-every``, nodes are stopped (SIGTERM, once SIGKILL) and
   started again on the same port and database;
5. **settle**: what is still unacked is resent with the same client_msg_id
   over HTTP until stored, then every client catches up once more;
6. **end sample**: idle again, ``/metrics`` read again;
7. **check**: the whole history is read back and every invariant of
   :mod:`tidings.soak.check` is computed; the report is printed as one JSON
   line and a table, and the exit status says whether all held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tidings.client import CHAT_LIST_LIMIT, Client
from tidings.models import ChatList, Message
from tidings.soak.actor import PAGE, Actor
from tidings.soak.check import Figures, Findings, check_chat_lists, check_deliveries, check_store
from tidings.soak.nodes import Fault, Node, Sample, scrape
from tidings.soak.world import World, build_world

#: Memory growth fails the run only beyond both bounds: RSS is noisy.
MEMORY_GROWTH_RATIO = 0.5
MEMORY_GROWTH_BYTES = 50 * 1024 * 1024
#: Idle task counts may differ by a few (timers, a keep-alive being closed).
TASK_SLACK = 5
SETTLE_SECONDS = 30.0
#: Kinds of finding that mean something was lost, duplicated or reordered.
LOST = ("lost_acked", "lost_unacked", "lost_deliveries")
DUPLICATED = ("duplicated_stored", "duplicated_live")


@dataclass
class Options:
    duration: float
    clients: int
    urls: list[str] = field(default_factory=list)
    spawn: bool = False
    nodes: int = 1
    database: str | None = None
    redis: str | None = None
    seed: int = 1
    restart_every: float | None = None
    warmup: float | None = None


@dataclass
class NodeFigures:
    node: int
    rss_before_mb: float | None
    rss_after_mb: float | None
    tasks_before: float | None
    tasks_after: float | None
    restarted: bool
    verdict: str


@dataclass
class Report:
    ok: bool
    setup: dict[str, Any]
    traffic: dict[str, Any]
    faults: list[dict[str, Any]]
    checked: dict[str, Any]
    violations: dict[str, int]
    memory: list[NodeFigures]
    failures: list[str]
    examples: dict[str, list[str]]
    node_log_problems: list[str]

    @property
    def lost(self) -> int:
        return sum(self.violations.get(k, 0) for k in LOST)

    @property
    def duplicated(self) -> int:
        return sum(self.violations.get(k, 0) for k in DUPLICATED)

    @property
    def order_violations(self) -> int:
        return self.violations.get("order_violations", 0)

    def json_line(self) -> str:
        data = asdict(self)
        data.update(lost=self.lost, duplicated=self.duplicated)
        return json.dumps(data, sort_keys=True)

    def table(self) -> str:
        rows: list[tuple[str, object]] = []
        for section in (self.setup, self.traffic, self.checked):
            rows += list(section.items())
        rows += [("lost", self.lost), ("duplicated", self.duplicated)]
        rows += sorted(self.violations.items())
        for f in self.faults:
            rows.append(
                (
                    f"fault at {f['at_seconds']}s",
                    f"{f['signal']} node {f['node']}: exit {f['exit_code']}, "
                    f"stopped in {f['stop_seconds']}s, down {f['down_seconds']}s",
                )
            )
        for m in self.memory:
            rows.append(
                (
                    f"node {m.node} rss MB / tasks",
                    f"{m.rss_before_mb} -> {m.rss_after_mb} / "
                    f"{m.tasks_before} -> {m.tasks_after} ({m.verdict})",
                )
            )
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines.append("RESULT: " + ("ok" if self.ok else "FAILED: " + "; ".join(self.failures)))
        return "\n".join(lines)


async def run_soak(options: Options, say: Any = None) -> Report:
    """Run one soak and return its report (the caller prints it)."""
    note = say or (lambda text: print(text, file=sys.stderr, flush=True))
    if options.clients < 2:
        raise ValueError("a soak needs at least 2 clients")
    workdir = Path(tempfile.mkdtemp(prefix="tidings-soak-"))
    nodes: list[Node] = []
    report: Report | None = None
    try:
        if options.spawn:
            nodes = await _spawn(options, workdir)
            urls = [node.url for node in nodes]
        else:
            urls = list(options.urls)
        report = await _soak(options, urls, nodes, note)
        return report
    finally:
        for node in nodes:
            await node.stop(signal.SIGTERM)
        if report is not None and report.ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            note(f"soak: node logs kept in {workdir}")


async def _spawn(options: Options, workdir: Path) -> list[Node]:
    env = {"TIDINGS_DATABASE_URL": options.database or f"sqlite+aiosqlite:///{workdir}/soak.db"}
    if options.nodes > 1 and not options.redis:
        raise ValueError("--nodes above 1 needs --redis (nodes share events through it)")
    if options.redis:
        env["TIDINGS_REDIS_URL"] = options.redis
        env["TIDINGS_REDIS_PREFIX"] = f"tidings_soak_{secrets.token_hex(6)}:"
    nodes = [Node(i, env, workdir) for i in range(options.nodes)]
    for node in nodes:  # one at a time: the first one migrates the schema
        await node.start()
    return nodes


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def _samples(urls: list[str]) -> list[Sample | None]:
    """Scrape every node on a connection that closes at once, so the scrape
    itself leaves no keep-alive handler behind on the server."""
    await asyncio.sleep(1.0)  # let closed sockets and their tasks go
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        return [await scrape(http, url) for url in urls]


async def _soak(options: Options, urls: list[str], nodes: list[Node], note: Any) -> Report:
    loop = asyncio.get_running_loop()
    rng = random.Random(options.seed)
    warmup = options.warmup
    if warmup is None:
        warmup = min(10.0, max(2.0, options.duration / 10))
    async with _session() as http:
        note(f"soak: setting up {options.clients} users on {len(urls)} node(s)")
        world = await build_world(http, urls[0], options.clients, rng)
    actors = [
        Actor(
            m.id,
            m.token,
            world.conversations_of[m.id],
            random.Random(f"{options.seed}/{i}"),
            world.groups,
        )
        for i, m in enumerate(world.members)
    ]

    async def traffic(seconds: float) -> None:
        deadline = loop.time() + seconds
        async with _session() as http:
            await asyncio.gather(*(actor.run(urls, http, deadline) for actor in actors))

    note(f"soak: warm-up {warmup:.0f}s")
    await traffic(warmup)
    before = await _samples(urls)
    incarnations = [node.incarnation for node in nodes]
    note(f"soak: traffic {options.duration:.0f}s")
    faults: list[Fault] = []
    started = time.monotonic()
    injector = None
    if options.restart_every and nodes:
        end = loop.time() + options.duration
        injector = loop.create_task(_inject(nodes, options.restart_every, end, started, faults))
    await traffic(options.duration)
    if injector is not None:
        await injector
    traffic_seconds = time.monotonic() - started

    note("soak: settling unacked sends and catching up")
    settled = Counter[str]()
    async with _session() as http:
        deadline = loop.time() + SETTLE_SECONDS
        for actor in actors:
            client = Client(urls[0], actor.token, session=http)
            was_stored, stored_now = await actor.settle(client, deadline)
            settled.update(found_stored=was_stored, stored_now=stored_now)
        # Only once every send is settled: a settled send is a message the others must see.
        for actor in actors:
            await actor.catch_up(Client(rng.choice(urls), actor.token, session=http))
    after = await _samples(urls)

    note("soak: reading back the history and the chat lists")
    async with _session() as http:
        histories = await _histories(world, urls[0], http)
        lists: dict[tuple[int, int], ChatList] = {}
        for index, url in enumerate(urls):
            for actor in actors:
                client = Client(url, actor.token, session=http)
                # Hidden entries too: each is checked against what the user kept.
                lists[(actor.user_id, index)] = await client.chat_list(CHAT_LIST_LIMIT, hidden=True)

    found, figures = check_store(world, actors, histories)
    check_deliveries(actors, histories, found, figures)
    check_chat_lists(world, actors, histories, lists, found, figures)
    for actor in actors:
        for problem in actor.tally.problems:
            found.add("client_problems", problem, 0)
        found.counts["client_problems"] += actor.tally.errors["problem"]
    memory = _memory(urls, before, after, incarnations, nodes)
    return _report(
        options, world, actors, found, figures, faults, memory, settled, nodes, traffic_seconds
    )


async def _inject(
    nodes: list[Node], every: float, end: float, started: float, faults: list[Fault]
) -> None:
    """Restart nodes in turn every ``every`` seconds until ``end``; the second fault is a
    SIGKILL, the others SIGTERM. With several nodes node 0 is never touched, so that
    its memory and task figures span the whole run."""
    loop = asyncio.get_running_loop()
    targets = nodes[1:] or nodes
    count = 0
    while loop.time() + every < end - 1.0:  # a fault needs traffic after it to matter
        await asyncio.sleep(every)
        sig = signal.SIGKILL if count == 1 else signal.SIGTERM
        node = targets[count % len(targets)]
        faults.append(await node.restart(sig, time.monotonic() - started))
        count += 1


async def _histories(
    world: World, url: str, http: aiohttp.ClientSession
) -> dict[str, list[Message]]:
    histories: dict[str, list[Message]] = {}
    for conversation, reader in world.reader_of.items():
        client = Client(url, world.token_of(reader), session=http)
        messages: list[Message] = []
        after = 0
        while True:
            page = await client.messages(conversation, after=after, limit=PAGE)
            messages += page
            if len(page) < PAGE:
                break
            after = page[-1].seq
        histories[conversation] = messages
    return histories


def _memory(
    urls: list[str],
    before: list[Sample | None],
    after: list[Sample | None],
    incarnations: list[int],
    nodes: list[Node],
) -> list[NodeFigures]:
    figures = []
    for index in range(len(urls)):
        first, last = before[index], after[index]
        restarted = bool(nodes) and nodes[index].incarnation != incarnations[index]
        verdict = "ok"
        if first is None or last is None:
            verdict = "no metrics"
        elif restarted:
            verdict = "restarted: growth not comparable"
        else:
            grew = last.rss_bytes - first.rss_bytes
            if grew > MEMORY_GROWTH_BYTES and grew > MEMORY_GROWTH_RATIO * first.rss_bytes:
                verdict = "MEMORY GROWTH"
            elif last.tasks > first.tasks + TASK_SLACK:
                verdict = "TASK GROWTH"
        figures.append(
            NodeFigures(
                node=index,
                rss_before_mb=None if first is None else round(first.rss_bytes / 2**20, 1),
                rss_after_mb=None if last is None else round(last.rss_bytes / 2**20, 1),
                tasks_before=None if first is None else first.tasks,
                tasks_after=None if last is None else last.tasks,
                restarted=restarted,
                verdict=verdict,
            )
        )
    return figures


def _report(
    options: Options,
    world: World,
    actors: list[Actor],
    found: Findings,
    figures: Figures,
    faults: list[Fault],
    memory: list[NodeFigures],
    settled: Counter[str],
    nodes: list[Node],
    traffic_seconds: float,
) -> Report:
    tallies = [a.tally for a in actors]

    def total(name: str) -> int:
        return sum(int(getattr(t, name)) for t in tallies)

    errors: Counter[str] = Counter()
    closes: Counter[int] = Counter()
    for t in tallies:
        errors.update(t.errors)
        closes.update(t.server_closes)
    errors.pop("problem", None)
    setup = {
        "nodes": len(memory),
        "spawned": options.spawn,
        "database": _kind(options),
        "redis": bool(options.redis) or len(memory) > 1,
        "clients": options.clients,
        "groups": len(world.groups),
        "private_pairs": len(world.pairs),
        "seed": options.seed,
        "duration_s": options.duration,
        "traffic_s": round(traffic_seconds, 1),
        "restart_every_s": options.restart_every,
    }
    traffic = {
        "messages_attempted": figures.attempts,
        "messages_acked": figures.acked,
        "sends_ws": total("sends_ws"),
        "sends_http": total("sends_http"),
        "pipelined_bursts": total("bursts"),
        "resends_same_id": total("resends"),
        "resends_already_stored": total("resends_found_stored"),
        "settled_found_stored": settled["found_stored"],
        "settled_stored_now": settled["stored_now"],
        "repeat_probes": total("repeat_probes"),
        "cross_conversation_repeats": total("cross_repeat_probes"),
        "mentioning_sends": total("mentions"),
        "recalls": total("recalls"),
        "edits": total("edits"),
        "entry_changes": total("entry_changes"),
        "group_changes": total("group_changes"),
        "recalls_edits_declined": total("declined"),
        "reads": total("reads"),
        "reads_unanswered": total("reads_unacked"),
        "connects": total("connects"),
        "reconnects": max(0, total("connects") - len(actors)),
        "connect_failures": total("connect_failures"),
        "abrupt_drops": total("abrupt_drops"),
        "drops_mid_send": total("drops_mid_send"),
        "clean_closes": total("clean_closes"),
        "closed_by_server": dict(sorted((str(k), v) for k, v in closes.items())),
        "catch_up_pages": total("catch_up_pages"),
        "errors": dict(sorted(errors.items())),
    }
    checked = {
        "messages_stored": figures.stored,
        "live_events": figures.live_events,
        "deliveries_checked": figures.deliveries_checked,
        "redelivered_across_sessions": figures.redelivered_across_sessions,
        "chat_entries_checked": figures.chat_entries_checked,
    }
    kinds = [*LOST, *DUPLICATED, "order_violations", "live_gaps", "seq_gaps", "corrupt"]
    kinds += ["strays", "misplaced", "separators", "chat_list", "client_problems"]
    violations = {kind: found.counts[kind] for kind in kinds}
    failures = [f"{kind}: {n}" for kind, n in violations.items() if n]
    failures += [f"node {m.node}: {m.verdict}" for m in memory if m.verdict.isupper()]
    failures += [f"unclean {f.signal} of node {f.node}" for f in faults if not f.clean]
    problems = [line for node in nodes for line in node.log_problems()][:20]
    return Report(
        ok=not failures,
        setup=setup,
        traffic=traffic,
        faults=[asdict(f) for f in faults],
        checked=checked,
        violations=violations,
        memory=memory,
        failures=failures,
        examples={k: v for k, v in found.examples.items() if v},
        node_log_problems=problems,
    )


def _kind(options: Options) -> str:
    if not options.spawn:
        return "given"
    url = options.database or "sqlite"
    return url.split(":", 1)[0].split("+", 1)[0]


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="tidings soak",
        description="Clients connect, send, read, drop and reconnect at random for a set time; "
        "then every invariant of the contract is checked against the stored history.",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    parser.add_argument("--clients", type=int, default=20, help="simulated users (>= 2)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--url",
        action="append",
        dest="urls",
        help="a node to test (repeat once per node; rate limits off, cheap argon2 advised)",
    )
    where.add_argument("--spawn", action="store_true", help="start the nodes here")
    parser.add_argument("--nodes", type=int, default=1, help="nodes to spawn (needs --redis)")
    parser.add_argument("--database", help="database URL of spawned nodes (default: SQLite)")
    parser.add_argument("--redis", help="Redis URL of spawned nodes")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument(
        "--restart-every",
        type=float,
        help="SIGTERM a node and start it again every so many seconds; "
        "the second fault is a SIGKILL (--spawn only)",
    )
    parser.add_argument("--warmup", type=float, help="seconds of traffic before the baseline")
    args = parser.parse_args(argv)
    if args.restart_every and not args.spawn:
        parser.error("--restart-every needs --spawn")
    if args.clients < 2:
        parser.error("--clients must be at least 2")
    return Options(
        duration=args.duration,
        clients=args.clients,
        urls=args.urls or [],
        spawn=args.spawn,
        nodes=args.nodes,
        database=args.database,
        redis=args.redis,
        seed=args.seed,
        restart_every=args.restart_every,
        warmup=args.warmup,
    )


def main(argv: list[str]) -> int:
    options = parse(argv)
    try:
        report = asyncio.run(run_soak(options))
    except (ValueError, RuntimeError) as exc:
        print(f"tidings soak: {exc}", file=sys.stderr)
        return 2
    print(report.json_line(), flush=True)
    print(report.table(), flush=True)
    return 0 if report.ok else 1
