"""Prometheus metrics, served at ``/metrics``.

One registry per app (not the library's global one), so several servers in
one process, as the tests run them, keep their figures apart. Gauges that
mirror live state (connections, queue depths) are read when scraped, so
the hot path pays only for what it counts: one counter per committed
batch, one histogram observation per acked send, one counter per error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # process_resident_memory_bytes, process_open_fds, ...: what a soak
        # run watches for growth.
        ProcessCollector(registry=self.registry)
        # python_gc_collections_total by generation: what the collector's
        # threshold (gc_tuning.py) keeps rare under load.
        GCCollector(registry=self.registry)
        self.gauge("tidings_asyncio_tasks", "Live asyncio tasks in this process.", _task_count)
        self.messages = Counter(
            "tidings_messages_committed", "Messages stored (acked).", registry=self.registry
        )
        self.batches = Counter(
            "tidings_write_batches", "Group-commit transactions.", registry=self.registry
        )
        self.ack_latency = Histogram(
            "tidings_ack_latency_seconds",
            "From a send reaching the writer to its commit (the ack).",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.errors = Counter(
            "tidings_errors",
            "Refusals sent to clients, by contract code.",
            ["code", "edge"],
            registry=self.registry,
        )
        self.connections_opened = Counter(
            "tidings_connections_opened",
            "Authenticated WebSockets opened.",
            registry=self.registry,
        )
        # PROTOCOL-v2 §3: what uploads bring in, what is kept, and why some are not.
        self.file_bytes_received = Counter(
            "tidings_file_bytes_received",
            "Bytes of upload bodies read, refused uploads included.",
            registry=self.registry,
        )
        self.file_bytes_stored = Counter(
            "tidings_file_bytes_stored",
            "Bytes of uploads stored (thumbnails not counted).",
            registry=self.registry,
        )
        self.uploads_refused = Counter(
            "tidings_uploads_refused",
            "Uploads refused: too_large, empty, image (a bomb or not whole), "
            "rate_limited, aborted (cut off by the client), store (the blob store failed).",
            ["reason"],
            registry=self.registry,
        )
        self.slow_readers = Counter(
            "tidings_slow_readers_closed",
            "Connections cut off (1013) for falling behind.",
            registry=self.registry,
        )

        # Offline push (tidings/push/): what went out, what did not and why.
        self.push_sent = Counter(
            "tidings_push_sent", "Web Pushes a push service accepted.", registry=self.registry
        )
        self.push_failed = Counter(
            "tidings_push_failed",
            "Web Pushes not delivered: gone (404/410), rejected (other 4xx), "
            "gave_up (5xx, 429 or timeouts past the retries), refused (a non-public address).",
            ["reason"],
            registry=self.registry,
        )
        self.push_dropped = Counter(
            "tidings_push_dropped",
            "Push work dropped because a queue was full (the message path never waits).",
            ["queue"],
            registry=self.registry,
        )
        self.push_collapsed = Counter(
            "tidings_push_collapsed",
            "Pushes not sent because another node pushed a newer message of the same "
            "conversation to the same user in the same collapse window.",
            registry=self.registry,
        )
        self.push_subscriptions_deleted = Counter(
            "tidings_push_subscriptions_deleted",
            "Subscriptions deleted because their push service answered 404 or 410.",
            registry=self.registry,
        )
        # Issue 23 §3: how often reads reach archived history, and what this node moved.
        self.archive_reads = Counter(
            "tidings_archive_segment_reads",
            "Archived segments read for history, replies, search or read-by, "
            "by where the file came from (cache: this node's memory; store: the blob store).",
            ["source"],
            registry=self.registry,
        )
        self.archive_moved = Counter(
            "tidings_archive_messages_moved",
            "Messages this node's scheduled runs moved into archive segments.",
            registry=self.registry,
        )

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge computed at scrape time from live state."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the loop
        return 0.0
