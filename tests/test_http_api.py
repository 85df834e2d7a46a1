"""The HTTP API of docs/protocol.md, row by row: what succeeds, and how each refusal looks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import msgspec
import pytest

from tests.conftest import PASSWORD, Account, RunningServer, ServerFactory, private
from tests.contract import ISO_MS, Answer, assert_error
from tidings.client import Client, private_conversation

SIGN_UP, LOG_IN = "/api/v1/users", "/api/v1/sessions"


def msgs(conversation: str, query: str = "") -> str:
    return f"/api/v1/conversations/{conversation}/messages" + (f"?{query}" if query else "")


def read_path(conversation: str) -> str:
    return f"/api/v1/conversations/{conversation}/read"


def seqs(answer: Answer) -> list[int]:
    status, body = answer
    assert status == 200, body
    return [m["seq"] for m in body["messages"]]


@pytest.fixture
async def anon(server: RunningServer) -> AsyncIterator[Client]:
    """A client of the test server without a token."""
    async with Client(server.url) as client:
        yield client


# -- sign-up ------------------------------------------------------------------


async def test_sign_up_answers_201_with_the_new_user(anon: Client) -> None:
    body = {"username": "Dora", "password": PASSWORD, "display_name": "Dora E."}
    status, user = await anon.request("POST", SIGN_UP, body)
    assert status == 201
    assert isinstance(user["id"], int) and user["id"] > 0
    assert (user["username"], user["display_name"]) == ("Dora", "Dora E.")


async def test_display_name_defaults_to_the_username(anon: Client) -> None:
    assert (await anon.signup("No.Name_7", PASSWORD)).display_name == "No.Name_7"


GOOD_NAMES = ["abc", "a" * 32, "A.b_c-9", "...", "007"]
BAD_NAMES = ["ab", "a" * 33, "", "with space", "bang!", "at@home", "ünïcode", "tab\t"]


@pytest.mark.parametrize("username", GOOD_NAMES + BAD_NAMES)
async def test_a_username_is_3_to_32_of_letters_digits_underscore_dot_dash(
    anon: Client, username: str
) -> None:
    answer = await anon.request("POST", SIGN_UP, {"username": username, "password": PASSWORD})
    if username in GOOD_NAMES:
        assert answer[0] == 201 and answer[1]["username"] == username, answer
    else:
        assert_error(answer, 422, "bad_request")


async def test_a_username_taken_in_any_case_is_409(anon: Client) -> None:
    await anon.signup("Taken", PASSWORD)
    for again in ("Taken", "taken", "TAKEN"):
        body = {"username": again, "password": PASSWORD}
        assert_error(await anon.request("POST", SIGN_UP, body), 409, "username_taken")


@pytest.mark.parametrize(("length", "works"), [(7, False), (8, True), (256, True), (257, False)])
async def test_a_password_has_8_to_256_characters(anon: Client, length: int, works: bool) -> None:
    password = "p" * length
    answer = await anon.request("POST", SIGN_UP, {"username": "pw_user", "password": password})
    if works:
        assert (
            answer[0] == 201 and (await anon.login("PW_user", password)).user.username == "pw_user"
        )
    else:
        assert_error(answer, 422, "bad_request")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "nopass"},
        {"password": PASSWORD},
        {"username": 12345, "password": PASSWORD},
        {"username": "typed", "password": 12345678},
        {"username": "typed", "password": PASSWORD, "display_name": 5},
        ["typed", PASSWORD],
    ],
)
async def test_sign_up_with_a_missing_or_mistyped_field_is_422(anon: Client, body: object) -> None:
    assert_error(await anon.request("POST", SIGN_UP, body), 422, "bad_request")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"username=x&password=y", b"\xff\xfe"])
async def test_a_body_that_is_not_json_is_400(anon: Client, raw: bytes) -> None:
    assert_error(await anon.request("POST", SIGN_UP, raw), 400, "bad_request")


# -- sessions, /me, /users ------------------------------------------------------


async def test_login_answers_a_token_and_the_user_whatever_the_username_case(
    anon: Client,
) -> None:
    created = await anon.signup("CamelCase", PASSWORD, "Camel")
    for spelled in ("CamelCase", "camelcase", "CAMELCASE"):
        status, session = await anon.request(
            "POST", LOG_IN, {"username": spelled, "password": PASSWORD}
        )
        assert status == 200, session
        assert session["user"] == msgspec.to_builtins(created)
        anon.token = session["token"]
        assert await anon.me() == created


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong pass"), ("nobody", PASSWORD)])
async def test_a_wrong_password_or_unknown_user_cannot_log_in(
    alice: Account, username: str, password: str
) -> None:
    body = {"username": username, "password": password}
    assert_error(await alice.client.request("POST", LOG_IN, body), 401, "unauthorized")


async def test_logout_is_204_and_the_token_stops_working(alice: Account, anon: Client) -> None:
    await anon.login("alice", PASSWORD)
    status, _ = await alice.client.request("DELETE", "/api/v1/sessions/current")
    assert status == 204
    assert_error(await alice.client.request("GET", "/api/v1/me"), 401, "unauthorized")
    assert await anon.me() == alice.user  # the other device's token still works


async def test_me_is_the_caller_and_users_are_found_by_id(alice: Account, bob: Account) -> None:
    me = {"id": alice.id, "username": "alice", "display_name": "Alice"}
    assert await alice.client.request("GET", "/api/v1/me") == (200, me)
    found = await alice.client.request("GET", f"/api/v1/users/{bob.id}")
    assert found == (200, {"id": bob.id, "username": "bob", "display_name": "Bob"})


@pytest.mark.parametrize(
    "user_id",
    ["999999", "abc", "0", "-1", "1.5", "1e3"]
    + [pytest.param("\u00b2", id="superscript-two"), pytest.param("\u0661", id="arabic-one")],
)
async def test_an_unknown_or_non_numeric_user_id_is_404(alice: Account, user_id: str) -> None:
    assert_error(await alice.client.request("GET", f"/api/v1/users/{user_id}"), 404, "not_found")


USER_ENDPOINTS = [
    ("DELETE", "/api/v1/sessions/current", None),
    ("GET", "/api/v1/me", None),
    ("PATCH", "/api/v1/me", {"display_name": "Mallory"}),
    ("POST", "/api/v1/me/password", {"current": PASSWORD, "new": "a new password"}),
    ("GET", "/api/v1/users/1", None),
    ("POST", "/api/v1/groups", {"name": "g", "member_ids": []}),
    ("GET", "/api/v1/groups/1", None),
    ("POST", "/api/v1/groups/1/members", {"user_id": 1}),
    ("DELETE", "/api/v1/groups/1/members/1", None),
    ("GET", "/api/v1/conversations", None),
    ("GET", msgs("p:1-2"), None),
    ("POST", msgs("p:1-2"), {"body": "hi"}),
    ("POST", read_path("p:1-2"), {"seq": 1}),
    ("PATCH", "/api/v1/conversations/p:1-2", {"pinned": True}),
    ("GET", "/api/v1/conversations/p:1-2/messages/1/reads", None),
]


@pytest.mark.parametrize(("method", "path", "body"), USER_ENDPOINTS)
async def test_user_endpoints_refuse_a_missing_or_bad_token(
    alice: Account, anon: Client, method: str, path: str, body: object
) -> None:
    assert_error(await anon.request(method, path, body), 401, "unauthorized")
    for header in ("Bearer not-a-token", "Bearer ", "Basic YWxpY2U6cHc=", str(alice.client.token)):
        answer = await anon.request(method, path, body, headers={"Authorization": header})
        assert_error(answer, 401, "unauthorized")


# -- sending --------------------------------------------------------------------


async def test_sending_answers_201_with_the_message(alice: Account, bob: Account) -> None:
    conversation = private(alice, bob)
    body = {"body": "hello", "client_msg_id": "c-1"}
    status, message = await alice.client.request("POST", msgs(conversation), body)
    assert status == 201, message
    assert isinstance(message["id"], str)
    assert message["conversation"] == conversation and message["seq"] == 1
    assert [message[k] for k in ("sender", "body", "client_msg_id")] == [alice.id, "hello", "c-1"]
    assert ISO_MS.fullmatch(message["sent_at"]) and message["time_separator"] is True
    longest = {"body": "é" * 4000}  # the body limit counts characters, not bytes
    status, second = await alice.client.request("POST", msgs(conversation), longest)
    assert status == 201 and second["body"] == longest["body"] and second["seq"] == 2
    assert second["client_msg_id"] is None and second["id"] != message["id"]


async def test_a_repeated_client_msg_id_answers_200_with_the_original(
    alice: Account, bob: Account
) -> None:
    conversation, post = private(alice, bob), alice.client.request
    _, first = await post("POST", msgs(conversation), {"body": "one", "client_msg_id": "k"})
    again = await post("POST", msgs(conversation), {"body": "two", "client_msg_id": "k"})
    assert again == (200, first)
    assert seqs(await bob.client.request("GET", msgs(conversation))) == [1]


async def test_a_repeat_sent_to_another_conversation_returns_the_original(
    alice: Account, bob: Account, carol: Account
) -> None:
    to_bob, to_carol, post = private(alice, bob), private(alice, carol), alice.client.request
    _, first = await post("POST", msgs(to_bob), {"body": "hi", "client_msg_id": "k"})
    again = await post("POST", msgs(to_carol), {"body": "hi", "client_msg_id": "k"})
    assert again == (200, first)
    assert await carol.client.request("GET", msgs(to_carol)) == (200, {"messages": []})
    assert await carol.client.conversations() == []


async def test_another_sender_may_use_the_same_client_msg_id(alice: Account, bob: Account) -> None:
    conversation = private(alice, bob)
    await alice.client.send(conversation, "mine", client_msg_id="shared")
    body = {"body": "mine too", "client_msg_id": "shared"}
    status, theirs = await bob.client.request("POST", msgs(conversation), body)
    assert status == 201 and theirs["seq"] == 2 and theirs["sender"] == bob.id


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"body": "x" * 4001}, 413, "too_large"),
        ({"body": ""}, 422, "bad_request"),
        ({"body": 5}, 422, "bad_request"),
        ({"body": None}, 422, "bad_request"),
        ({}, 422, "bad_request"),
        ({"body": "x", "client_msg_id": 5}, 422, "bad_request"),
        ({"body": "x", "client_msg_id": "k" * 65}, 422, "bad_request"),
    ],
)
async def test_a_refused_message_is_not_stored(
    alice: Account, bob: Account, body: object, status: int, code: str
) -> None:
    conversation = private(alice, bob)
    assert_error(await alice.client.request("POST", msgs(conversation), body), status, code)
    assert await bob.client.request("GET", msgs(conversation)) == (200, {"messages": []})
    assert await bob.client.conversations() == []


CONVERSATION_ENDPOINTS = [
    ("GET", msgs, None),
    ("POST", msgs, {"body": "hi"}),
    ("POST", read_path, {"seq": 1}),
]


@pytest.mark.parametrize("conversation", ["x", "p:5-3", "p:3-3", "g:abc", "p:1", "g:999999"])
async def test_an_unknown_conversation_is_404(alice: Account, conversation: str) -> None:
    for method, path, body in CONVERSATION_ENDPOINTS:
        answer = await alice.client.request(method, path(conversation), body)
        assert_error(answer, 404, "not_found")


@pytest.mark.parametrize("kind", ["private", "unstarted private", "group"])
async def test_a_non_member_gets_not_member_on_every_conversation_endpoint(
    alice: Account, bob: Account, carol: Account, kind: str
) -> None:
    conversation = private(bob, carol)
    if kind == "group":
        conversation = f"g:{(await bob.client.create_group('B and C', [carol.id])).id}"
    if kind != "unstarted private":
        await bob.client.send(conversation, "secret")
    for method, path, body in CONVERSATION_ENDPOINTS:
        answer = await alice.client.request(method, path(conversation), body)
        assert_error(answer, 403, "not_member")
    # Nothing was stored: the history is what bob made (a group starts with
    # its created notice at seq 1), with no message and no notice from alice.
    expected = [] if kind == "unstarted private" else [("text", "secret")]
    if kind == "group":
        expected.insert(0, ("system", 'Bob created the group "B and C"'))
    history = await carol.client.messages(conversation)
    assert [(m.kind, m.body) for m in history] == expected
    assert [m.seq for m in history] == list(range(1, len(expected) + 1))
    assert alice.id not in {m.sender for m in history}


# -- history ----------------------------------------------------------------------


async def send_many(account: Account, conversation: str, count: int) -> None:
    async with await account.client.connect() as ws:
        sent = await asyncio.gather(*(ws.send(conversation, f"m{i}") for i in range(count)))
    assert sorted(m.seq for m in sent) == list(range(1, count + 1))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", range(1, 11)),
        ("limit=3", range(8, 11)),
        ("before=5", range(1, 5)),
        ("before=5&limit=2", range(3, 5)),
        ("before=1", []),
        ("before=99", range(1, 11)),
        ("after=5&limit=2", range(6, 8)),
        ("after=8", range(9, 11)),
        ("after=0&limit=3", range(1, 4)),
        ("after=10", []),
    ],
)
async def test_history_pages_ascending_before_or_after_a_seq(
    alice: Account, bob: Account, query: str, expected: range
) -> None:
    conversation = private(alice, bob)
    await send_many(alice, conversation, 10)
    assert seqs(await bob.client.request("GET", msgs(conversation, query))) == list(expected)


async def test_history_gives_the_latest_50_by_default_and_at_most_200(
    alice: Account, bob: Account
) -> None:
    conversation = private(alice, bob)
    await send_many(alice, conversation, 205)
    pages = {
        "": range(156, 206),
        "limit=1000": range(6, 206),
        "after=0&limit=201": range(1, 201),
        "before=206&limit=200": range(6, 206),
    }
    for query, expected in pages.items():
        assert seqs(await bob.client.request("GET", msgs(conversation, query))) == list(expected)


@pytest.mark.parametrize(
    "query",
    ["before=3&after=1", "limit=0", "limit=-1", "limit=abc", "limit=1.5", "limit=", "after=x"],
)
async def test_a_bad_history_query_is_422(alice: Account, bob: Account, query: str) -> None:
    conversation = private(alice, bob)
    await alice.client.send(conversation, "hi")
    assert_error(await bob.client.request("GET", msgs(conversation, query)), 422, "bad_request")


HUGE = "99999999999999999999"


@pytest.mark.parametrize(("query", "expected"), [(f"after={HUGE}", []), (f"before={HUGE}", [1])])
async def test_a_seq_beyond_any_message_gets_a_page_or_a_422(
    alice: Account, bob: Account, query: str, expected: list[int]
) -> None:
    conversation = private(alice, bob)
    await alice.client.send(conversation, "hi")
    answer = await bob.client.request("GET", msgs(conversation, query))
    if answer[0] == 200:
        assert seqs(answer) == expected
    else:
        assert_error(answer, 422, "bad_request")


async def test_an_unstarted_private_conversation_is_empty_and_in_no_chat_list(
    alice: Account, bob: Account
) -> None:
    conversation = private(alice, bob)
    assert await alice.client.request("GET", msgs(conversation)) == (200, {"messages": []})
    assert await bob.client.request("GET", msgs(conversation, "after=0")) == (200, {"messages": []})
    assert await alice.client.conversations() == []
    assert await bob.client.conversations() == []


# -- read -----------------------------------------------------------------------


async def test_read_answers_the_entry_clamped_to_last_seq(alice: Account, bob: Account) -> None:
    conversation = private(alice, bob)
    sent = [await bob.client.send(conversation, f"m{i}") for i in range(3)]
    status, entry = await alice.client.request("POST", read_path(conversation), {"seq": 99})
    assert status == 200, entry
    expected = {"id": conversation, "type": "private", "title": "Bob", "peer_id": bob.id}
    assert {key: entry.get(key) for key in expected} == expected and entry["group_id"] is None
    assert (entry["last_seq"], entry["read_seq"], entry["unread"]) == (3, 3, 0)
    assert entry["last_message"] == msgspec.to_builtins(sent[-1])
    assert entry["updated_at"] == sent[-1].sent_at


async def test_read_never_moves_backwards(alice: Account, bob: Account) -> None:
    conversation = private(alice, bob)
    for i in range(3):
        await bob.client.send(conversation, f"m{i}")
    for seq, expected in ((2, 2), (1, 2), (0, 2), (3, 3), (2, 3)):
        status, entry = await alice.client.request("POST", read_path(conversation), {"seq": seq})
        assert status == 200
        assert (entry["read_seq"], entry["unread"]) == (expected, 3 - expected)
    assert (await alice.client.conversations())[0].read_seq == 3


@pytest.mark.parametrize("seq", ["missing", "2", -1, 1.5, True, None])
async def test_read_with_a_missing_or_mistyped_seq_is_422(
    alice: Account, bob: Account, seq: object
) -> None:
    conversation = private(alice, bob)
    await bob.client.send(conversation, "hi")
    body = {} if seq == "missing" else {"seq": seq}
    assert_error(
        await alice.client.request("POST", read_path(conversation), body), 422, "bad_request"
    )
    assert (await alice.client.conversations())[0].read_seq == 0


# -- limits, routes, schema -------------------------------------------------------


async def test_a_body_over_max_http_body_bytes_is_413(make_server: ServerFactory) -> None:
    server = await make_server(max_http_body_bytes=1000)
    async with Client(server.url) as client, Client(server.url) as peer:
        too_big = {"username": "big", "password": PASSWORD, "display_name": "d" * 2000}
        assert_error(await client.request("POST", SIGN_UP, too_big), 413, "too_large")
        me = await client.signup("small", PASSWORD)
        await client.login("small", PASSWORD)
        conversation = private_conversation(me.id, (await peer.signup("peer", PASSWORD)).id)
        answer = await client.request("POST", msgs(conversation), {"body": "x" * 1500})
        assert_error(answer, 413, "too_large")
        assert (await client.request("POST", msgs(conversation), {"body": "x" * 500}))[0] == 201


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/nothing"), ("GET", "/api/v2/me"), ("POST", "/nope/x")]
)
async def test_an_unknown_route_is_404_with_a_json_error(
    alice: Account, method: str, path: str
) -> None:
    answer = await alice.client.request(method, path, {} if method == "POST" else None)
    assert_error(answer, 404, "not_found")


async def test_openapi_json_describes_the_contracts_paths(anon: Client) -> None:
    status, document = await anon.request("GET", "/openapi.json")
    assert status == 200 and isinstance(document, dict), document
    assert str(document["openapi"]).startswith("3.")
    described = {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))  # parameter names are free
        for path, operations in document["paths"].items()
        for method in operations
    }
    contract = {("POST", SIGN_UP), ("POST", LOG_IN)} | {
        (method, re.sub(r"/(\d+|p:1-2)(?=/|$)", "/{}", path)) for method, path, _ in USER_ENDPOINTS
    }
    assert len(contract) == 17 and described >= contract, contract - described


async def test_a_user_is_found_by_username_in_any_case(alice: Account, bob: Account) -> None:
    status, found = await alice.client.request("GET", "/api/v1/users?username=BOB")
    assert (status, found) == (200, {"id": bob.id, "username": "bob", "display_name": "Bob"})
    status, missing = await alice.client.request("GET", "/api/v1/users?username=nobody_here")
    assert status == 404 and missing["error"]["code"] == "not_found"  # type: ignore[index]
    status, _ = await alice.client.request("GET", "/api/v1/users")
    assert status == 422
