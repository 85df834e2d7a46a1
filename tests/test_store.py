"""The store port's contract, run on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.backends import BACKENDS, database_url
from tidings.errors import ErrorCode, TidingsError
from tidings.ids import ConversationId, GroupId, UserId, parse_conversation
from tidings.models import Message
from tidings.store import ReadRequest, ReadResult, Roster, SendRequest, SeqsLost, StoredMessage
from tidings.store.sql import SqlStore

GAP = 300_000


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database_url(request.param, tmp_path) as found:
        yield found


@pytest.fixture(params=[b for b in BACKENDS if b != "sqlite"])
async def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database server's URL: for what only a server can do (close our connections)."""
    async with database_url(request.param, tmp_path) as found:
        yield found


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlStore]:
    opened = SqlStore.from_url(url, sqlite_synchronous="NORMAL")
    await opened.open()
    yield opened
    await opened.close()


async def _users(store: SqlStore, n: int) -> list[UserId]:
    return [UserId((await store.create_user(f"user{i}", f"User {i}", None)).id) for i in range(n)]


def allow_any_change(_roster: Roster, _users: Sequence[UserId]) -> None:
    """A membership rule that refuses nothing: the store's own behaviour, under test."""


def _send(sender: UserId, conversation: str, body: str, key: str | None = None) -> SendRequest:
    ref = parse_conversation(conversation)
    assert ref is not None
    return SendRequest(sender, ref, body, key)


def _read(user: UserId, conversation: str, seq: int) -> ReadRequest:
    ref = parse_conversation(conversation)
    assert ref is not None
    return ReadRequest(user, ref, seq)


def _stored(outcome: object) -> StoredMessage:
    assert isinstance(outcome, StoredMessage), outcome
    return outcome


async def test_a_batch_numbers_each_conversation_from_one_without_gaps(store: SqlStore) -> None:
    a, b, c = await _users(store, 3)
    ab, ac = f"p:{a}-{b}", f"p:{a}-{c}"
    batch = [_send(a, ab, "1"), _send(a, ac, "1"), _send(b, ab, "2"), _send(a, ab, "3")]
    outcomes = await store.commit_batch(batch, GAP)
    assert [(_stored(o).message.conversation, _stored(o).message.seq) for o in outcomes] == [
        (ab, 1),
        (ac, 1),
        (ab, 2),
        (ab, 3),
    ]
    more = await store.commit_batch([_send(b, ab, "4")], GAP)
    assert _stored(more[0]).message.seq == 4
    assert [m.seq for m in await store.history(ab, None, before=None, after=None, limit=50)] == [
        1,
        2,
        3,
        4,
    ]


async def test_a_client_msg_id_is_stored_once_within_and_across_batches(store: SqlStore) -> None:
    a, b = await _users(store, 2)
    ab = f"p:{a}-{b}"
    first, again = await store.commit_batch([_send(a, ab, "x", "k"), _send(a, ab, "x", "k")], GAP)
    assert _stored(first).fresh and not _stored(again).fresh
    assert _stored(again).message == _stored(first).message
    (later,) = await store.commit_batch([_send(a, ab, "other body", "k")], GAP)
    assert not _stored(later).fresh and _stored(later).message == _stored(first).message
    (other_sender,) = await store.commit_batch([_send(b, ab, "x", "k")], GAP)
    assert _stored(other_sender).fresh  # the key is scoped to its sender


