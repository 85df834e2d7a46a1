"""A database a v1 server made, upgraded in place by this server (Alembic 0003 to the newest).

The v1 server is the real one: the package as it stood in git just before
the v2 migration was added, run as a subprocess on a fresh database of each
stack (and, on the Redis stack, with its Redis chat list). This server then
starts on the same database and Redis prefix, migrates at start, and must
answer what v1 answered (plus v2's defaults), then do v2 things on v1 rows
with every count still exact.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import database_url, redis_url
from tests.conftest import PASSWORD, settings_for, start_server
from tests.test_counts_v2 import expected_entry, full_history
from tests.test_schema_indexes import assert_file_index_only_holds_messages_with_a_file
from tidings.client import ApiError, Client
from tidings.harness.spawn import CHEAP_HASHING, ServerProcess, serve_command, serve_env

REPO = Path(__file__).resolve().parent.parent
V2_MIGRATION = "tidings/store/migrations/versions/0003_message_kinds.py"
# What a v1 message or chat-list entry reads as under v2 (PROTOCOL-v2 §1).
V2_MESSAGE_DEFAULTS: dict[str, Any] = {
    "kind": "text",
    "attachment": None,
    "reply_to": None,
    "forwarded_from": None,
    "mentions": [],
    "mention_all": False,
    "target_seq": None,
    "recalled": False,
    "edited_at": None,
    "system": None,
}


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def v1_package(into: Path) -> Path:
    """The ``tidings`` package of the commit before the v2 migration, unpacked in ``into``."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout of tidings: the v1 server comes from its history")
    added = git("log", "--diff-filter=A", "--format=%H", "-1", "--", V2_MIGRATION)
    if not added:
        pytest.skip(f"{V2_MIGRATION} is not committed yet: no v1 commit to start from")
    archive = into / "v1.tar"
    git("archive", "--format=tar", f"--output={archive}", f"{added}^", "tidings")
    with tarfile.open(archive) as tar:
        tar.extractall(into / "v1", filter="data")
    return into / "v1"


