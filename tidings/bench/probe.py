"""Server CPU and RSS, sampled from outside the server with psutil (``--server-pid``),
and the CPU of the database and Redis processes on this machine over the same window.

The services' share matters as much as the server's: at a given message rate
the machine's cores are shared by the server, the database, Redis and the load,
so a record that names all four gives the CPU each spends per message
(docs/benchmarks.md, stop 38), which is what sizing a bigger machine needs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil

# Process names of the services a run may lean on, by the record field they go to.
SERVICES = {
    "database_cpu_pct": ("postgres", "mariadbd", "mysqld"),
    "redis_cpu_pct": ("redis-server",),
}


def _service_cpu() -> dict[int, tuple[str, float, float]]:
    """Every running service process: pid -> (field, CPU seconds so far, start time)."""
    found: dict[int, tuple[str, float, float]] = {}
    for process in psutil.process_iter(["name", "cpu_times", "create_time"]):
        name, times = process.info["name"], process.info["cpu_times"]
        for field, names in SERVICES.items():
            if name in names and times is not None:
                cpu = float(times.user + times.system)
                found[process.pid] = (field, cpu, float(process.info["create_time"]))
    return found


def service_shares(
    before: dict[int, tuple[str, float, float]],
    after: dict[int, tuple[str, float, float]],
    elapsed: float,
) -> dict[str, float]:
    """Each service's CPU between two snapshots, % of one core. A process
    that started in between (a new database connection) counts whole; one
    that ended in between is not seen (its last moments are lost). A service
    with no process on this machine (a remote database) gets no field."""
    spent: dict[str, float] = {}
    for pid, (field, cpu, started) in after.items():
        earlier = before.get(pid)
        start = earlier[1] if earlier is not None and earlier[2] == started else 0.0
        spent[field] = spent.get(field, 0.0) + cpu - start
    return {field: round(100 * seconds / elapsed, 1) for field, seconds in spent.items()}


class ServerProbe:
    """CPU over a window (% of one core) and the largest RSS seen, from a sampling thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self._peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = (0.0, 0.0)
        self._services: dict[int, tuple[str, float, float]] = {}

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def start(self) -> None:
        self._peak_rss = self.rss()
        self._services = _service_cpu()
        self._started = (time.monotonic(), self._cpu())
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._peak_rss = max(self._peak_rss, self.rss())
            except psutil.Error:
                return

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        elapsed = time.monotonic() - self._started[0]
        cpu = self._cpu() - self._started[1]
        services = service_shares(self._services, _service_cpu(), elapsed) if elapsed > 0 else {}
        return {
            "server_cpu_pct": round(100 * cpu / elapsed, 1) if elapsed > 0 else None,
            "server_rss_mib": round(self._peak_rss / 2**20, 1),
            **services,
        }
