"""Server CPU and RSS, sampled from outside the server with psutil (``--server-pid``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil


class ServerProbe:
    """CPU over a window (% of one core) and the largest RSS seen, from a sampling thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self._peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = (0.0, 0.0)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def start(self) -> None:
        self._peak_rss = self.rss()
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
        return {
            "server_cpu_pct": round(100 * cpu / elapsed, 1) if elapsed > 0 else None,
            "server_rss_mib": round(self._peak_rss / 2**20, 1),
        }