@contextlib.asynccontextmanager
async def stores(stack: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    database, _, broker = stack.partition("+")
    async with contextlib.AsyncExitStack() as resources:
        url = await resources.enter_async_context(database_url(database, tmp_path))
        found: dict[str, Any] = {"database_url": url}
        if broker == "redis":
            found["redis_url"] = await resources.enter_async_context(redis_url())
            found["redis_prefix"] = f"tidings_t_{secrets.token_hex(6)}:"
        yield found


def with_defaults(entry: dict[str, Any]) -> dict[str, Any]:
    last = entry["last_message"]
    return entry | {
        "mentioned": 0,
        # PROTOCOL-v2 §5 (migration 0004): nothing kept on any entry.
        "pinned": False,
        "muted": False,
        "marked_unread": False,
        "draft": None,
        "hidden": False,
        "last_message": None if last is None else last | V2_MESSAGE_DEFAULTS,
    }


async def answers(url: str, tokens: dict[str, str], group: str, chat: str) -> dict[str, Any]:
    """Every chat list and history the three users can read, as raw JSON."""
    seen: dict[str, Any] = {}
    for name, token in tokens.items():
        async with Client(url, token=token) as client:
            status, listed = await client.request("GET", "/api/v1/conversations")
            assert status == 200, listed
            seen[f"{name} list"] = listed["conversations"]  # type: ignore[index]
            for conversation in (group, chat):
                status, page = await client.request(
                    "GET", f"/api/v1/conversations/{conversation}/messages?after=0"
                )
                if status == 200:
                    seen[f"{name} {conversation}"] = page["messages"]  # type: ignore[index]
    return seen


async def test_a_v1_database_is_upgraded_in_place(stack: str, tmp_path: Path) -> None:
    v1 = v1_package(tmp_path)
    async with stores(stack, tmp_path) as backing:
        env = serve_env(
            {f"TIDINGS_{k.upper()}": str(v) for k, v in backing.items()}
            | {"TIDINGS_LOG_LEVEL": "WARNING", **CHEAP_HASHING}
        )
        env["PYTHONPATH"] = str(v1)  # the v1 package, not this checkout's
        old = ServerProcess(serve_command(), env, cwd=tmp_path, discard_stdout=True)
        try:
            tokens: dict[str, str] = {}
            ids: dict[str, int] = {}
            async with Client(old.url) as client:
                for name in ("alice", "bob", "carol"):
                    ids[name] = (await client.signup(name, PASSWORD)).id
                    tokens[name] = (await client.login(name, PASSWORD)).token
            async with (
                Client(old.url, token=tokens["alice"]) as alice,
                Client(old.url, token=tokens["bob"]) as bob,
            ):
                group = f"g:{(await alice.create_group('Team', [ids['bob'], ids['carol']])).id}"
                chat = f"p:{ids['alice']}-{ids['bob']}"
                for index in range(3):
                    await alice.send(group, f"a{index}")
                    await bob.send(group, f"b{index}", client_msg_id=f"b{index}")
                await alice.send(chat, "hi bob")
                await bob.send(chat, "hi alice")
                await alice.send(chat, "typo")
                await bob.mark_read(group, 3)
            before = await answers(old.url, tokens, group, chat)
            assert "kind" not in before[f"alice {group}"][0]  # it was v1 that answered
        finally:
            old.stop()

        new, runner = await start_server(settings_for(tmp_path, **backing))
        try:
            after = await answers(new.url, tokens, group, chat)
            assert after.keys() == before.keys()
            for key, v1_answer in before.items():
                if key.endswith(" list"):
                    assert after[key] == [with_defaults(e) for e in v1_answer], key
                else:
                    assert after[key] == [m | V2_MESSAGE_DEFAULTS for m in v1_answer], key
            # v2 on v1 rows: a repeat of a v1 client_msg_id is still the v1 message,
            # the owner recalls a v1 message, its sender edits one, a reply quotes one.
            async with (
                Client(new.url, token=tokens["alice"]) as alice,
                Client(new.url, token=tokens["bob"]) as bob,
                Client(new.url, token=tokens["carol"]) as carol,
            ):
                again = await bob.send(group, "b1", client_msg_id="b1")
                assert again.seq == 4
                await alice.recall(group, 2)
                await alice.edit(chat, 3, "typo fixed")
                reply = await carol.send(group, "noted", reply_to=1, mentions=[ids["bob"]])
                assert reply.reply_to is not None and reply.reply_to.preview == "a0"
                # PROTOCOL-v2 §7: the v1 messages are found as they read now.
                found = await bob.search_messages("HI ALICE")
                assert [m.body for m in found.messages] == ["hi alice"]
                found = await alice.search_messages("typo")
                assert [m.body for m in found.messages] == ["typo fixed"]
                assert (await carol.search_messages("hi b")).messages == []
                for client, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
                    for entry in await client.conversations():
                        messages = await full_history(client, entry.id)
                        want = expected_entry(ids[name], messages, entry.read_seq)
                        got = {
                            "unread": entry.unread,
                            "mentioned": entry.mentioned,
                            "last_seq": entry.last_seq,
                            "last_message": entry.last_message,
                        }
                        assert got == want, (name, entry.id)
                bob_group = await bob.conversation(group)
                assert (bob_group.unread, bob_group.mentioned) == (1, 1)
                # PROTOCOL-v2 §6 (migration 0005) on a v1 group: it reads as unrun,
                # and each change is a notice at the seq after the v1 messages.
                gid = int(group[2:])
                v1_group = await alice.group(gid)
                assert (v1_group.admin_ids, v1_group.announcement) == ([], None)
                assert (v1_group.muted_ids, v1_group.muted_all, v1_group.dissolved) == (
                    [],
                    False,
                    False,
                )
                last = (await alice.conversation(group)).last_seq
                carol_before = await carol.conversation(group)
                await alice.update_group(gid, name="Team 2")
                await alice.set_admins(gid, [ids["bob"]])
                await bob.mute_member(gid, ids["carol"], 60)  # an admin mutes a member
                with pytest.raises(ApiError) as muted:
                    await carol.send(group, "hello?")
                assert muted.value.code == "muted"
                history = await full_history(carol, group)
                notices = [(m.seq, m.system["event"]) for m in history if m.system]
                assert notices == [
                    (last + 1, "renamed"),
                    (last + 2, "admins_changed"),
                    (last + 3, "muted"),
                ]
                assert (await carol.conversation(group)).title == "Team 2"
                carol_after = await carol.conversation(group)
                assert (carol_after.unread, carol_after.mentioned) == (
                    carol_before.unread,
                    carol_before.mentioned,
                )  # notices never count
        finally:
            await runner.cleanup()
        # Migration 0010 on a v1 database too: the file index holds only messages with a file.
        await assert_file_index_only_holds_messages_with_a_file(backing["database_url"])
