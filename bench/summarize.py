"""Medians of repeated runs from bench/results/*.jsonl, as a Markdown table.

    .venv/bin/python bench/summarize.py bench/results/2026-11-26.jsonl

One row per (label, scenario, target, database, connections); each figure
is the median of that row's runs, so one disturbed run does not move it.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

FIGURES = (
    "delivered_per_s",
    "rss_per_connection_kib",
    "connect_per_s",
    "requests_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "lost",
    "duplicated",
    "server_cpu_pct",
    "load_cpu_pct",
    "database_cpu_pct",
    "redis_cpu_pct",
)


def key(record: dict[str, Any]) -> tuple[str, ...]:
    return (
        record.get("label", ""),
        record["scenario"],
        record["target"],
        str(record.get("database")),
        str(record.get("connections", "")) if record["scenario"] == "connect" else "",
    )


def main(paths: list[str]) -> None:
    rows: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                rows[key(record)].append(record)
    head = ["label", "scenario", "target", "db", "conns", "runs", *FIGURES]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row_key, records in rows.items():
        cells = [*row_key, str(len(records))]
        for name in FIGURES:
            values = [r[name] for r in records if isinstance(r.get(name), int | float)]
            cells.append(f"{statistics.median(values):,.4g}" if values else "")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
