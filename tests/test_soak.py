"""The soak test, short: random clients on one node and on two, then every invariant.

The long runs and their figures are in docs/reliability.md (``tidings
soak --spawn --duration 120 ...``); these keep the same machinery honest
in the suite: a few seconds of the same random traffic must end with
nothing lost, duplicated or reordered and every chat list exact. The
checks themselves are tested on doctored records first, so that a clean
report means something. Last, SIGTERM under load: what was acked stays,
what was not is either refused or stored once, and a restart resumes
the same state.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tidings.client import ApiError, Client, Socket
from tidings.harness.spawn import ServerProcess
from tidings.models import ChatList, Conversation, Draft, Message
from tidings.soak.actor import Actor, Attempt, SessionLog
from tidings.soak.check import check_chat_lists, check_deliveries, check_store
from tidings.soak.command import Options, Report, run_soak
from tidings.soak.keep import Kept, order_errors
from tidings.soak.nodes import SOAK_ENV
from tidings.soak.world import Member, World

pytestmark = pytest.mark.slow


def quiet(_: str) -> None:
    """Progress lines are for a terminal, not the test log."""


def assert_clean(report: Report) -> None:
    assert report.traffic["messages_acked"] > 100, "the soak barely ran; it proves nothing"
    assert report.checked["deliveries_checked"] > report.traffic["messages_acked"]
    assert report.checked["chat_entries_checked"] > 0
    assert report.traffic["reconnects"] > 0 and report.traffic["abrupt_drops"] > 0
    assert (report.lost, report.duplicated, report.order_violations) == (0, 0, 0), report.examples
    assert report.violations["chat_list"] == 0, report.examples
    assert report.ok, (report.failures, report.examples)


async def test_soak_on_one_node_with_sqlite(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server(**SOAK_ENV)
    options = Options(duration=6, clients=10, urls=[server.url], seed=3, warmup=1)
    assert_clean(await run_soak(options, quiet))


async def test_soak_on_two_nodes_with_postgresql_and_redis(
    cluster_env: dict[str, str], spawn_server: Callable[..., ServerProcess]
) -> None:
    nodes = [spawn_server(**cluster_env, **SOAK_ENV) for _ in range(2)]
    options = Options(duration=7, clients=10, urls=[n.url for n in nodes], seed=4, warmup=1)
    assert_clean(await run_soak(options, quiet))


async def test_soak_survives_a_sigterm_and_a_sigkill_of_its_node() -> None:
    """``--spawn --restart-every``: the second fault is a SIGKILL, and nothing acked is lost."""
    options = Options(duration=9, clients=8, spawn=True, restart_every=2, seed=5, warmup=1)
    report = await run_soak(options, quiet)
    assert [f["signal"] for f in report.faults][:2] == ["SIGTERM", "SIGKILL"]
    assert report.faults[0]["exit_code"] == 0
    assert_clean(report)


# -- the checks catch what they claim -------------------------------------------------


def _message(conversation: str, seq: int, sender: int, cmid: str) -> Message:
    return Message(
        id=f"{conversation}#{seq}",
        conversation=conversation,
        seq=seq,
        sender=sender,
        body=f"{cmid} hi",
        client_msg_id=cmid,
        sent_at=f"2026-01-01T00:00:{seq:02d}.000Z",
        time_separator=seq == 1,
    )


def _doctored() -> tuple[World, list[Actor], dict[str, list[Message]]]:
    """Two users in a group: history 1..6, user 1 sent 1-3, user 2 sent 4-6."""
    world = World([Member(0, 1, "a", "t1"), Member(1, 2, "b", "t2")], {"g:1": [1, 2]}, [])
    world.conversations_of = {1: ["g:1"], 2: ["g:1"]}
    history = [_message("g:1", s, 1 if s <= 3 else 2, f"c{s}") for s in range(1, 7)]
    actors = [Actor(u, f"t{u}", ["g:1"], random.Random(u)) for u in (1, 2)]
    for m in history:
        sender = actors[m.sender - 1]
        assert m.client_msg_id is not None
        sender.attempts[m.client_msg_id] = Attempt(m.client_msg_id, "g:1", m.body, 1, m)
    return world, actors, {"g:1": history}


def test_the_checks_find_lost_reordered_duplicated_and_gapped_deliveries() -> None:
    world, actors, histories = _doctored()
    reader = actors[0]  # acked 1-3 itself; must see 4-6 live or by catch-up
    one, two = SessionLog(0), SessionLog(0)
    one.acked["g:1"] = [1, 2, 3]
    one.live["g:1"] = [(5, "g:1#5"), (4, "g:1#4"), (4, "g:1#4")]  # out of order, twice
    two.live["g:1"] = [(2, "g:1#2")]
    reader.sessions = [one, two]
    actors[1].caught["g:1"] = {m.seq: m.id for m in histories["g:1"]}  # saw all by catch-up
    found, figures = check_store(world, actors, histories)
    check_deliveries(actors, histories, found, figures)
    assert found.counts["order_violations"] == 1
    assert found.counts["duplicated_live"] == 1
    assert found.counts["lost_deliveries"] == 1  # 6, neither acked, live nor caught up
    one.live["g:1"] = [(4, "g:1#4"), (6, "g:1#6")]  # 5 skipped on a live connection
    found, figures = check_store(world, actors, histories)
    check_deliveries(actors, histories, found, figures)
    assert found.counts["live_gaps"] == 1


def test_the_checks_find_lost_and_doubled_messages_and_wrong_chat_lists() -> None:
    world, actors, histories = _doctored()
    history = histories["g:1"]
    lost = Message(**{**_fields(history[0]), "id": "g:1#9", "seq": 9, "client_msg_id": "c9"})
    actors[0].attempts["c9"] = Attempt("c9", "g:1", lost.body, 1, lost)
    doubled = Message(**{**_fields(history[1]), "id": "g:1#7", "seq": 7})
    histories["g:1"] = [*history, doubled]
    found, _ = check_store(world, actors, histories)
    assert found.counts["lost_acked"] == 1
    assert found.counts["duplicated_stored"] == 1
    histories["g:1"] = history
    entry = Conversation(
        id="g:1",
        type="group",
        title="g",
        peer_id=None,
        group_id=1,
        unread=0,  # user 1 read nothing after its own 3: 3 unread, not 0
        last_seq=6,
        read_seq=3,
        last_message=history[-1],
        updated_at=history[-1].sent_at,
    )
    found, figures = check_store(world, actors, histories)
    check_chat_lists(world, actors, histories, {(1, 0): ChatList([entry])}, found, figures)
    assert found.counts["chat_list"] == 1


def test_the_checks_hold_the_chat_list_to_the_v2_counts() -> None:
    """A recall and an edit by user 2, a mention of user 1: every v2 rule is checked."""
    world, actors, histories = _doctored()
    history = histories["g:1"]
    mention = Message(**{**_fields(history[4]), "mentions": [1]})  # seq 5 @s user 1
    recalled = Message(**{**_fields(history[3]), "body": None, "recalled": True})  # seq 4
    recall = Message(
        **{
            **_fields(_message("g:1", 7, 2, "r7")),
            "body": "b recalled a message",
            "kind": "recall",
            "target_seq": 4,
        }
    )
    edit = Message(**{**_fields(_message("g:1", 8, 2, "e8")), "kind": "edit", "target_seq": 6})
    edited = Message(**{**_fields(history[5]), "body": edit.body, "edited_at": edit.sent_at})
    histories["g:1"] = [*history[:3], recalled, mention, edited, recall, edit]
    actors[1].attempts["c5"].mentions = (1,)
    actors[1].attempts["r7"] = Attempt("r7", "g:1", "", 1, recall, kind="recall", target=4)
    actors[1].attempts["e8"] = Attempt("e8", "g:1", edit.body or "", 1, edit, kind="edit", target=6)
    found, figures = check_store(world, actors, histories)
    assert sum(found.counts.values()) == 0, found.examples

    def entry(**changes: Any) -> Conversation:
        right = Conversation(
            id="g:1",
            type="group",
            title="g",
            peer_id=None,
            group_id=1,
            unread=2,  # 5 and 6: 4 is recalled, 7 and 8 are notices
            last_seq=8,
            read_seq=3,
            last_message=histories["g:1"][6],  # the recall notice: the edit does not count
            updated_at=histories["g:1"][6].sent_at,
            mentioned=1,
        )
        return Conversation(**{**_fields(right), **changes})

    for wrong, expected in [
        ({}, 0),
        ({"mentioned": 0}, 1),
        ({"unread": 3}, 1),  # the recalled message counted
        ({"last_message": edit, "updated_at": edit.sent_at}, 2),  # an edit notice shown
    ]:
        found, figures = check_store(world, actors, histories)
        listed = ChatList([entry(**wrong)], total_unread=entry(**wrong).unread)
        check_chat_lists(world, actors, histories, {(1, 0): listed}, found, figures)
        assert found.counts["chat_list"] == expected, (wrong, found.examples)


def test_the_checks_hold_entries_to_what_their_user_kept() -> None:
    """PROTOCOL-v2 §5 in the soak: pinned, a draft a later send cleared, hidden until a
    countable message, the order and total_unread; each wrong value is one finding."""
    world, actors, histories = _doctored()
    history = histories["g:1"]
    user = actors[0]  # user 1, whose own messages are seqs 1-3
    user.kept["g:1"] = Kept(
        pinned={True},
        muted={True},
        drafts={"half"},
        draft_clock=0,  # every send of user 1 came after it (their clocks are 1 and up)
        hidden_seq=2,  # hidden as of seq 2: seqs 3-6 are countable, so it shows again
    )
    for clock, attempt in enumerate(user.attempts.values(), start=1):
        attempt.born = clock

    def entry(**changes: Any) -> Conversation:
        right = Conversation(
            id="g:1",
            type="group",
            title="g",
            peer_id=None,
            group_id=1,
            unread=3,
            last_seq=6,
            read_seq=3,
            last_message=history[-1],
            updated_at=history[-1].sent_at,
            pinned=True,
            muted=True,
        )
        return Conversation(**{**_fields(right), **changes})

    draft = Draft(body="half", updated_at=history[-1].sent_at)
    for wrong, total, expected in [
        ({}, 0, 0),  # muted: out of the total
        ({"pinned": False}, 0, 1),
        ({"draft": draft}, 0, 1),  # a later send of the user's cleared it
        ({"hidden": True}, 0, 1),  # a countable message came after seq 2
        ({"marked_unread": True}, 0, 1),  # never marked
        ({}, 3, 1),  # a muted entry counted in the total
    ]:
        found, figures = check_store(world, actors, histories)
        listed = ChatList([entry(**wrong)], total_unread=total)
        check_chat_lists(world, actors, histories, {(1, 0): listed}, found, figures)
        assert found.counts["chat_list"] == expected, (wrong, found.examples)
    # Unpinned entries after pinned ones: the order is checked too.
    assert order_errors([entry(pinned=False), entry(id="g:2")]) != []
    assert order_errors([entry(id="g:2"), entry(pinned=False)]) == []


def _fields(message: Message) -> dict[str, Any]:
    return {name: getattr(message, name) for name in message.__struct_fields__}


# -- SIGTERM under load ---------------------------------------------------------------


async def _all(client: Client, conversation: str) -> list[Message]:
    found: list[Message] = []
    while page := await client.messages(conversation, after=len(found), limit=200):
        found += page
    return found


async def _state(client: Client, conversations: list[str]) -> dict[str, Any]:
    entries = sorted(
        (e.id, e.last_seq, e.read_seq, e.unread, e.last_message.id if e.last_message else None)
        for e in await client.conversations()
    )
    history = {
        c: [(m.seq, m.id, m.client_msg_id) for m in await _all(client, c)] for c in conversations
    }
    return {"chat_list": entries, "history": history}


@pytest.fixture
async def opened() -> AsyncIterator[list[Client]]:
    """Clients a test opens, closed afterwards even when it fails."""
    clients: list[Client] = []
    yield clients
    for client in clients:
        await client.close()


async def test_sigterm_under_load_drains_and_a_restart_resumes_the_same_state(
    spawn_server: Callable[..., ServerProcess], opened: list[Client]
) -> None:
    server = spawn_server(**SOAK_ENV)
    clients: list[Client] = []
    for n in range(4):
        client = Client(server.url)
        opened.append(client)
        await client.signup(f"drain{n}", "drain-password")
        await client.login(f"drain{n}", "drain-password")
        clients.append(client)
    ids = [(await c.me()).id for c in clients]
    group = await clients[0].create_group("drain", ids[1:])
    conversations = [f"g:{group.id}", f"p:{min(ids[0], ids[1])}-{max(ids[0], ids[1])}"]
    sockets = [await c.connect() for c in clients]
    acked: dict[str, Message] = {}
    unacked: dict[str, tuple[int, str, str]] = {}  # cmid -> (client, conversation, why)

    async def stream(index: int, sock: Socket) -> None:
        """Pipelined sends, four at a time, until the socket goes."""
        n = 0
        while not sock.closed:
            batch = []
            for _ in range(4):
                conversation = conversations[(index + n) % 2] if index < 2 else conversations[0]
                batch.append((f"d{index}-{n}", conversation))
                n += 1
            results = await asyncio.gather(
                *(sock.send(c, f"{k} body", k) for k, c in batch), return_exceptions=True
            )
            for (key, conversation), result in zip(batch, results, strict=True):
                if isinstance(result, Message):
                    acked[key] = result
                elif isinstance(result, ApiError):
                    unacked[key] = (index, conversation, result.code)
                else:
                    unacked[key] = (index, conversation, type(result).__name__)

    streams = [asyncio.create_task(stream(i, s)) for i, s in enumerate(sockets)]
    await asyncio.sleep(1.0)
    loop = asyncio.get_running_loop()
    exit_code = await loop.run_in_executor(None, server.terminate)
    await asyncio.wait_for(asyncio.gather(*streams), 20)
    assert exit_code == 0, "SIGTERM must drain and exit 0"
    assert [await s.wait_closed() for s in sockets] == [1001] * 4
    assert len(acked) > 100, "the streams barely ran; the test proves nothing"
    assert {why for _, _, why in unacked.values()} <= {"unavailable", "closed"}, unacked
    for client in clients:
        await client.close()

    restarted = spawn_server(**SOAK_ENV)  # same database file, new port
    fresh = [Client(restarted.url, token=c.token) for c in clients]
    opened.extend(fresh)
    state = await _state(fresh[0], conversations)
    stored = {cmid: (seq, ident) for c in conversations for seq, ident, cmid in state["history"][c]}
    for conversation in conversations:
        seqs = [seq for seq, _, _ in state["history"][conversation]]
        assert seqs == list(range(1, len(seqs) + 1)), f"gap or repeat in {conversation}"
    assert len(stored) == sum(len(h) for h in state["history"].values()), "a cmid stored twice"
    for key, message in acked.items():
        assert stored.get(key) == (message.seq, message.id), f"acked {key} lost"
    # An unacked send was either never stored, or it was and a resend returns it.
    for key, (index, conversation, _) in unacked.items():
        status, body = await fresh[index].request(
            "POST",
            f"/api/v1/conversations/{conversation}/messages",
            {"body": f"{key} body", "client_msg_id": key},
        )
        assert isinstance(body, dict)
        if key in stored:
            assert (status, body["seq"], body["id"]) == (200, *stored[key]), key
        else:
            assert status == 201, (key, status, body)
    after_resends = await _state(fresh[0], conversations)

    # A second stop and start changes nothing: the chat list and the seqs are the same.
    restarted.terminate()
    again = spawn_server(**SOAK_ENV)
    same = [Client(again.url, token=c.token) for c in clients]
    opened.extend(same)
    assert await _state(same[0], conversations) == after_resends
    for entry in await same[1].conversations():
        assert entry.unread == entry.last_seq - entry.read_seq
    last = after_resends["history"][conversations[0]][-1][0]
    assert (await same[0].send(conversations[0], "after restarts")).seq == last + 1
    for client in fresh + same:
        await client.close()
