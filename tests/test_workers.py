"""``tidings serve --workers N``: one port, N nodes, restarted when one dies, stopped cleanly.

The servers here are real: a supervisor started as ``python -m tidings
serve`` with ``TIDINGS_WORKERS=2`` on a throwaway PostgreSQL database and
Redis prefix (``cluster_env``), bound to 127.0.0.1, and stopped by the
test (``spawn_server`` kills what is left).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.conftest import PASSWORD
from tidings.client import AdminClient, ApiError, Client, Socket
from tidings.harness.spawn import ServerProcess

SERVICE_TOKEN = "workers-test-token"


@pytest.fixture
def two_workers(
    cluster_env: dict[str, str], spawn_server: Callable[..., ServerProcess], tmp_path: Path
) -> ServerProcess:
    return spawn_server(
        stderr_to=tmp_path / "workers.log",
        TIDINGS_WORKERS="2",
        TIDINGS_SERVICE_TOKEN=SERVICE_TOKEN,
        TIDINGS_LOG_LEVEL="INFO",
        TIDINGS_RATE_LIMIT_CONNECTION="0",
        TIDINGS_RATE_LIMIT_USER="0",
        **cluster_env,
    )


async def nodes_answering(url: str, requests: int) -> list[str]:
    """The node named by each of ``requests`` GET /readyz, each on a new connection."""
    nodes = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(requests):
            async with session.get(url + "/readyz") as answer:
                if answer.status == 200:
                    nodes.append((await answer.json())["node"])
    return nodes


async def wait_for_nodes(url: str, count: int, within: float = 60) -> set[str]:
    """Poll /readyz until ``count`` distinct nodes have answered; those nodes."""
    seen: set[str] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        seen.update(await nodes_answering(url, 10))
        if len(seen) >= count:
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"only {sorted(seen)} answered within {within}s")


def worker_pids(supervisor: ServerProcess) -> list[int]:
    return [child.pid for child in psutil.Process(supervisor.pid).children()]


async def account(url: str, name: str) -> tuple[Client, int]:
    client = Client(url)
    user = await client.signup(name, PASSWORD)
    await client.login(name, PASSWORD)
    return client, user.id


async def sockets_on_both_workers(
    url: str, clients: list[Client], per_client: int
) -> list[list[Socket]]:
    """``per_client`` sockets for each client, once both workers hold some of them.

    Where a socket lands is the kernel's choice; the admin API's per-node
    counts say which worker holds how many. Sockets are added until both do.
    """
    sockets = [[await client.connect() for _ in range(per_client)] for client in clients]
    async with AdminClient(url, SERVICE_TOKEN) as admin:
        for _ in range(40):
            total = sum(len(s) for s in sockets)
            counts = [n.connections for n in (await admin.stats()).nodes]
            if sum(counts) == total and len(counts) == 2 and min(counts) > 0:
                return sockets
            if sum(counts) == total:  # all on one worker so far: one more each
                for client, own in zip(clients, sockets, strict=True):
                    own.append(await client.connect())
            await asyncio.sleep(0.25)
    raise AssertionError(f"the sockets never spread over both workers: {counts}")


@pytest.mark.slow
async def test_both_workers_answer_on_the_one_port(two_workers: ServerProcess) -> None:
    nodes = await wait_for_nodes(two_workers.url, 2)
    assert len(nodes) == 2
    assert len(worker_pids(two_workers)) == 2
    # Each is a full node: its own id in the cluster's registry.
    async with AdminClient(two_workers.url, SERVICE_TOKEN) as admin:
        assert {n.node for n in (await admin.stats()).nodes} == nodes


@pytest.mark.slow
async def test_a_message_sent_on_one_worker_reaches_sockets_on_the_other(
    two_workers: ServerProcess,
) -> None:
    await wait_for_nodes(two_workers.url, 2)
    alice, alice_id = await account(two_workers.url, "alice")
    bob, bob_id = await account(two_workers.url, "bob")
    conversation = f"p:{min(alice_id, bob_id)}-{max(alice_id, bob_id)}"
    alice_sockets, bob_sockets = await sockets_on_both_workers(two_workers.url, [alice, bob], 3)
    # Both workers hold sockets, and every Bob socket gets every Alice socket's
    # message: so some message crossed from one worker to the other.
    for n, ws in enumerate(alice_sockets):
        sent = await ws.send(conversation, f"from alice's socket {n}")
        for inbox in bob_sockets:
            event = await inbox.next_event(timeout=10)
            assert event["message"]["id"] == sent.id  # type: ignore[index]
    for ws in alice_sockets + bob_sockets:
        await ws.close()
    for client in (alice, bob):
        await client.close()


@pytest.mark.slow
async def test_a_killed_worker_is_started_again_and_the_port_keeps_answering(
    two_workers: ServerProcess,
) -> None:
    before = await wait_for_nodes(two_workers.url, 2)
    victim, survivor = worker_pids(two_workers)
    psutil.Process(victim).send_signal(signal.SIGKILL)
    # Right away, and while the worker starts again, the port answers.
    for _ in range(10):
        answered = await nodes_answering(two_workers.url, 5)
        assert len(answered) == 5
        await asyncio.sleep(0.1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = worker_pids(two_workers)
        if len(pids) == 2 and victim not in pids:
            break
        await asyncio.sleep(0.2)
    assert survivor in pids and victim not in pids and len(pids) == 2, pids
    after = await wait_for_nodes(two_workers.url, 2)
    assert len(after & before) == 1, "the new worker is a new node; the survivor stays"
    assert "was killed by SIGKILL" in two_workers.log_tail(20_000)


@pytest.mark.slow
async def test_workers_whose_supervisor_is_killed_drain_and_exit(
    two_workers: ServerProcess,
) -> None:
    await wait_for_nodes(two_workers.url, 2)
    workers = [psutil.Process(pid) for pid in worker_pids(two_workers)]
    two_workers.kill()
    _, alive = await asyncio.to_thread(psutil.wait_procs, workers, 20)
    assert not alive, "a worker outlived its supervisor and holds the port"
    assert "the supervisor (pid" in two_workers.log_tail(20_000)


@pytest.mark.slow
async def test_sigterm_under_load_exits_0_closes_with_1001_and_loses_no_acked_message(
    two_workers: ServerProcess,
    cluster_env: dict[str, str],
    spawn_server: Callable[..., ServerProcess],
) -> None:
    await wait_for_nodes(two_workers.url, 2)
    pairs = [await account(two_workers.url, f"sender{n}") for n in range(2)]
    receiver, receiver_id = await account(two_workers.url, "receiver")
    conversations = [f"p:{min(i, receiver_id)}-{max(i, receiver_id)}" for _, i in pairs]
    senders = [client for client, _ in pairs]
    sockets = await sockets_on_both_workers(two_workers.url, [*senders, receiver], 2)
    acked: dict[str, tuple[str, int]] = {}  # client_msg_id -> (conversation, seq)

    async def stream(sender: int, socket_: int) -> None:
        n = 0
        while True:
            key = f"s{sender}-{socket_}-{n}"
            try:
                message = await sockets[sender][socket_].send(conversations[sender], key, key)
            except (TimeoutError, ApiError, ConnectionError):
                return
            acked[key] = (message.conversation, message.seq)
            n += 1

    streams = [
        asyncio.create_task(stream(sender, index))
        for sender in range(len(senders))
        for index in range(len(sockets[sender]))
    ]
    await asyncio.sleep(2)
    code = await asyncio.to_thread(two_workers.terminate, 60)
    assert code == 0, two_workers.log_tail()
    await asyncio.wait(streams, timeout=15)
    assert len(acked) > 50, "the streams barely ran; the test proves nothing"
    for own in sockets:
        for ws in own:
            assert await ws.wait_closed() == 1001
    for client in [*senders, receiver]:
        await client.close()

    # Read the history back through one fresh node of the same cluster.
    reader_node = spawn_server(**cluster_env)
    reader = Client(reader_node.url)
    await reader.login("receiver", PASSWORD)
    try:
        stored: dict[str, tuple[str, int]] = {}
        for conversation in conversations:
            after, seqs = 0, []
            while page := await reader.messages(conversation, after=after, limit=200):
                for message in page:
                    assert message.client_msg_id not in stored, "stored twice"
                    stored[str(message.client_msg_id)] = (message.conversation, message.seq)
                    seqs.append(message.seq)
                after = page[-1].seq
            assert seqs == list(range(1, len(seqs) + 1)), f"gap in {conversation}"
        lost = {key: at for key, at in acked.items() if stored.get(key) != at}
        assert not lost, f"acked but not stored: {sorted(lost)[:5]}"
    finally:
        await reader.close()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        (
            {"TIDINGS_DATABASE_URL": "sqlite+aiosqlite:///./data/tidings.db"},
            "SQLite has one writer",
        ),
        (
            {"TIDINGS_DATABASE_URL": "postgresql+asyncpg://tidings@127.0.0.1:1/tidings"},
            "needs Redis",
        ),
    ],
)
def test_two_workers_are_refused_on_sqlite_or_without_redis(
    tmp_path: Path, env: dict[str, str], reason: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "TIDINGS_PORT": "0", "TIDINGS_REDIS_URL": "", **env}
    done = subprocess.run(
        [sys.executable, "-m", "tidings", "serve", "--workers", "2"],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(Path(__file__).parent.parent)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert reason in done.stderr
    assert not (tmp_path / "data").exists(), "nothing was started"


def test_the_supervisor_imports_nothing_of_the_app() -> None:
    probe = (
        "import sys; import tidings.cli, tidings.workers; "
        "print(sorted({'aiohttp', 'sqlalchemy', 'redis', 'tidings.app'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]"


# A supervisor whose worker exits at once, every time: it must not spin.
CRASH_LOOP = """
import logging, sys
from tidings.workers import Supervisor
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
command = [sys.executable, "-c", "raise SystemExit(5)"]
raise SystemExit(Supervisor(1, command, {}, sys.stdin.fileno()).run())
"""


@pytest.mark.slow
def test_a_worker_that_keeps_crashing_is_started_again_less_and_less_often() -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", CRASH_LOOP],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(Path(__file__).parent.parent), "PATH": "/usr/bin:/bin"},
    )
    time.sleep(5)
    supervisor.send_signal(signal.SIGTERM)
    _, log = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0, log
    waits = [
        float(line.rsplit("in ", 1)[1].removesuffix(" s"))
        for line in log.splitlines()
        if "exited with code 5" in line
    ]
    # 0.5, 1, 2 (then 4): three or four starts in 5 s, not fifty.
    assert waits[:3] == [0.5, 1.0, 2.0], log
    assert len(waits) <= 4, log
