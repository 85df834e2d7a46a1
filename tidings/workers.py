"""``tidings serve --workers N``: one port served by N processes, each a node of the cluster.

A supervisor binds the listening socket once, then starts each worker as
a fresh ``python -m tidings serve`` that inherits the socket's descriptor
and accepts on it (``--listen-fd``). Every worker is a full node, with a
node id of its own, on the shared database and Redis, exactly as if it
were started by hand on another port. The supervisor restarts a worker
that dies (with a backoff, so a crash loop does not spin), and on SIGTERM
or SIGINT stops them all with SIGTERM, each draining as one node does
(sockets closed with 1001, the writer's last batch committed), waits for
them and exits 0.

Why one socket handed to every worker rather than SO_REUSEPORT:

- One accept queue: a worker that dies strands no connection. With
  SO_REUSEPORT each worker has a queue of its own, and the connections
  waiting in a dead worker's queue are reset.
- The port is bound once, by a process that never restarts: a port in use
  is one clear error at start. With SO_REUSEPORT any process of the same
  user may bind the port too and silently take a share of its connections
  (a stale server left running, a second deployment on a wrong port).
- It behaves the same on every POSIX system; SO_REUSEPORT balances only on
  Linux (macOS and the BSDs hand every connection to one socket).

The price: a shared queue balances less evenly than SO_REUSEPORT's hash
of each connection. Every idle worker is woken by a new connection and the
first to call accept() wins, so a busier worker takes fewer, which is the
balance one wants for long-lived WebSockets; docs/operations.md (Sizing)
says how to see it (``/readyz`` names the node that answered, ``tidings
stats`` counts each node's sockets).

Why fresh interpreters rather than fork(): the supervisor imports the
settings and nothing of the app (about 15 MiB against 75 MiB with it;
pyproject.toml's import contract keeps it so); nothing of a running event
loop, its threads or its database and Redis connections is copied into a
child; and a restarted worker is the same as the first. Copy-on-write
sharing of the imported modules would save little anyway: CPython writes
to every object it touches (reference counts), so the pages come apart.

Several workers share events, presence and the chat list through Redis,
and write through a database that takes many writers: :func:`refusal`
turns down SQLite and a missing Redis.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from tidings.config import Settings

log = logging.getLogger("tidings.workers")

#: A worker's exit code for "could not start" (database, Redis, settings).
#: The first start of a worker that ends so stops everything: restarting
#: cannot fix a wrong URL, and ``tidings serve`` with one worker exits too.
CANNOT_START = 3
#: A worker that exits sooner than this after its start counts as a crash
#: in a loop: each such exit in a row doubles the wait before the next start.
QUICK_EXIT_SECONDS = 10.0
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
#: How long the workers may take to drain on SIGTERM before they are killed.
#: Each node gives its sockets 10 s (shutdown_timeout), then commits and closes.
STOP_TIMEOUT_SECONDS = 30.0
#: How often the supervisor looks at its workers (it sleeps in between).
POLL_SECONDS = 0.1
#: The listening socket's backlog, aiohttp's own for one node.
BACKLOG = 128


def refusal(settings: Settings) -> str | None:
    """Why these settings cannot run ``settings.workers`` workers (None: they can)."""
    if settings.workers == 1:
        return None
    if settings.database_url.startswith("sqlite"):
        return (
            f"--workers {settings.workers} needs PostgreSQL or MySQL/MariaDB: SQLite has one "
            "writer, and each worker is a node with a writer of its own. Run one worker "
            "on SQLite, or see docs/operations.md (Many nodes)"
        )
    if not settings.redis_url:
        return (
            f"--workers {settings.workers} needs Redis (--redis or TIDINGS_REDIS_URL): each "
            "worker is a node, and nodes share events, presence and the chat list through "
            "Redis; without it a message sent on one worker would never reach the others"
        )
    return None


def supervise(settings: Settings, flags: Mapping[str, object]) -> int:
    """Bind, run ``settings.workers`` workers until SIGTERM or SIGINT; the exit code.

    ``flags``: the settings given on the command line, handed to each
    worker as its ``TIDINGS_*`` environment (they win over it, as flags do).
    """
    try:
        listener = bind(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    with listener:
        port = listener.getsockname()[1]
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        env = worker_env(os.environ, flags)
        command = worker_command(listener.fileno())
        supervisor = Supervisor(settings.workers, command, env, listener.fileno())
        log.info("%d workers on http://%s:%d", settings.workers, host, port)
        print(f"tidings listening on http://{host}:{port}", flush=True)
        return supervisor.run()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), as ``tidings serve`` binds one."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        # As aiohttp's reuse_address=True: a restart need not wait out TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


def worker_command(listen_fd: int) -> list[str]:
    """One worker: ``tidings serve`` on the inherited socket, with this interpreter."""
    return [sys.executable, "-m", "tidings", "serve", "--listen-fd", str(listen_fd)]


def worker_env(environ: Mapping[str, str], flags: Mapping[str, object]) -> dict[str, str]:
    """The supervisor's environment, its flags as ``TIDINGS_*``, and one worker each."""
    env = dict(environ)
    for name, value in flags.items():
        if value is not None:
            env[f"TIDINGS_{name.upper()}"] = str(value)
    env["TIDINGS_WORKERS"] = "1"
    return env