async def test_repeats_of_many_senders_find_exactly_their_own_messages(store: SqlStore) -> None:
    """Keys are looked up as (sender, key) pairs, never as every sender × every key."""
    a, b, c = await _users(store, 3)
    chats = {a: f"p:{a}-{b}", b: f"p:{b}-{c}", c: f"p:{a}-{c}"}
    firsts = await store.commit_batch(
        [_send(s, chats[s], f"{s}/{k}", f"{s}-{k}") for s in (a, b, c) for k in range(3)], GAP
    )
    # Each sender repeats two of its three keys; a's key "b-0" belongs to b,
    # so it is new for a.
    again = await store.commit_batch(
        [_send(s, chats[s], "retry", f"{s}-{k}") for s in (c, b, a) for k in (2, 0)]
        + [_send(a, chats[a], "mine", f"{b}-0")],
        GAP,
    )
    original = {_stored(o).message.client_msg_id: _stored(o).message for o in firsts}
    for outcome in again[:6]:
        repeat = _stored(outcome)
        assert not repeat.fresh
        assert repeat.message == original[repeat.message.client_msg_id]
    new = _stored(again[6])
    assert new.fresh and new.message.sender == a and new.message.body == "mine"
    assert new.message.seq == 4


async def test_read_seq_moves_forward_only_and_is_clamped(store: SqlStore) -> None:
    a, b = await _users(store, 2)
    ab = f"p:{a}-{b}"
    await store.commit_batch([_send(a, ab, str(i)) for i in range(5)], GAP)
    (moved,) = await store.commit_batch([_read(b, ab, 99)], GAP)
    assert moved == ReadResult(b, ab, 5, moved=True)  # type: ignore[arg-type]
    (back,) = await store.commit_batch([_read(b, ab, 2)], GAP)
    assert isinstance(back, ReadResult) and (back.read_seq, back.moved) == (5, False)
    entry = await store.chat_entry(a, ab)  # type: ignore[arg-type]
    assert entry is not None and (entry.read_seq, entry.unread) == (5, 0)


async def test_a_read_in_a_batch_is_clamped_to_the_last_seq_when_it_arrived(
    store: SqlStore,
) -> None:
    a, b = await _users(store, 2)
    ab = f"p:{a}-{b}"
    await store.commit_batch([_send(a, ab, "1")], GAP)
    read, _ = await store.commit_batch([_read(b, ab, 10), _send(a, ab, "2")], GAP)
    assert isinstance(read, ReadResult) and read.read_seq == 1
    entry = await store.chat_entry(b, ab)  # type: ignore[arg-type]
    assert entry is not None and entry.unread == 1


async def test_group_sends_reach_members_and_refuse_others(store: SqlStore) -> None:
    owner, member, outsider = await _users(store, 3)
    change = await store.create_group(owner, "g", [member])
    assert change.group is not None
    conversation = f"g:{change.group.id}"
    ok, refused = await store.commit_batch(
        [_send(member, conversation, "hi"), _send(outsider, conversation, "hi")], GAP
    )
    assert set(_stored(ok).recipients) == {owner, member}
    assert isinstance(refused, TidingsError) and refused.code is ErrorCode.NOT_MEMBER


async def test_a_late_joiner_starts_at_the_groups_last_seq(store: SqlStore) -> None:
    owner, late = await _users(store, 2)
    change = await store.create_group(owner, "g", [])
    assert change.group is not None
    gid = GroupId(change.group.id)
    conversation = f"g:{gid}"
    await store.commit_batch([_send(owner, conversation, str(i)) for i in range(3)], GAP)
    # Seq 1 is the created notice, 2-4 the messages, 5 the notice that adds her.
    joined = await store.add_members(gid, [late], allow_any_change)
    assert joined.joined == (late,)
    assert joined.notice is not None and joined.notice.message.seq == 5
    assert joined.notice.message.system is not None
    assert joined.notice.message.system["event"] == "members_added"
    membership = await store.membership(conversation, late)  # type: ignore[arg-type]
    assert membership is not None and (membership.joined_seq, membership.read_seq) == (4, 5)
    entry = await store.chat_entry(late, conversation)  # type: ignore[arg-type]
    assert entry is not None and entry.unread == 0
    assert entry.last_message == joined.notice.message


