"""Exactness under concurrency: gapless seqs, per-connection order, exact counts."""

from __future__ import annotations

import asyncio

from tests.conftest import AccountFactory


async def test_ten_clients_sending_thirty_each_to_one_group_give_seqs_1_to_300(
    make_account: AccountFactory,
) -> None:
    senders = [await make_account() for _ in range(10)]
    silent = await make_account("silent")
    owner = senders[0]
    group = await owner.client.create_group("busy", [s.id for s in senders[1:]] + [silent.id])
    conversation = f"g:{group.id}"
    listener = await silent.client.connect()
    sockets = [await s.client.connect() for s in senders]

    async def stream(index: int) -> list[int]:
        acked = []
        for n in range(30):
            message = await sockets[index].send(conversation, f"{index}:{n}")
            acked.append(message.seq)
        return acked

    acked = await asyncio.gather(*(stream(i) for i in range(10)))
    every_seq = sorted(seq for per_sender in acked for seq in per_sender)
    assert every_seq == list(range(2, 302))  # after the group's created notice
    for per_sender in acked:
        assert per_sender == sorted(per_sender)  # a sender's own sends keep their order

    received = [await listener.next_event(timeout=10) for _ in range(300)]
    assert [e["message"]["seq"] for e in received] == list(range(2, 302))  # type: ignore[index]

    entry = next(c for c in await silent.client.conversations() if c.id == conversation)
    assert (entry.unread, entry.last_seq, entry.read_seq) == (300, 301, 1)
    history = []
    after = 0
    while batch := await silent.client.messages(conversation, after=after, limit=200):
        history.extend(batch)
        after = batch[-1].seq
    assert [m.seq for m in history] == list(range(1, 302))
    assert history[0].kind == "system"
    bodies = {m.body for m in history[1:]}
    assert bodies == {f"{i}:{n}" for i in range(10) for n in range(30)}
    for ws in [listener, *sockets]:
        await ws.close()


async def test_every_member_connection_sees_a_groups_messages_in_seq_order(
    make_account: AccountFactory,
) -> None:
    members = [await make_account() for _ in range(5)]
    group = await members[0].client.create_group("order", [m.id for m in members[1:]])
    conversation = f"g:{group.id}"
    sockets = [await m.client.connect() for m in members]
    watchers = [await m.client.connect() for m in members]  # a second device each

    async def burst(index: int) -> None:
        await asyncio.gather(*(sockets[index].send(conversation, f"b{n}") for n in range(20)))

    await asyncio.gather(*(burst(i) for i in range(5)))
    for watcher in watchers:
        seqs = [(await watcher.next_event(timeout=10))["message"]["seq"] for _ in range(100)]  # type: ignore[index]
        assert seqs == list(range(2, 102))  # seq 1, the created notice, came before
    for ws in sockets + watchers:
        await ws.close()


async def test_unread_is_exact_when_reads_and_sends_race(make_account: AccountFactory) -> None:
    reader = await make_account()
    writers = [await make_account() for _ in range(4)]
    group = await reader.client.create_group("race", [w.id for w in writers])
    conversation = f"g:{group.id}"
    reader_ws = await reader.client.connect()
    writer_ws = [await w.client.connect() for w in writers]

    async def write(index: int) -> None:
        for n in range(25):
            await writer_ws[index].send(conversation, f"{index}-{n}")

    async def read_along() -> None:
        for _ in range(40):
            entry = next(c for c in await reader.client.conversations() if c.id == conversation)
            await reader_ws.mark_read(conversation, entry.last_seq)

    await asyncio.gather(read_along(), *(write(i) for i in range(4)))
    final = next(c for c in await reader.client.conversations() if c.id == conversation)
    assert final.last_seq == 101  # the created notice and 100 messages
    assert final.unread == final.last_seq - final.read_seq  # the notice is read (seq 1)
    await reader_ws.mark_read(conversation, 101)
    final = next(c for c in await reader.client.conversations() if c.id == conversation)
    assert (final.unread, final.read_seq) == (0, 101)
    for w, ws in zip(writers, writer_ws, strict=True):
        entry = next(c for c in await w.client.conversations() if c.id == conversation)
        assert entry.last_seq == 101
        assert entry.unread == 101 - entry.read_seq
        await ws.close()
    await reader_ws.close()
