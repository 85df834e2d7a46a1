"""The servers under test: spawned ``tidings serve`` processes, restartable in place.

A soak restarts a node on the same port and the same database so that its
clients come back to the *same* service, as after a deploy or a crash: the
point is that nothing acked is lost and nothing is stored twice across the
restart, not that a fresh server works. Only processes started here are
ever signalled, by their own PID (other servers may run on the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

#: How long a node may take to listen after start (migrations run first).
START_TIMEOUT = 60.0
#: How long SIGTERM may take to drain before the node is killed (and the fault reported).
DRAIN_TIMEOUT = 30.0

#: What every spawned node gets: cheap password hashing (setup signs up many
#: users) and no rate or connection limits (a soak is a flood on purpose, and an
#: abruptly dropped socket may linger on the server until it notices).
SOAK_ENV = {
    "TIDINGS_ARGON2_TIME_COST": "1",
    "TIDINGS_ARGON2_MEMORY_KIB": "1024",
    "TIDINGS_RATE_LIMIT_CONNECTION": "0",
    "TIDINGS_RATE_LIMIT_USER": "0",
    "TIDINGS_MAX_CONNECTIONS_PER_USER": "0",
    "TIDINGS_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Fault:
    """One injected fault: a node stopped by a signal and started again."""

    node: int
    signal: str
    at_seconds: float
    exit_code: int | None
    stop_seconds: float
    down_seconds: float
    drained: bool  # exited by itself within DRAIN_TIMEOUT (always False for SIGKILL)

    @property
    def clean(self) -> bool:
        """SIGTERM must drain and exit 0; SIGKILL is clean by definition."""
        return self.signal == "SIGKILL" or (self.drained and self.exit_code == 0)


class Node:
    """One ``python -m tidings serve`` on a fixed loopback port, logging to a file."""

    def __init__(self, index: int, env: dict[str, str], workdir: Path) -> None:
        self.index = index
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"node{index}.log"
        self._workdir = workdir
        self._env = {**os.environ, **SOAK_ENV, **env}
        self._env.update(TIDINGS_HOST="127.0.0.1", TIDINGS_PORT=str(self.port))
        self._process: asyncio.subprocess.Process | None = None
        self.incarnation = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the process and wait until it accepts connections."""
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.incarnation} at {time.time():.3f}\n".encode())
            log.flush()
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tidings",
                "serve",
                env=self._env,
                cwd=self._workdir,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        self.incarnation += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            if self._process.returncode is not None:
                raise RuntimeError(f"node {self.index} exited at start:\n{self.log_tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        await self.stop(signal.SIGKILL)
        raise RuntimeError(f"node {self.index} not listening after {START_TIMEOUT}s")

    async def stop(self, sig: signal.Signals) -> tuple[int | None, float, bool]:
        """Signal the process; return (exit code, seconds to exit, exited by itself)."""
        process = self._process
        if process is None or process.returncode is not None:
            return (None if process is None else process.returncode), 0.0, True
        started = time.monotonic()
        process.send_signal(sig)
        drained = True
        try:
            await asyncio.wait_for(process.wait(), DRAIN_TIMEOUT)
        except TimeoutError:
            drained = False
            process.kill()
            await process.wait()
        return process.returncode, time.monotonic() - started, drained

    async def restart(self, sig: signal.Signals, at_seconds: float) -> Fault:
        """Stop with ``sig`` and start again on the same port and database."""
        began = time.monotonic()
        code, stop_seconds, drained = await self.stop(sig)
        await self.start()
        return Fault(
            node=self.index,
            signal=sig.name,
            at_seconds=round(at_seconds, 1),
            exit_code=code,
            stop_seconds=round(stop_seconds, 2),
            down_seconds=round(time.monotonic() - began, 2),
            drained=drained and sig is not signal.SIGKILL,
        )

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        """Lines of the node's log at ERROR level or with a traceback: each is worth a look."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if " ERROR " in line or line.startswith("Traceback")]


@dataclass
class Sample:
    """What one node's ``/metrics`` said at one moment."""

    rss_bytes: float
    tasks: float


async def scrape(http: aiohttp.ClientSession, url: str) -> Sample | None:
    """Read process_resident_memory_bytes and tidings_asyncio_tasks; None if unreachable."""
    wanted = {"process_resident_memory_bytes": 0.0, "tidings_asyncio_tasks": 0.0}
    try:
        async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
            text = await r.text()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            with contextlib.suppress(ValueError):
                wanted[name] = float(value)
    return Sample(wanted["process_resident_memory_bytes"], wanted["tidings_asyncio_tasks"])