async def test_a_members_history_starts_where_it_joined_and_a_strangers_is_empty(
    store: SqlStore,
) -> None:
    owner, late, stranger = await _users(store, 3)
    change = await store.create_group(owner, "g", [])
    assert change.group is not None
    gid = GroupId(change.group.id)
    conversation = ConversationId(f"g:{gid}")
    await store.commit_batch([_send(owner, conversation, f"early {i}") for i in range(3)], GAP)
    await store.add_members(gid, [late], allow_any_change)
    await store.commit_batch([_send(owner, conversation, f"late {i}") for i in range(3)], GAP)

    def seqs(found: list[Message]) -> list[int]:
        return [m.seq for m in found]

    # 1: created, 2-4: early, 5: the notice that added late, 6-8: late.
    page = {"before": None, "after": None, "limit": 50}
    assert seqs(await store.history(conversation, None, **page)) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert seqs(await store.history(conversation, owner, **page)) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert seqs(await store.history(conversation, late, **page)) == [5, 6, 7, 8]
    assert seqs(await store.history(conversation, stranger, **page)) == []
    newest = {"before": 8, "after": None, "limit": 2}
    assert seqs(await store.history(conversation, late, **newest)) == [6, 7]
    assert seqs(await store.history(conversation, owner, **newest)) == [6, 7]
    oldest = {"before": None, "after": 1, "limit": 2}
    assert seqs(await store.history(conversation, owner, **oldest)) == [2, 3]
    assert seqs(await store.history(conversation, late, **oldest)) == [5, 6]


async def test_the_parts_of_the_chat_list_agree_with_the_chat_list(store: SqlStore) -> None:
    """What the Redis chat list rebuilds from: positions, heads, names, read seqs."""
    owner, peer, late = await _users(store, 3)
    change = await store.create_group(owner, "team", [])
    assert change.group is not None
    gid = GroupId(change.group.id)
    group, private = f"g:{gid}", f"p:{owner}-{peer}"
    await store.commit_batch([_send(owner, group, "one"), _send(owner, private, "hi")], GAP)
    await store.add_members(gid, [late], allow_any_change)
    await store.commit_batch([_read(peer, private, 1), _send(owner, group, "two")], GAP)

    positions = {p.conversation: p for p in await store.member_positions(owner)}
    assert set(positions) == {group, private}
    late_positions = await store.member_positions(late)
    # The group: 1 created, 2 "one", 3 the notice that added late (read), 4 "two".
    assert [(p.conversation, p.read_seq, p.joined_seq) for p in late_positions] == [(group, 3, 2)]
    assert late_positions[0].joined_at > 0

    heads = {h.conversation: h for h in await store.conversation_heads([group, private])}
    listed = {e.id: e for e in (await store.chat_list(owner, 10)).conversations}
    for conversation in (group, private):
        head, entry = heads[conversation], listed[conversation]
        assert head.last_seq == entry.last_seq
        assert head.last_message == entry.last_message
        assert head.last_sent_at is not None
    assert positions[group].read_seq == listed[group].read_seq == 4

    # The name comes with the head, as of its last seq (None for a private chat).
    assert (heads[group].group_name, heads[private].group_name) == ("team", None)
    pairs = [(private, peer), (private, late), (group, late)]
    assert await store.read_seqs(pairs) == {(private, peer): 1, (group, late): 3}


async def test_two_nodes_sharing_a_database_never_repeat_or_skip_a_seq(url: str) -> None:
    nodes = [SqlStore.from_url(url, sqlite_synchronous="NORMAL") for _ in range(2)]
    for node in nodes:
        await node.open()
    try:
        owner, member = await _users(nodes[0], 2)
        change = await nodes[0].create_group(owner, "shared", [member])
        assert change.group is not None
        conversation = f"g:{change.group.id}"

        async def flood(node: SqlStore, sender: UserId) -> list[int]:
            seqs = []
            for round_ in range(20):
                batch = [_send(sender, conversation, f"{round_}.{i}") for i in range(5)]
                seqs += [_stored(o).message.seq for o in await node.commit_batch(batch, GAP)]
            return seqs

        first, second = await asyncio.gather(flood(nodes[0], owner), flood(nodes[1], member))
        assert sorted(first + second) == list(range(2, 202))  # after the created notice
    finally:
        for node in nodes:
            await node.close()


