"""PROTOCOL-v2 §7 from outside, on every stack: what a user finds is what the
user can read now, matched as a case-insensitive substring in any script."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from tests.conftest import Account, AccountFactory, RunningServer, private
from tests.contract import assert_error
from tidings.app import SEARCH_INDEX
from tidings.client import Message, SearchResults

SEARCH = "/api/v1/search/messages"


async def group(owner: Account, *members: Account, name: str = "Team") -> str:
    created = await owner.client.create_group(name, [m.id for m in members])
    return f"g:{created.id}"


async def found(account: Account, q: str, conversation: str | None = None) -> list[str | None]:
    """The bodies of every match, all pages followed."""
    return [m.body for m in await every_page(account, q, conversation)]


async def every_page(
    account: Account, q: str, conversation: str | None = None, limit: int | None = None
) -> list[Message]:
    messages: list[Message] = []
    before: str | None = None
    for _ in range(1000):
        page = await account.client.search_messages(q, conversation, before, limit)
        messages += page.messages
        if page.next_before is None:
            return messages
        before = page.next_before
    raise AssertionError("the pages never end")


@pytest.fixture
async def dave(make_account: AccountFactory) -> Account:
    return await make_account("dave", "Dave")


async def test_chinese_is_found_by_any_two_or_more_characters_in_the_text(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    await alice.client.send(chat, "你好世界，明天在北京见")
    await alice.client.send(chat, "unrelated")
    assert await found(bob, "世界") == ["你好世界，明天在北京见"]
    assert await found(bob, "明天在北京") == ["你好世界，明天在北京见"]
    assert await found(bob, "北京见") == ["你好世界，明天在北京见"]
    assert await found(bob, "上海") == []


async def test_latin_is_found_as_a_substring_in_any_case(alice: Account, bob: Account) -> None:
    chat = private(alice, bob)
    await alice.client.send(chat, "say hello there")
    await alice.client.send(chat, "Othello at NOON")
    assert await found(bob, "HELLO") == ["Othello at NOON", "say hello there"]
    assert await found(bob, "noon") == ["Othello at NOON"]
    assert await found(bob, "lo th") == ["say hello there"]


async def test_a_one_or_two_character_query_finds_every_message_holding_it(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    for body in ("好", "你好", "ok", "no", "a cat", "中文 and English"):
        await alice.client.send(chat, body)
    assert await found(bob, "好") == ["你好", "好"]
    assert await found(bob, "O") == ["no", "ok"]
    assert await found(bob, "文") == ["中文 and English"]
    assert await found(bob, "t") == ["a cat"]
    assert await found(bob, "an") == ["中文 and English"]


async def test_like_wildcards_quotes_and_regex_syntax_are_literal_text(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    bodies = ["100% sure", "1000 sure", "snake_case", "snakeXcase", "a\\b", "ab", 'say "hi"']
    for body in bodies + ["(a+)*", "aaa", "'; DROP TABLE messages; --"]:
        await alice.client.send(chat, body)
    assert await found(bob, "%") == ["100% sure"]
    assert await found(bob, "0% s") == ["100% sure"]
    assert await found(bob, "_") == ["snake_case"]
    assert await found(bob, "e_c") == ["snake_case"]
    assert await found(bob, "\\") == ["a\\b"]
    assert await found(bob, "a\\b") == ["a\\b"]
    assert await found(bob, '"hi"') == ['say "hi"']
    assert await found(bob, "(a+)*") == ["(a+)*"]
    assert await found(bob, "'; DROP") == ["'; DROP TABLE messages; --"]


async def test_messages_before_a_members_join_are_not_found(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob)
    await alice.client.send(team, "before carol came: secret plan")
    await alice.client.add_members(int(team[2:]), [carol.id])
    await alice.client.send(team, "after carol came: public plan")
    assert await found(carol, "plan") == ["after carol came: public plan"]
    assert await found(bob, "plan") == [
        "after carol came: public plan",
        "before carol came: secret plan",
    ]


async def test_a_group_left_is_no_longer_searched(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob, carol)
    await alice.client.send(team, "the meeting room is 42")
    assert await found(carol, "meeting") == ["the meeting room is 42"]
    await carol.client.remove_member(int(team[2:]), carol.id)
    assert await found(carol, "meeting") == []
    assert await found(carol, "me") == []
    assert await found(bob, "meeting") == ["the meeting room is 42"]


async def test_a_recalled_message_is_not_found_and_notices_never_are(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    gone = await alice.client.send(chat, "my password is hunter2")
    await alice.client.send(chat, "nothing to see")
    await alice.client.recall(chat, gone.seq)
    assert await found(bob, "hunter2") == []
    assert await found(bob, "hu") == []
    assert await found(bob, "recalled") == []  # the recall notice's own text
    team = await group(alice, bob, name="Created Team")
    assert await found(bob, "Team") == []  # the created notice
    assert await found(bob, "see", team) == []


async def test_an_edited_message_is_found_by_its_new_text_only(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    first = await alice.client.send(chat, "meet at the old bridge")
    await alice.client.edit(chat, first.seq, "meet at the new tower")
    results = await every_page(bob, "meet")
    assert [(m.seq, m.body) for m in results] == [(first.seq, "meet at the new tower")]
    assert results[0].edited_at is not None and results[0].kind == "text"
    assert await found(bob, "bridge") == []
    assert await found(bob, "ol") == []
    assert await found(bob, "tower") == ["meet at the new tower"]


async def test_another_users_private_chat_is_never_found(
    alice: Account, bob: Account, carol: Account
) -> None:
    await alice.client.send(private(alice, bob), "just between us: 秘密")
    await carol.client.send(private(carol, alice), "hello alice")
    assert await found(carol, "between") == []
    assert await found(carol, "秘密") == []
    assert await found(carol, "秘") == []
    assert await found(alice, "秘密") == ["just between us: 秘密"]


async def test_results_read_like_history_with_reply_and_edit(alice: Account, bob: Account) -> None:
    chat = private(alice, bob)
    quoted = await alice.client.send(chat, "what time?")
    reply = {"body": "at noon", "reply_to": quoted.seq}
    path = f"/api/v1/conversations/{chat}/messages"
    status, body = await bob.client.request("POST", path, reply)
    assert status == 201, body
    await bob.client.edit(chat, body["seq"], "at noon sharp")
    [hit] = (await bob.client.search_messages("noon")).messages
    [same] = await bob.client.messages(chat, after=body["seq"] - 1, limit=1)
    assert hit == same
    assert hit.reply_to is not None and hit.reply_to.preview == "what time?"


async def test_pages_cover_every_match_once_newest_first(alice: Account, bob: Account) -> None:
    team = await group(alice, bob)
    chat = private(alice, bob)
    sent: list[Message] = []
    for i in range(23):
        sent.append(await alice.client.send(team if i % 3 else chat, f"item {i} 项目"))
    # Newest first; messages of one millisecond in two conversations are
    # ordered by conversation id, then seq (the cursor's total order).
    newest_first = sorted(sent, key=lambda m: (m.sent_at, m.conversation, m.seq), reverse=True)
    expected = [(m.conversation, m.seq) for m in newest_first]
    for limit in (1, 5, 7, 50):
        pages = await every_page(bob, "项目", limit=limit)
        assert [(m.conversation, m.seq) for m in pages] == expected
    first = await bob.client.search_messages("item")
    assert len(first.messages) == 20 and first.next_before is not None  # the default limit
    rest = await bob.client.search_messages("item", before=first.next_before)
    assert len(rest.messages) == 3 and rest.next_before is None
    only_team = await every_page(bob, "item", team)
    assert [(m.conversation, m.seq) for m in only_team] == [
        (c, s) for c, s in expected if c == team
    ]


async def test_bad_queries_limits_and_cursors_are_the_contracts_errors(
    alice: Account, bob: Account, carol: Account
) -> None:
    chat = private(alice, bob)
    await alice.client.send(chat, "hello")
    ask = alice.client.request
    assert_error(await ask("GET", SEARCH), 422, "bad_request")
    assert_error(await ask("GET", f"{SEARCH}?q="), 422, "bad_request")
    assert_error(await ask("GET", f"{SEARCH}?q=%20%20"), 422, "bad_request")
    assert_error(await ask("GET", f"{SEARCH}?q={'x' * 101}"), 422, "bad_request")
    assert_error(await ask("GET", f"{SEARCH}?q=a%00b"), 422, "bad_request")
    status, body = await ask("GET", f"{SEARCH}?q={quote('世' * 100)}")
    assert status == 200, body
    status, body = await ask("GET", f"{SEARCH}?q=%20hello%20")  # trimmed
    assert status == 200 and isinstance(body, dict) and len(body["messages"]) == 1, body
    for limit in ("0", "51", "-1", "x"):
        assert_error(await ask("GET", f"{SEARCH}?q=hello&limit={limit}"), 422, "bad_request")
    for cursor in ("nonsense!", "bm9wZQ", "MTIzLjQ1Ng", "x" * 300):
        assert_error(await ask("GET", f"{SEARCH}?q=hello&before={cursor}"), 422, "bad_request")
    assert_error(
        await carol.client.request("GET", f"{SEARCH}?q=hello&conversation={chat}"),
        403,
        "not_member",
    )
    team = await group(alice, bob)
    assert_error(
        await carol.client.request("GET", f"{SEARCH}?q=hello&conversation={team}"),
        403,
        "not_member",
    )
    assert_error(await ask("GET", f"{SEARCH}?q=hello&conversation=g:999999"), 404, "not_found")
    assert_error(await ask("GET", f"{SEARCH}?q=hello&conversation=nope"), 404, "not_found")
    status, body = await alice.client.request("GET", f"{SEARCH}?q=hello&conversation={chat}")
    assert status == 200 and isinstance(body, dict), body
    assert body["next_before"] is None and [m["body"] for m in body["messages"]] == ["hello"]


# -- against a brute-force oracle ---------------------------------------------------

_WORDS = ["hello", "World", "meet", "NOON", "address", "plan", "a_b", "50%"]
_HANZI = "你好世界北京上海地址明天见朋友消息"


def _body(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.5:
            parts.append(rng.choice(_WORDS))
        else:
            parts.append("".join(rng.choice(_HANZI) for _ in range(rng.randint(1, 5))))
    return rng.choice(["", " "]).join(parts)


@dataclass
class _Shown:
    message: Message
    body: str
    recalled: bool = False


@dataclass
class _World:
    """What each user may see, kept in Python as the contract says."""

    messages: dict[tuple[str, int], _Shown] = field(default_factory=dict)
    joined: dict[tuple[str, int], int] = field(default_factory=dict)  # (conv, user) -> seq

    def expected(self, user: int, q: str) -> list[tuple[str, int]]:
        needle = q.strip().lower()
        hits = [
            shown.message
            for (conversation, seq), shown in self.messages.items()
            if (conversation, user) in self.joined
            and seq > self.joined[(conversation, user)]
            and not shown.recalled
            and needle in shown.body.lower()
        ]
        hits.sort(key=lambda m: (m.sent_at, m.conversation, m.seq), reverse=True)
        return [(m.conversation, m.seq) for m in hits]


# SQLite's index (store/search_index.py) as it may stand when a search comes:
# indexing as it goes; stopped half way (the rest is its un-indexed tail, with
# edits and recalls of indexed messages in it); or caught up with everything.
INDEX_STATES = ["running", "lagging", "caught_up"]


@pytest.mark.parametrize("index_state", INDEX_STATES)
async def test_search_agrees_with_a_brute_force_oracle(
    server: RunningServer,
    alice: Account,
    bob: Account,
    carol: Account,
    dave: Account,
    index_state: str,
) -> None:
    index = server.app[SEARCH_INDEX]()
    if index is None and index_state != "running":
        pytest.skip("no search index on this database: every search is the scan")
    rng = random.Random(21)
    people = [alice, bob, carol, dave]
    world = _World()
    team = await group(alice, bob, carol)
    for who in (alice, bob, carol):
        world.joined[(team, who.id)] = 1  # after the created notice
    chats = [private(alice, bob), private(carol, dave), private(bob, dave)]
    for chat in chats:
        for who in people:
            if str(who.id) in chat[2:].split("-"):
                world.joined[(chat, who.id)] = 0
    conversations = [team, *chats]
    last_seq = {team: 1}
    for step in range(70):
        if step == 35 and index is not None and index_state == "lagging":
            await index.catch_up()
            await index.pause()
        conversation = rng.choice(conversations)
        senders = [p for p in people if (conversation, p.id) in world.joined]
        sender = rng.choice(senders)
        roll = rng.random()
        mine = [
            shown
            for (c, _), shown in world.messages.items()
            if c == conversation and shown.message.sender == sender.id and not shown.recalled
        ]
        if roll < 0.1 and mine:
            target = rng.choice(mine)
            notice = await sender.client.recall(conversation, target.message.seq)
            target.recalled = True
            last_seq[conversation] = notice.seq
        elif roll < 0.2 and mine:
            target = rng.choice(mine)
            new_body = _body(rng)
            notice = await sender.client.edit(conversation, target.message.seq, new_body)
            target.body = new_body
            last_seq[conversation] = notice.seq
        elif roll < 0.25 and conversation == team:
            # Someone leaves, or dave comes in (seeing from here on).
            if (team, dave.id) in world.joined:
                await dave.client.remove_member(int(team[2:]), dave.id)
                del world.joined[(team, dave.id)]
            else:
                group_now = await alice.client.add_members(int(team[2:]), [dave.id])
                assert dave.id in group_now.member_ids
                joined_at = (await dave.client.messages(team, limit=1))[-1].seq
                world.joined[(team, dave.id)] = joined_at - 1  # sees its own notice on
                last_seq[team] = joined_at
        else:
            message = await sender.client.send(conversation, _body(rng), f"m{step}")
            world.messages[(conversation, message.seq)] = _Shown(message, message.body or "")
            last_seq[conversation] = message.seq

    if index is not None and index_state == "caught_up":
        await index.catch_up()
    texts = [shown.body for shown in world.messages.values()]
    queries = ["hello", "HELLO", "l", "a_b", "%", "世界", "好", "noon", "o", " meet "]
    for _ in range(25):
        text = rng.choice(texts)
        start = rng.randrange(len(text))
        pick = text[start : start + rng.randint(1, 5)].strip() or "x"
        queries.append(pick.upper() if rng.random() < 0.3 else pick)
    for who in people:
        for q in queries:
            got = await every_page(who, q, limit=rng.choice([3, 8, 50]))
            assert [(m.conversation, m.seq) for m in got] == world.expected(who.id, q), (who, q)
            for message in got:
                assert message.body == world.messages[(message.conversation, message.seq)].body


async def test_the_client_returns_typed_results(alice: Account, bob: Account) -> None:
    await alice.client.send(private(alice, bob), "typed")
    results = await bob.client.search_messages("typed", limit=1)
    assert isinstance(results, SearchResults)
    assert isinstance(results.messages[0], Message) and results.next_before is None
