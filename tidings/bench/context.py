"""What every scenario needs: the server's address, the user pool, the probe, the options."""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tidings.bench.accounts import UserPool
from tidings.bench.fleet import Fleet
from tidings.bench.probe import ServerProbe
from tidings.bench.profile import Profiler
from tidings.bench.spec import WorkerResult, WorkerSpec
from tidings.bench.stats import latency_summary, merge_latencies


@dataclass
class Context:
    url: str
    target: str  # "tidings" | "socketio": the server under test, and so the dialect
    options: argparse.Namespace
    probe: ServerProbe | None = None
    database_url: str | None = None
    load_cpus: tuple[int, ...] = ()
    cache: dict[str, Any] = field(default_factory=dict)  # seeded state shared by repeats
    # Restart a spawned server on the same database (None for --url).
    respawn: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.pool = UserPool(self.url, f"b{secrets.token_hex(3)}u")
        self.retarget(self.url, self.probe)

    def retarget(self, url: str, probe: ServerProbe | None) -> None:
        """Point at a (re)started server; users and tokens live in its database and stay."""
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.probe = probe
        self.pool.url = url

    @staticmethod
    def nonce() -> str:
        """A token unique to one run: client_msg_ids and group names carry it."""
        return secrets.token_hex(4)

    def spec(self, members: list[Any], **changes: Any) -> WorkerSpec:
        o = self.options
        values: dict[str, Any] = {
            "dialect": self.target,
            "host": self.host,
            "port": self.port,
            "members": tuple(members),
            "warmup": o.warmup,
            "duration": o.duration,
            "body": ("tidings bench message " * (o.body_size // 22 + 1))[: o.body_size],
        }
        values.update(changes)
        return WorkerSpec(**values)

    def run_fleet(self, specs: list[WorkerSpec]) -> tuple[list[WorkerResult], dict[str, Any]]:
        """Open every process's connections, run them together, return results and probe."""
        fleet = Fleet(specs, self.load_cpus)
        profiler = None
        try:
            fleet.open()
            if self.probe is not None:
                self.probe.start()
                profiler = self._profiler(specs[0])
            limit = max(s.warmup + s.duration + s.drain for s in specs) + 60
            results = fleet.run(limit)
        finally:
            fleet.join()
        probed = self.probe.stop() if self.probe is not None else {}
        if profiler is not None:
            print(profiler.finish(), file=sys.stderr, flush=True)
            probed["profile"] = str(profiler.raw_path)
        return results, probed

    def _profiler(self, spec: WorkerSpec) -> Profiler | None:
        """py-spy over the measured window, when ``--profile DIR`` asks for it."""
        folder = self.options.profile
        if not folder or self.probe is None:
            return None
        name = f"{self.cache.get('scenario', 'run')}-{self.target}-{self.nonce()}.collapsed"
        return Profiler(self.probe.process.pid, spec.warmup + spec.duration, Path(folder) / name)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Deal items round-robin into at most ``parts`` non-empty lists."""
    dealt: list[list[Any]] = [[] for _ in range(max(1, min(parts, len(items))))]
    for index, item in enumerate(items):
        dealt[index % len(dealt)].append(item)
    return dealt


def delivery_summary(results: list[WorkerResult], duration: float) -> dict[str, Any]:
    """Rates, losses and duplicates over every process of a run."""
    acked: dict[str, int] = {}
    listeners: dict[str, int] = {}
    for result in results:
        for target, count in result.acked_by_target.items():
            acked[target] = acked.get(target, 0) + count
        for target, count in result.listeners_by_target.items():
            listeners[target] = listeners.get(target, 0) + count
    expected = sum(acked[t] * listeners.get(t, 0) for t in acked)
    expected -= sum(r.own_acked_heard for r in results)
    unique = sum(sum(r.unique_by_target.values()) for r in results)
    sent = sum(r.sent for r in results)
    summary: dict[str, Any] = {
        "sent": sent,
        "acked": sum(r.acked for r in results),
        "errors": sum(r.errors for r in results),
        "unanswered": sent - sum(r.acked + r.errors for r in results),
        "delivered": sum(r.received for r in results),
        "lost": max(0, expected - unique),
        "duplicated": sum(r.duplicated for r in results),
        "delivered_per_s": round(sum(r.received_in_window for r in results) / duration, 1),
        "behind": sum(r.behind for r in results),
        "load_cpu_pct": round(100 * sum(r.cpu_seconds for r in results) / duration, 1),
    }
    summary.update(latency_summary(merge_latencies(r.latencies_us for r in results)))
    return summary
