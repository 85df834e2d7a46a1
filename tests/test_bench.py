"""`tidings bench`, small: every scenario completes and loses or repeats nothing.

A functional check of the load generator and of the server under it, not a
speed check: sizes are tiny and no figure is asserted but lost == 0 and
duplicated == 0 (docs/benchmarks.md has the real runs). The bench runs in
a thread because it drives its own event loop while the in-process server
runs on the test's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import settings_for, start_server
from tidings.bench.command import main as bench

QUICK = ["--quick", "--warmup", "0.1", "--duration", "0.5", "--processes", "1", "--load-cpus", ""]


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_clean(found: list[dict[str, Any]], scenarios: set[str]) -> None:
    assert {r["scenario"] for r in found} == scenarios
    for record in found:
        assert record["lost"] == 0, record
        assert record["duplicated"] == 0, record
        assert record.get("errors", 0) == 0, record
        if "sent" in record:
            assert record["sent"] > 0 and record["acked"] == record["sent"], record
            assert record["delivered"] > 0, record


async def test_every_scenario_against_tidings(tmp_path: Path) -> None:
    # One stack (embedded SQLite) is enough: this checks the load generator, and
    # the store suite covers the stacks. History seeding is SQLite/PostgreSQL only.
    settings = settings_for(tmp_path, rate_limit_connection=0, rate_limit_user=0)
    server, runner = await start_server(settings)
    try:
        await _every_scenario(server.url, settings.database_url, tmp_path)
    finally:
        await runner.cleanup()


async def _every_scenario(url: str, database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    argv = [
        "all",
        "--url",
        url,
        "--database",
        database_url,
        "--results",
        str(out),
        *QUICK,
    ]
    code = await asyncio.to_thread(bench, argv)
    found = records(out)
    assert_clean(found, {"connect", "private", "private-open", "group", "chatlist", "history"})
    assert code == 0
    connect = next(r for r in found if r["scenario"] == "connect")
    assert connect["connections"] == 40
    chatlist = next(r for r in found if r["scenario"] == "chatlist")
    assert chatlist["entries_per_page"] == [30]


@pytest.mark.skipif(
    importlib.util.find_spec("socketio") is None or importlib.util.find_spec("uvicorn") is None,
    reason="the socketio peer needs the bench extra: pip install -e '.[bench]'",
)
async def test_private_and_group_against_the_socketio_peer(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    argv = ["private", "group", "--spawn", "--target", "socketio", "--server-cpus", ""]
    code = await asyncio.to_thread(bench, [*argv, "--results", str(out), *QUICK])
    assert_clean(records(out), {"private", "group"})
    assert code == 0


async def test_recall_and_mention_traffic_is_clean_and_really_sent(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, rate_limit_connection=0, rate_limit_user=0)
    server, runner = await start_server(settings)
    out = tmp_path / "v2.jsonl"
    argv = ["private", "group", "chatlist", "--url", server.url, "--results", str(out), *QUICK]
    argv += ["--recall-every", "3", "--mention-every", "2", "--chatlist-recalls", "2"]
    try:
        code = await asyncio.to_thread(bench, argv)
    finally:
        await runner.cleanup()
    found = records(out)
    assert_clean(found, {"private", "group", "chatlist"})
    assert code == 0
    with sqlite3.connect(tmp_path / "tidings.db") as db:
        kinds = dict(db.execute("SELECT kind, count(*) FROM messages GROUP BY kind").fetchall())
        mentioning = db.execute("SELECT count(*) FROM messages WHERE mentions IS NOT NULL")
        assert mentioning.fetchone()[0] > 0
    assert kinds.get("recall", 0) > 0 and kinds.get("text", 0) > kinds["recall"]