async def test_postgresql_spreads_messages_over_hash_partitions(url: str) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("partitioning is PostgreSQL's")
    from sqlalchemy import text

    store = SqlStore.from_url(url, pg_partitions=4)
    await store.open()
    try:
        a, b, c = await _users(store, 3)
        await store.commit_batch(
            [_send(a, f"p:{a}-{b}", "x"), _send(a, f"p:{a}-{c}", "y"), _send(b, f"p:{b}-{c}", "z")],
            GAP,
        )
        async with store._engines.reader.connect() as conn:
            parts = (
                (
                    await conn.execute(
                        text(
                            "SELECT c.relname FROM pg_inherits i "
                            "JOIN pg_class c ON c.oid = i.inhrelid "
                            "WHERE i.inhparent = 'messages'::regclass ORDER BY 1"
                        )
                    )
                )
                .scalars()
                .all()
            )
            counted = (await conn.execute(text("SELECT count(*) FROM messages"))).scalar_one()
        assert parts == ["messages_p0", "messages_p1", "messages_p2", "messages_p3"]
        assert counted == 3
    finally:
        await store.close()


async def test_reads_and_writes_outlive_the_database_closing_every_connection(
    server_url: str,
) -> None:
    """A database restart (or an idle timeout) closes pooled connections: the
    next read and the next batch must still succeed, not answer unavailable."""
    url = server_url
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    store = SqlStore.from_url(url)
    await store.open()
    try:
        a, b = await _users(store, 2)
        ab = f"p:{a}-{b}"
        await store.commit_batch([_send(a, ab, "before")], GAP)
        # Several readers at once, so the reader's pool holds several connections.
        await asyncio.gather(
            *(store.history(ab, None, before=None, after=None, limit=5) for _ in range(4))
        )

        killer = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with killer.connect() as conn:
                if url.startswith("postgresql"):
                    killed = await conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                    assert len(killed.all()) >= 2
                else:
                    ids = (
                        await conn.execute(
                            text(
                                "SELECT id FROM information_schema.processlist "
                                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                            )
                        )
                    ).scalars()
                    killed_ids = list(ids)
                    assert len(killed_ids) >= 2
                    for connection_id in killed_ids:
                        await conn.execute(text(f"KILL {int(connection_id)}"))
        finally:
            await killer.dispose()

        seen = await asyncio.gather(
            *(store.history(ab, None, before=None, after=None, limit=5) for _ in range(4))
        )
        assert all([m.body for m in page] == ["before"] for page in seen)
        after = await store.commit_batch([_send(b, ab, "after")], GAP)
        assert _stored(after[0]).message.seq == 2
        await store.ping()
    finally:
        await store.close()


async def test_sqlite_copies_its_wal_into_the_database_file_while_serving(tmp_path: Path) -> None:
    # The commits themselves checkpoint only past 10,000 WAL pages (~40 MB); a
    # thread of the store copies the WAL into the database file much sooner.
    path = tmp_path / "wal.db"
    store = SqlStore.from_url(f"sqlite+aiosqlite:///{path}")
    await store.open()
    try:
        a, b = await _users(store, 2)
        before = path.stat().st_size
        for batch in range(20):  # 400 KB of bodies, ~100+ pages
            sends = [_send(a, f"p:{a}-{b}", "x" * 1000, f"{batch}.{i}") for i in range(20)]
            await store.commit_batch(sends, GAP)
        deadline = asyncio.get_running_loop().time() + 10
        while path.stat().st_size < before + 400_000:
            assert asyncio.get_running_loop().time() < deadline, "the WAL was never copied"
            await asyncio.sleep(0.05)
    finally:
        await store.close()
    # The thread's connection closes with the store: the last connection to
    # close folds the WAL into the database and removes it.
    assert not (tmp_path / "wal.db-wal").exists()


