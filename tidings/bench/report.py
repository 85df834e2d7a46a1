"""Results: one JSON line per run on stdout and in ``bench/results/``, and a human table."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# The columns of the human table, in order, when a record has them.
HEADLINE = (
    "delivered_per_s",
    "rss_per_connection_kib",
    "requests_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "lost",
    "duplicated",
    "errors",
    "server_cpu_pct",
    "server_rss_mib",
    "load_cpu_pct",
    "database_cpu_pct",
    "redis_cpu_pct",
)


def emit(record: dict[str, Any], results_file: Path | None) -> None:
    line = json.dumps(record, separators=(",", ":"))
    print(line, flush=True)
    if results_file is not None:
        results_file.parent.mkdir(parents=True, exist_ok=True)
        with results_file.open("a") as out:
            out.write(line + "\n")


def table(records: list[dict[str, Any]]) -> str:
    """A fixed-width table of the headline figures of every run."""
    columns = ["scenario", "target", "run"] + [
        name for name in HEADLINE if any(name in r for r in records)
    ]
    rows = [[_cell(r.get(name)) for name in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def print_table(records: list[dict[str, Any]]) -> None:
    print(table(records), file=sys.stderr, flush=True)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