@dataclass
class Worker:
    """One slot of the pool: the process in it now, and how its last ones ended."""

    number: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    starts: int = 0
    quick_exits: int = 0  # in a row
    start_again_at: float = 0.0


class Supervisor:
    """Keeps ``count`` workers running on one socket until told to stop."""

    def __init__(
        self, count: int, command: Sequence[str], env: Mapping[str, str], listen_fd: int
    ) -> None:
        self._command = list(command)
        self._env = dict(env)
        self._listen_fd = listen_fd
        self._workers = [Worker(number) for number in range(1, count + 1)]
        self._stop_signal: int | None = None

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._asked_to_stop)
        for worker in self._workers:
            self._start(worker)
        while self._stop_signal is None:
            now = time.monotonic()
            for worker in self._workers:
                if worker.process is None:
                    if now >= worker.start_again_at:
                        self._start(worker)
                    continue
                code = worker.process.poll()
                if code is None:
                    continue
                if code == CANNOT_START and worker.starts == 1:
                    log.error(
                        "worker %d could not start (its log above says why); stopping",
                        worker.number,
                    )
                    self._stop_all()
                    return 1
                self._schedule_restart(worker, code, now)
            time.sleep(POLL_SECONDS)
        name = signal.Signals(self._stop_signal).name
        log.info("%s: stopping %d workers", name, len(self._workers))
        return 0 if self._stop_all() else 1

    def _asked_to_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(
            self._command, env=self._env, pass_fds=(self._listen_fd,), stdout=subprocess.DEVNULL
        )
        worker.started_at = time.monotonic()
        worker.starts += 1
        log.info("worker %d started (pid %d)", worker.number, worker.process.pid)

    def _schedule_restart(self, worker: Worker, code: int, now: float) -> None:
        assert worker.process is not None
        pid, lived = worker.process.pid, now - worker.started_at
        worker.process = None
        if lived < QUICK_EXIT_SECONDS:
            worker.quick_exits += 1
            delay = min(FIRST_BACKOFF_SECONDS * 2 ** (worker.quick_exits - 1), MAX_BACKOFF_SECONDS)
        else:
            worker.quick_exits, delay = 0, 0.0
        worker.start_again_at = now + delay
        log.warning(
            "worker %d (pid %d) %s after %.1f s; starting it again in %.1f s",
            worker.number,
            pid,
            describe_exit(code),
            lived,
            delay,
        )

    def _stop_all(self) -> bool:
        """SIGTERM every worker, wait for them to drain; True if all exited 0 in time."""
        running = [w.process for w in self._workers if w.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        clean = True
        for process in running:
            try:
                code = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not drain in time; killing it", process.pid)
                process.kill()
                code = process.wait()
            # -SIGTERM: a worker stopped before it had set its handler, so before
            # it served anything; there was nothing to drain.
            if code not in (0, -signal.SIGTERM):
                log.error("worker pid %d %s while stopping", process.pid, describe_exit(code))
                clean = False
        return clean


def describe_exit(code: int) -> str:
    """``exited with code 1``, ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