async def test_seqs_lost_in_a_restore_are_never_given_again(store: SqlStore) -> None:
    """After a restore the next message goes on past what clients saw; read-up members stay read."""
    owner, reader, behind = await _users(store, 3)
    change = await store.create_group(owner, "g", [reader, behind])
    assert change.group is not None
    conversation = ConversationId(f"g:{change.group.id}")
    await store.commit_batch([_send(owner, conversation, f"m{i}") for i in range(4)], GAP)
    await store.commit_batch([_read(reader, conversation, 4), _read(behind, conversation, 2)], GAP)
    # Clients had seen up to seq 9 before the database went back to seq 4.
    await store.deployment().skip_lost_seqs([SeqsLost(conversation, 4, 9)])
    ok = await store.commit_batch([_send(owner, conversation, "after the restore")], GAP)
    assert _stored(ok[0]).message.seq == 10
    reader_entry = await store.chat_entry(reader, conversation)
    behind_entry = await store.chat_entry(behind, conversation)
    assert reader_entry is not None and (reader_entry.read_seq, reader_entry.unread) == (9, 1)
    assert behind_entry is not None and (behind_entry.read_seq, behind_entry.unread) == (2, 8)
    # Run twice (a second node at start, say): nothing moves back or again.
    await store.deployment().skip_lost_seqs([SeqsLost(conversation, 4, 9)])
    assert (await store.chat_entry(reader, conversation)).last_seq == 10  # type: ignore[union-attr]


async def test_a_new_password_hash_revokes_every_session_but_the_one_kept(store: SqlStore) -> None:
    user, other = await _users(store, 2)
    assert await store.password_hash(user) is None  # made without a password
    for token_hash in ("kept", "old-1", "old-2"):
        await store.create_session(token_hash, user)
    await store.create_session("someone-else", other)
    revoked = await store.set_password_hash(user, "hash-2", keep_session="kept")
    assert sorted(revoked) == ["old-1", "old-2"]
    assert await store.password_hash(user) == "hash-2"
    assert await store.session_user("kept") == user
    assert [await store.session_user(h) for h in ("old-1", "old-2")] == [None, None]
    assert await store.session_user("someone-else") == other
    assert await store.password_hash(other) is None  # only the user's row changed
    # Without a session to keep, every one goes.
    assert await store.set_password_hash(user, "hash-3") == ["kept"]
    assert await store.session_user("kept") is None
    assert await store.password_hash(UserId(999_999)) is None


async def test_a_users_peers_and_their_entries_of_the_private_chat(store: SqlStore) -> None:
    user, peer, quiet, stranger = await _users(store, 4)
    change = await store.create_group(user, "g", [stranger])  # a group makes no peer
    assert change.group is not None
    up, uq = f"p:{user}-{peer}", f"p:{user}-{quiet}"
    await store.commit_batch(
        [_send(user, up, "hi"), _send(peer, up, "yo"), _send(quiet, uq, "x")], GAP
    )
    assert sorted(await store.private_peers(user)) == sorted([peer, quiet])
    assert await store.private_peers(stranger) == []
    await store.set_display_name(user, "New name")
    entries = await store.peer_entries(user, [peer, quiet, stranger])
    assert sorted(entries) == sorted([peer, quiet])  # no private chat with stranger
    for member, entry in entries.items():
        assert entry == await store.chat_entry(member, entry.id)  # type: ignore[arg-type]
        assert (entry.title, entry.peer_id, entry.type) == ("New name", user, "private")
    assert (entries[peer].last_seq, entries[peer].read_seq) == (2, 2)
    assert (entries[quiet].unread, entries[quiet].last_message.body) == (0, "x")  # type: ignore[union-attr]
    assert await store.peer_entries(user, []) == {}
