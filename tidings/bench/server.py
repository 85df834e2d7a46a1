"""Start the server under test (``--spawn``): tidings or the socketio peer, pinned to its CPUs.

The server gets its own core(s) with ``taskset`` and the load gets the
others, so that neither steals the other's time and the figures say what
one server core does. Rate limits are turned off: they exist to protect a
production server from a flood, and a benchmark is a flood on purpose.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 60.0
# The folder that holds the ``tidings`` package this bench runs from.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = SOURCE_ROOT / "bench" / "peers" / "socketio_relay.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pinned(command: list[str], cpus: str) -> list[str]:
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *command]
    return command


class SpawnedServer:
    """A server subprocess; ``url``, ``pid``; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, cwd: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self._log = tempfile.NamedTemporaryFile(prefix="tidings-bench-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_listening()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not listening after {START_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        return Path(self._log.name).read_text(errors="replace")[-size:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


def spawn_tidings(
    database_url: str | None, redis_url: str | None, cpus: str, workdir: str
) -> SpawnedServer:
    """``tidings serve`` on a free port; a temp SQLite file when no database is given.

    Password hashing is made cheap (unless set in the environment): it costs
    the setup's sign-ups and logins, never a measured request.
    """
    port = free_port()
    env = {"TIDINGS_ARGON2_TIME_COST": "1", "TIDINGS_ARGON2_MEMORY_KIB": "8192"}
    env.update(os.environ)
    if redis_url:
        env["TIDINGS_REDIS_URL"] = redis_url
    env.update(
        TIDINGS_HOST="127.0.0.1",
        TIDINGS_PORT=str(port),
        TIDINGS_DATABASE_URL=database_url or f"sqlite+aiosqlite:///{workdir}/bench.db",
        TIDINGS_RATE_LIMIT_CONNECTION="0",
        TIDINGS_RATE_LIMIT_USER="0",
        # The connect scenario reuses a few users' tokens for thousands of sockets.
        TIDINGS_MAX_CONNECTIONS_PER_USER="1000000",
        TIDINGS_LOG_LEVEL="WARNING",
    )
    # The server under test is the code of this bench, not whatever an
    # editable install points at: comparing two checkouts (git worktree)
    # with one virtualenv must run each checkout's own server.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    command = _pinned([sys.executable, "-m", "tidings", "serve"], cpus)
    return SpawnedServer(command, env, port, workdir)


def spawn_socketio_peer(redis_url: str | None, cpus: str, workdir: str) -> SpawnedServer:
    """The python-socketio relay of bench/peers/ on uvicorn (a source checkout is needed)."""
    if not PEER_SCRIPT.exists():
        raise RuntimeError(f"the socketio peer needs a source checkout: {PEER_SCRIPT} not found")
    port = free_port()
    command = [sys.executable, str(PEER_SCRIPT), "--port", str(port)]
    if redis_url:
        command += ["--redis", redis_url]
    return SpawnedServer(_pinned(command, cpus), dict(os.environ), port, workdir)
