"""``tidings user|group|push|stats`` against a real server with the admin API on."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from tests.conftest import RunningServer, ServerFactory
from tidings import admin_cli
from tidings.client import Client

TOKEN = "cli-s3cret"


@pytest.fixture
async def server(make_server: ServerFactory) -> RunningServer:
    return await make_server(service_token=TOKEN)


class Cli:
    """Runs ``tidings.admin_cli.main`` (in a thread: it runs its own event loop)."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    async def run(self, *argv: str, token: str | None = TOKEN) -> tuple[int, str, str]:
        flags = ["--url", self.url] + ([] if token is None else ["--service-token", token])
        self.capsys.readouterr()
        code = await asyncio.to_thread(admin_cli.main, [*argv, *flags])
        out, err = self.capsys.readouterr()
        return code, out, err

    async def ok(self, *argv: str) -> Any:
        code, out, err = await self.run(*argv)
        assert code == 0, err
        assert out.endswith("\n") and out.count("\n") == 1, "one line of JSON"
        return json.loads(out)

    async def fails(self, *argv: str, token: str | None = TOKEN) -> str:
        code, out, err = await self.run(*argv, token=token)
        assert code == 1 and out == ""
        return err


@pytest.fixture
def cli(server: RunningServer, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server.url, capsys)


async def test_users_are_created_listed_and_given_tokens(cli: Cli, server: RunningServer) -> None:
    alice = await cli.ok("user", "create", "alice", "--display-name", "Alice L.")
    assert alice == {"id": alice["id"], "username": "alice", "display_name": "Alice L."}
    bob = await cli.ok("user", "create", "bob")
    assert bob["display_name"] == "bob"
    assert "username_taken" in await cli.fails("user", "create", "ALICE")

    assert await cli.ok("user", "list") == {"users": [alice, bob]}
    assert await cli.ok("user", "list", "--limit", "1") == {"users": [alice]}
    assert await cli.ok("user", "list", "--after-id", str(alice["id"])) == {"users": [bob]}

    minted = await cli.ok("user", "token", str(bob["id"]))
    async with Client(server.url, minted["token"]) as client:
        assert (await client.me()).id == bob["id"]
        async with await client.connect() as ws:
            assert ws.user is not None and ws.user.username == "bob"
    assert "not_found" in await cli.fails("user", "token", "999999")


async def test_groups_are_created_and_members_added_and_removed(cli: Cli) -> None:
    ids = [(await cli.ok("user", "create", f"member{i}"))["id"] for i in range(4)]
    group = await cli.ok(
        "group", "create", "team", "--owner", str(ids[0]), "--members", f"{ids[1]},{ids[2]}"
    )
    assert group["name"] == "team" and group["owner_id"] == ids[0]
    assert sorted(group["member_ids"]) == ids[:3]
    gid = str(group["id"])
    added = await cli.ok("group", "add", gid, str(ids[3]), str(ids[1]))
    assert sorted(added["member_ids"]) == ids
    removed = await cli.ok("group", "remove", gid, str(ids[1]), str(ids[2]))
    assert sorted(removed["member_ids"]) == [ids[0], ids[3]]
    assert "not_found" in await cli.fails("group", "add", "999999", str(ids[0]))


async def test_push_reaches_the_named_users_sockets(cli: Cli, server: RunningServer) -> None:
    ids = [(await cli.ok("user", "create", f"pushed{i}"))["id"] for i in range(2)]
    tokens = [(await cli.ok("user", "token", str(uid)))["token"] for uid in ids]
    async with Client(server.url, tokens[0]) as first, Client(server.url, tokens[1]) as second:
        ws, other = await first.connect(), await second.connect()
        event = {"kind": "order_shipped", "order": 42}
        reached = await cli.ok("push", "--users", str(ids[0]), json.dumps(event))
        assert reached == {"connections": 1}
        assert await ws.next_event() == {"type": "push", "event": event}
        assert await cli.ok("push", "--all", '"everyone"') == {"connections": 2}
        for sock in (ws, other):
            assert await sock.next_event() == {"type": "push", "event": "everyone"}
        group = await cli.ok("group", "create", "g", "--owner", str(ids[1]))
        assert (await other.next_event())["type"] == "conversation"
        created = await other.next_event()  # the group's first entry, its created notice
        assert created["message"]["system"]["event"] == "created"
        assert await cli.ok("push", "--group", str(group["id"]), "[1, 2]") == {"connections": 1}
        assert await other.next_event() == {"type": "push", "event": [1, 2]}
        with pytest.raises(TimeoutError):
            await ws.next_event(timeout=0.3)

        stats = await cli.ok("stats")
        assert stats["connections"] == 2
        assert [node["connections"] for node in stats["nodes"]] == [2]
        assert stats["nodes"][0]["users_online"] == 2


async def test_bad_arguments_and_refusals(
    cli: Cli, make_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        await cli.run("push", "--all", "{not json")
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:
        await cli.run("push", "--all", "--users", "1", "{}")
    assert usage.value.code == 2
    assert "unauthorized" in await cli.fails("stats", token="wrong")
    off = Cli((await make_server()).url, capsys)  # no service token configured
    assert "forbidden" in await off.fails("stats")
    unreachable = Cli("http://127.0.0.1:9", capsys)
    assert "cannot reach" in await unreachable.fails("stats")


async def test_the_tidings_command_dispatches_with_settings_from_the_environment(
    server: RunningServer,
) -> None:
    env = dict(os.environ, TIDINGS_URL=server.url, TIDINGS_SERVICE_TOKEN=TOKEN)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidings",
        "user",
        "create",
        "from_env",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["username"] == "from_env"
    env.pop("TIDINGS_SERVICE_TOKEN")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidings",
        "stats",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2 and b"TIDINGS_SERVICE_TOKEN" in err
