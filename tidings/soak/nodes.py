"""The servers under test: spawned ``tidings serve`` processes, restartable in place.

A soak restarts a node on the same port and the same database so that its
clients come back to the *same* service, as after a deploy or a crash: the
point is that nothing acked is lost and nothing is stored twice across the
restart, not that a fresh server works. Nodes are started and stopped by
:mod:`tidings.harness.spawn` (only its own processes are ever signalled), in
a thread, so that the soak's clients keep running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tidings.harness.spawn import CHEAP_HASHING, ServerProcess, serve_command, serve_env

#: How long SIGTERM may take to drain before the node is killed (and the fault reported).
DRAIN_TIMEOUT = 30.0

#: What every spawned node gets: cheap password hashing (setup signs up many
#: users) and no rate or connection limits (a soak is a flood on purpose, and an
#: abruptly dropped socket may linger on the server until it notices).
SOAK_ENV = {
    **CHEAP_HASHING,
    "TIDINGS_RATE_LIMIT_CONNECTION": "0",
    "TIDINGS_RATE_LIMIT_USER": "0",
    "TIDINGS_MAX_CONNECTIONS_PER_USER": "0",
    "TIDINGS_LOG_LEVEL": "WARNING",
}


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
        self._env = serve_env({**SOAK_ENV, **env})
        self.port = int(self._env["TIDINGS_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"node{index}.log"
        self._workdir = workdir
        self._server: ServerProcess | None = None
        self.incarnation = 0

    @property
    def pid(self) -> int | None:
        return None if self._server is None else self._server.pid

    async def start(self) -> None:
        """Start the process and wait until it accepts connections."""
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.incarnation} at {time.time():.3f}\n".encode())
        self.incarnation += 1
        self._server = ServerProcess(
            serve_command(), self._env, cwd=self._workdir, log=self.log_path, wait=False
        )
        try:
            await asyncio.to_thread(self._server.wait_listening)
        except RuntimeError as exc:
            raise RuntimeError(f"node {self.index}: {exc}") from None

    async def stop(self, sig: signal.Signals) -> tuple[int | None, float, bool]:
        """Signal the process; return (exit code, seconds to exit, exited by itself)."""
        if self._server is None:
            return None, 0.0, True
        return await asyncio.to_thread(self._server.stop, sig, DRAIN_TIMEOUT)

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
