"""Load processes: start them, open their connections, start them together, collect.

The parent never sends a message itself. Each child runs :class:`Load` on
its own uvloop and talks to the parent over a pipe: ``ready`` once its
connections are open, then it waits for ``start`` (a time.monotonic()
instant, the same clock in every process, so all begin together) or, for
a held scenario, for ``stop``. Children use the ``spawn`` start method: the
parent may be inside a running event loop, which a fork must not inherit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from tidings import gc_tuning
from tidings.bench.load import Load
from tidings.bench.spec import WorkerResult, WorkerSpec

READY_TIMEOUT = 300.0
START_DELAY = 0.3


def raise_open_files_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _child(spec: WorkerSpec, pipe: Connection, cpus: tuple[int, ...]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    raise_open_files_limit()
    import uvloop

    uvloop.run(_child_main(spec, pipe))


async def _child_main(spec: WorkerSpec, pipe: Connection) -> None:
    load = Load(spec)
    loop = asyncio.get_running_loop()
    try:
        await load.connect()
    except Exception as exc:  # reported to the parent, which fails the run
        pipe.send(("error", f"connect: {exc!r}"))
        load.close()
        return
    # Its connections are made: the run's objects are what the collector sees.
    gc_tuning.settle()
    pipe.send(("ready", load.result.connections, load.result.reconnects))
    command: tuple[Any, ...] = await loop.run_in_executor(None, pipe.recv)
    if command[0] == "start":
        result = await load.run(command[1])
    else:
        result = load.result
    load.close()
    await asyncio.sleep(0.2)  # let close frames reach the server
    pipe.send(("result", result))


class Fleet:
    """A set of load processes running one scenario."""

    def __init__(self, specs: Sequence[WorkerSpec], cpus: tuple[int, ...] = ()) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for spec in specs:
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_child, args=(spec, child_end, cpus), daemon=True)
            self._pipes.append(parent_end)
            self._processes.append(process)

    def _receive(self, pipe: Connection, timeout: float) -> tuple[Any, ...]:
        if not pipe.poll(timeout):
            raise TimeoutError("a load process did not answer in time")
        message: tuple[Any, ...] = pipe.recv()
        if message[0] == "error":
            raise RuntimeError(f"load process failed: {message[1]}")
        return message

    def open(self) -> tuple[int, float]:
        """Start the processes; return (connections, retried attempts) once all are ready."""
        for process in self._processes:
            process.start()
        total, retried = 0, 0
        for pipe in self._pipes:
            _, connections, reconnects = self._receive(pipe, READY_TIMEOUT)
            total += connections
            retried += reconnects
        return total, retried

    def run(self, limit: float) -> list[WorkerResult]:
        """Start every process at once and wait (at most ``limit`` s) for their results."""
        start_at = time.monotonic() + START_DELAY
        for pipe in self._pipes:
            pipe.send(("start", start_at))
        return self._collect(limit)

    def stop(self) -> list[WorkerResult]:
        """Close the connections of a held scenario."""
        for pipe in self._pipes:
            pipe.send(("stop",))
        return self._collect(60.0)

    def _collect(self, limit: float) -> list[WorkerResult]:
        deadline = time.monotonic() + limit
        results = []
        for pipe in self._pipes:
            message = self._receive(pipe, max(0.1, deadline - time.monotonic()))
            results.append(message[1])
        self.join()
        return results

    def join(self) -> None:
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        for pipe in self._pipes:
            pipe.close()
