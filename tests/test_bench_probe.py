"""The bench's probe: the server's CPU, and the services' beside it (bench/probe.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import redis

from tidings.bench.probe import ServerProbe, service_shares


def test_a_service_process_is_counted_from_the_window_start_or_whole_when_new() -> None:
    before = {10: ("database_cpu_pct", 5.0, 100.0), 11: ("redis_cpu_pct", 2.0, 100.0)}
    after = {
        10: ("database_cpu_pct", 6.0, 100.0),  # ran 1 s of the 2 s window
        12: ("database_cpu_pct", 0.5, 150.0),  # a connection opened in the window
        11: ("redis_cpu_pct", 0.2, 160.0),  # the pid came back as another process
    }
    assert service_shares(before, after, elapsed=2.0) == {
        "database_cpu_pct": 75.0,
        "redis_cpu_pct": 10.0,
    }


def test_a_service_not_on_this_machine_gets_no_field() -> None:
    assert service_shares({}, {}, elapsed=1.0) == {}


def test_the_probe_reports_the_redis_work_a_run_caused(
    own_redis: Callable[[], subprocess.Popen[bytes]],
) -> None:
    own_redis()
    client = redis.Redis(port=own_redis.port)  # type: ignore[attr-defined]
    probe = ServerProbe(os.getpid())
    probe.start()
    pipe = client.pipeline(transaction=False)
    for n in range(200_000):
        pipe.set(f"k{n}", n)
    pipe.execute()
    shares = probe.stop()
    client.close()
    assert shares["server_cpu_pct"] is not None and shares["server_cpu_pct"] > 0
    assert shares["redis_cpu_pct"] > 0
