"""PROTOCOL-v2 §1, §2 and §4 from outside: reply, forward, mentions, recall and
edit, over HTTP and WebSocket, on every stack, with the chat list's counts
checked against the contract's own rules after each step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import PASSWORD, Account, AccountFactory, ServerFactory, private
from tests.contract import ISO_MS, assert_error
from tidings.client import ApiError, Client, Message

CONVERSATIONS = "/api/v1/conversations"


def messages_path(conversation: str, seq: int | None = None, action: str = "") -> str:
    path = f"{CONVERSATIONS}/{conversation}/messages"
    return path if seq is None else f"{path}/{seq}/{action}"


async def group(owner: Account, *members: Account, name: str = "Team") -> str:
    created = await owner.client.create_group(name, [m.id for m in members])
    return f"g:{created.id}"


async def entry(account: Account, conversation: str) -> dict[str, Any]:
    status, body = await account.client.request("GET", f"{CONVERSATIONS}/{conversation}")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def history(account: Account, conversation: str) -> dict[int, Message]:
    return {m.seq: m for m in await account.client.messages(conversation, after=0, limit=200)}


@pytest.fixture
async def dave(make_account: AccountFactory) -> Account:
    return await make_account("dave", "Dave")


# -- reply ----------------------------------------------------------------------


async def test_a_reply_quotes_the_message_and_its_preview_follows_edits_and_recalls(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    quoted = await alice.client.send(chat, "x" * 150)
    status, reply = await bob.client.request(
        "POST", messages_path(chat), {"body": "agreed", "reply_to": quoted.seq}
    )
    assert status == 201, reply
    assert reply["reply_to"] == {
        "seq": quoted.seq,
        "sender": alice.id,
        "kind": "text",
        "preview": "x" * 100,
    }
    await alice.client.edit(chat, quoted.seq, "short now")
    seen = await history(bob, chat)
    assert seen[reply["seq"]].reply_to is not None
    assert seen[reply["seq"]].reply_to.preview == "short now"
    await alice.client.recall(chat, quoted.seq)
    seen = await history(bob, chat)
    reply_to = seen[reply["seq"]].reply_to
    assert reply_to is not None and reply_to.preview is None and reply_to.seq == quoted.seq


async def test_a_reply_to_a_notice_a_missing_seq_or_before_joining_is_refused(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob)
    before = await alice.client.send(team, "before carol")
    assert before.seq == 2  # after the group's created notice at seq 1
    await alice.client.add_members(int(team[2:]), [carol.id])
    own = await alice.client.send(team, "after carol")
    added = before.seq + 1  # the members_added notice, the first entry carol sees
    assert own.seq == added + 1
    notice = await alice.client.recall(team, own.seq)
    for seq in (notice.seq, added, 1, 999, before.seq):
        body = {"body": "re", "reply_to": seq}
        assert_error(
            await carol.client.request("POST", messages_path(team), body), 422, "bad_request"
        )
    for bad in (0, -1, "1", 1.5, 2**63):
        body = {"body": "re", "reply_to": bad}
        assert_error(
            await bob.client.request("POST", messages_path(team), body), 422, "bad_request"
        )
    seen = await history(carol, team)
    assert [(m.seq, m.kind) for m in seen.values()] == [
        (added, "system"),
        (own.seq, "text"),
        (notice.seq, "recall"),
    ]
    assert seen[added].system is not None
    assert (seen[added].system["event"], seen[added].system["users"]) == (
        "members_added",
        [carol.id],
    )


# -- forward --------------------------------------------------------------------


async def test_forward_copies_the_message_and_names_the_original(
    alice: Account, bob: Account, carol: Account
) -> None:
    source = private(alice, bob)
    original = await bob.client.send(source, "see you at eight")
    team = await group(alice, carol)
    status, copy = await alice.client.request(
        "POST",
        messages_path(team),
        {"forward": {"conversation": source, "seq": original.seq}, "client_msg_id": "f1"},
    )
    assert status == 201, copy
    assert (copy["body"], copy["kind"], copy["sender"]) == ("see you at eight", "text", alice.id)
    assert copy["forwarded_from"] == {"conversation": source, "seq": original.seq, "sender": bob.id}
    # A forward of a forward still names the original.
    again = await carol.client.send(private(carol, alice), None, forward=(team, copy["seq"]))
    assert again.forwarded_from is not None
    assert (again.forwarded_from.conversation, again.forwarded_from.seq) == (source, original.seq)
    # The same client_msg_id is the same message.
    repeat = await alice.client.request(
        "POST",
        messages_path(team),
        {"forward": {"conversation": source, "seq": original.seq}, "client_msg_id": "f1"},
    )
    assert repeat[0] == 200 and repeat[1]["seq"] == copy["seq"]


async def test_forward_refuses_what_the_sender_cannot_see_or_a_body_beside_it(
    alice: Account, bob: Account, carol: Account
) -> None:
    source = private(alice, bob)
    original = await alice.client.send(source, "secret")
    recalled = await alice.client.send(source, "oops")
    notice = await alice.client.recall(source, recalled.seq)
    target = private(carol, alice)

    def forward(conversation: str, seq: int, **more: object) -> dict[str, object]:
        return {"forward": {"conversation": conversation, "seq": seq}, **more}

    answer = await carol.client.request("POST", messages_path(target), forward(source, 1))
    assert_error(answer, 403, "not_member")
    team = await group(bob, alice)
    answer = await carol.client.request("POST", messages_path(target), forward(team, 1))
    assert_error(answer, 403, "not_member")
    for seq in (999, notice.seq, recalled.seq):
        answer = await alice.client.request("POST", messages_path(target), forward(source, seq))
        assert_error(answer, 404, "not_found")
    for more in ({"body": "x"}, {"kind": "text"}, {"file_id": "f"}):
        body = forward(source, original.seq, **more)
        answer = await alice.client.request("POST", messages_path(target), body)
        assert_error(answer, 422, "bad_request")
    assert await carol.client.messages(target, after=0) == []


# -- mentions -------------------------------------------------------------------


async def test_mentions_count_in_the_chat_list_until_read(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob, carol)
    await alice.client.send(team, "plain")
    mention = await alice.client.send(team, "@bob look", mentions=[bob.id])
    assert mention.mentions == [bob.id] and not mention.mention_all
    everyone = await alice.client.send(team, "@all lunch", mention_all=True)
    assert everyone.mention_all
    bob_entry, carol_entry = await entry(bob, team), await entry(carol, team)
    assert (bob_entry["unread"], bob_entry["mentioned"]) == (3, 2)
    assert (carol_entry["unread"], carol_entry["mentioned"]) == (3, 1)
    assert (await entry(alice, team))["mentioned"] == 0
    read = await bob.client.mark_read(team, mention.seq)
    assert (read.unread, read.mentioned) == (1, 1)
    # A recalled mention stops counting, for unread and mentioned alike.
    await alice.client.recall(team, everyone.seq)
    assert ((await entry(bob, team))["unread"], (await entry(bob, team))["mentioned"]) == (0, 0)
    carol_entry = await entry(carol, team)
    assert (carol_entry["unread"], carol_entry["mentioned"]) == (2, 0)


async def test_mentions_are_for_members_of_a_group_and_at_all_for_its_owner(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob)
    path = messages_path(team)
    for mentions in ([carol.id], [999999], [0], ["bob"], list(range(1, 52))):
        body = {"body": "hi", "mentions": mentions}
        assert_error(await alice.client.request("POST", path, body), 422, "bad_request")
    chat = messages_path(private(alice, bob))
    body = {"body": "hi", "mentions": [bob.id]}
    assert_error(await alice.client.request("POST", chat, body), 422, "bad_request")
    assert_error(
        await alice.client.request("POST", chat, {"body": "hi", "mention_all": True}),
        422,
        "bad_request",
    )
    answer = await bob.client.request("POST", path, {"body": "hi all", "mention_all": True})
    assert_error(answer, 403, "forbidden")
    assert answer[1]["error"]["message"] == (
        "mention_all: only the group's owner and admins mention everyone"
    )
    repeated = await alice.client.send(team, "twice", mentions=[bob.id, bob.id])
    assert repeated.mentions == [bob.id]
    assert (await entry(bob, team))["mentioned"] == 1
    # Nothing refused was stored: the created notice, then the one message.
    assert [(m.seq, m.kind, m.body) for m in (await history(bob, team)).values()] == [
        (1, "system", 'Alice created the group "Team"'),
        (2, "text", "twice"),
    ]


# -- recall ---------------------------------------------------------------------


async def test_recall_is_a_notice_with_its_own_seq_and_blanks_the_original(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    await alice.client.send(chat, "first")
    sent = await alice.client.send(chat, "sent by mistake")
    status, notice = await alice.client.request("POST", messages_path(chat, sent.seq, "recall"))
    assert status == 201, notice
    assert notice["kind"] == "recall" and notice["target_seq"] == sent.seq
    assert notice["seq"] == sent.seq + 1 and notice["sender"] == alice.id
    assert notice["body"] == "Alice recalled a message" and ISO_MS.fullmatch(notice["sent_at"])
    again = await alice.client.request("POST", messages_path(chat, sent.seq, "recall"), {})
    assert again == (200, notice)
    seen = await history(bob, chat)
    assert seen[sent.seq].recalled and seen[sent.seq].body is None
    assert seen[notice["seq"]].kind == "recall"
    bob_entry = await entry(bob, chat)
    assert bob_entry["unread"] == 1 and bob_entry["last_message"]["kind"] == "recall"
    assert bob_entry["updated_at"] == notice["sent_at"]


async def test_only_the_sender_recalls_within_the_window_and_a_group_owner_any_time(
    make_server: ServerFactory,
) -> None:
    server = await make_server(recall_seconds=0)
    async with Client(server.url) as owner, Client(server.url) as member:
        for name, client in (("owner", owner), ("member", member)):
            await client.signup(name, PASSWORD)
            await client.login(name, PASSWORD)
        member_id = (await member.me()).id
        team = f"g:{(await owner.create_group('Team', [member_id])).id}"
        mine = await member.send(team, "mine")
        theirs = await owner.send(team, "the owner's")
        await asyncio.sleep(0.01)
        expired = await member.request("POST", messages_path(team, mine.seq, "recall"))
        assert_error(expired, 403, "recall_expired")
        other = await member.request("POST", messages_path(team, theirs.seq, "recall"))
        assert_error(other, 403, "forbidden")
        moderated = await owner.recall(team, mine.seq)
        assert moderated.sender != member_id and moderated.target_seq == mine.seq
        assert (await owner.recall(team, theirs.seq)).kind == "recall"
        for seq, status, code in ((999, 404, "not_found"), (moderated.seq, 422, "bad_request")):
            answer = await owner.request("POST", messages_path(team, seq, "recall"))
            assert_error(answer, status, code)
        # A member cannot take a recall already made by the owner for their own.
        other = await member.request("POST", messages_path(team, theirs.seq, "recall"))
        assert_error(other, 403, "forbidden")


async def test_recall_and_edit_over_websocket_reach_every_member(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob, carol)
    async with await alice.client.connect() as mine, await bob.client.connect() as theirs:
        sent = await mine.send(team, "draft", client_msg_id="m1")
        assert sent.seq == 2  # after the group's created notice
        assert (await theirs.next_event())["message"]["seq"] == sent.seq
        edited = await mine.edit(team, sent.seq, "final", client_msg_id="e1")
        assert (edited.kind, edited.body, edited.target_seq) == ("edit", "final", sent.seq)
        event = await theirs.next_event()
        assert event["type"] == "message" and event["message"]["kind"] == "edit"
        again = await mine.edit(team, sent.seq, "final", client_msg_id="e1")
        assert again == edited
        notice = await mine.recall(team, sent.seq, client_msg_id="r1")
        event = await theirs.next_event()
        assert event["message"]["kind"] == "recall" and event["message"]["seq"] == notice.seq
        answer = await theirs.request(
            {"type": "recall", "conversation": team, "seq": sent.seq, "ref": 7}
        )
        assert answer == {
            "type": "error",
            "ref": 7,
            "code": "forbidden",
            "message": answer["message"],
        }
        answer = await theirs.request({"type": "recall", "conversation": team, "seq": "x"})
        assert answer["type"] == "error" and answer["code"] == "bad_request"
    seen = await history(carol, team)
    assert [(m.seq, m.kind, m.recalled) for m in seen.values()] == [
        (1, "system", False),  # created
        (2, "text", True),
        (3, "edit", False),
        (4, "recall", False),
    ]
    assert seen[1].system is not None and seen[1].system["event"] == "created"
    assert (await entry(carol, team))["unread"] == 0


# -- edit -----------------------------------------------------------------------


async def test_edit_changes_the_text_in_history_without_moving_the_chat(
    alice: Account, bob: Account, carol: Account
) -> None:
    chat = private(alice, bob)
    sent = await alice.client.send(chat, "helo")
    later = await carol.client.send(private(bob, carol), "newer")
    status, notice = await alice.client.request(
        "POST", messages_path(chat, sent.seq, "edit"), {"body": "hello"}
    )
    assert status == 201 and notice["kind"] == "edit" and notice["body"] == "hello"
    seen = await history(bob, chat)
    assert seen[sent.seq].body == "hello" and seen[sent.seq].edited_at == notice["sent_at"]
    bob_list = await bob.client.conversations()
    assert [c.id for c in bob_list] == [private(bob, carol), chat]  # the edit did not move it
    assert bob_list[1].last_message is not None
    assert (bob_list[1].last_message.seq, bob_list[1].last_message.body) == (sent.seq, "hello")
    assert bob_list[1].unread == 1 and bob_list[1].updated_at == sent.sent_at
    assert later.seq == 1


async def test_edit_is_the_senders_for_text_within_the_window(
    make_server: ServerFactory, alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    sent = await alice.client.send(chat, "text")
    answer = await bob.client.request("POST", messages_path(chat, sent.seq, "edit"), {"body": "x"})
    assert_error(answer, 403, "forbidden")
    for body in ({}, {"body": ""}, {"body": 5}):
        answer = await alice.client.request("POST", messages_path(chat, sent.seq, "edit"), body)
        assert_error(answer, 422, "bad_request")
    answer = await alice.client.request("POST", messages_path(chat, sent.seq, "edit"), b"{")
    assert_error(answer, 400, "bad_request")
    answer = await alice.client.request("POST", messages_path(chat, 99, "edit"), {"body": "x"})
    assert_error(answer, 404, "not_found")
    notice = await alice.client.recall(chat, sent.seq)
    for seq in (sent.seq, notice.seq):
        answer = await alice.client.request("POST", messages_path(chat, seq, "edit"), {"body": "x"})
        assert_error(answer, 403, "forbidden")
    late = await make_server(edit_seconds=0.001)
    async with Client(late.url) as slow:
        await slow.login("alice", PASSWORD)
        kept = await slow.send(chat, "too late")
        await asyncio.sleep(0.01)
        with pytest.raises(ApiError) as refused:
            await slow.edit(chat, kept.seq, "changed")
        assert (refused.value.status, refused.value.code) == (403, "edit_expired")


# -- the admin API and limits -----------------------------------------------------


async def test_the_backend_sends_with_the_new_fields_and_recalls_as_moderator(
    make_server: ServerFactory,
) -> None:
    from tidings.client import AdminClient

    server = await make_server(service_token="s3cret", recall_seconds=0)
    async with AdminClient(server.url, "s3cret") as admin:
        ann = await admin.create_user("ann", "Ann")
        ben = await admin.create_user("ben", "Ben")
        team = f"g:{(await admin.create_group('Ops', ann.id, [ben.id])).id}"
        first = await admin.send_as(ben.id, team, "disk full")
        reply = await admin.send_as(
            ann.id, team, "on it", reply_to=first.seq, mentions=[ben.id], client_msg_id="a1"
        )
        assert reply.reply_to is not None and reply.reply_to.seq == first.seq
        assert reply.mentions == [ben.id]
        notice = await admin.recall(team, first.seq)
        assert notice.kind == "recall" and notice.body == "A message was recalled"
        assert (await admin.recall(team, first.seq)) == notice
        status, body = await admin.request(
            "POST",
            f"/api/v1/admin/conversations/{team}/messages/{reply.seq}/recall",
            {"by": ben.id},
        )
        assert_error((status, body), 403, "forbidden")
        async with Client(server.url, token=await admin.mint_token(ben.id)) as ben_client:
            listed = await ben_client.conversations()
            assert (listed[0].unread, listed[0].mentioned) == (1, 1)
            assert listed[0].last_message is not None
            assert listed[0].last_message.kind == "recall"


async def test_limits_tell_clients_the_windows(make_server: ServerFactory) -> None:
    server = await make_server(recall_seconds=30, edit_seconds=0, max_body_chars=500)
    async with Client(server.url) as client:
        limits = await client.limits()
    assert (limits.recall_seconds, limits.edit_seconds, limits.max_body_chars) == (30, 0, 500)
    assert limits.max_mentions == 50


async def test_a_recall_or_edit_from_outside_changes_nothing(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob)
    sent = await bob.client.send(team, "members only")
    chat = private(alice, bob)
    mine = await alice.client.send(chat, "just us")
    for conversation, seq in ((team, sent.seq), (chat, mine.seq)):
        answer = await carol.client.request("POST", messages_path(conversation, seq, "recall"))
        assert_error(answer, 403, "not_member")
        body = {"body": "hijacked"}
        answer = await carol.client.request("POST", messages_path(conversation, seq, "edit"), body)
        assert_error(answer, 403, "not_member")
    assert [(m.seq, m.kind, m.body, m.recalled) for m in (await history(bob, team)).values()] == [
        (1, "system", 'Alice created the group "Team"', False),
        (2, "text", "members only", False),
    ]
    assert [m.body for m in (await history(bob, chat)).values()] == ["just us"]
    assert (await entry(alice, team))["unread"] == 1
