"""Summaries of latency samples: percentiles in milliseconds."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(ordered: Sequence[float] | array[int], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return float(ordered[rank])


def latency_summary(samples_us: Iterable[int], prefix: str = "latency") -> dict[str, Any]:
    """p50/p99/max in ms of microsecond samples (None without any), and how many there were."""
    ordered = sorted(samples_us)
    if not ordered:
        # e.g. an overloaded open loop whose in-window sends all came after the drain
        names = ("p50_ms", "p99_ms", "max_ms")
        return {**{f"{prefix}_{n}": None for n in names}, f"{prefix}_samples": 0}
    return {
        f"{prefix}_p50_ms": round(percentile(ordered, 0.50) / 1000, 2),
        f"{prefix}_p99_ms": round(percentile(ordered, 0.99) / 1000, 2),
        f"{prefix}_max_ms": round((ordered[-1] if ordered else 0) / 1000, 2),
        f"{prefix}_samples": len(ordered),
    }


def merge_latencies(chunks: Iterable[bytes]) -> array[int]:
    merged = array("I")
    for chunk in chunks:
        merged.frombytes(chunk)
    return merged
