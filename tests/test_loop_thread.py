"""store/loop_thread.py: PostgreSQL's write batches run on a loop of their own."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tidings.store.loop_thread import LoopThread


async def test_a_coroutine_runs_on_the_threads_loop_and_its_outcome_comes_back() -> None:
    loop_thread = LoopThread("test-loop")
    try:

        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert await loop_thread.run(where()) == "test-loop"

        async def fails() -> None:
            raise ValueError("from the other loop")

        with pytest.raises(ValueError, match="from the other loop"):
            await loop_thread.run(fails())
    finally:
        loop_thread.stop()


async def test_cancelling_the_caller_cancels_the_coroutine_there() -> None:
    loop_thread = LoopThread("test-loop")
    started, cancelled = threading.Event(), threading.Event()

    async def waits() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        caller = asyncio.create_task(loop_thread.run(waits()))
        await asyncio.to_thread(started.wait, 5)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await asyncio.to_thread(cancelled.wait, 5)
    finally:
        loop_thread.stop()
    assert not any(t.name == "test-loop" for t in threading.enumerate())
