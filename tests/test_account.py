"""The account (PROTOCOL-v2 §9): a user renames itself and changes its password.

Run on every stack (SQLite; PostgreSQL with Redis, whose chat-list copy is
on; MariaDB): a rename must show in chat lists wherever they are kept.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.conftest import PASSWORD, Account, ServerFactory, no_event, private
from tests.contract import assert_error
from tidings.client import ApiError, Client
from tidings.service import accounts

ME, PASSWORD_PATH, LOG_IN = "/api/v1/me", "/api/v1/me/password", "/api/v1/sessions"
NEW_PASSWORD = "a brand new secret"
SERVICE_TOKEN = "service-s3cret"

# The fields of a v1 chat-list entry and user: what a v1 client reads.
V1_ENTRY = {
    "id",
    "type",
    "title",
    "peer_id",
    "group_id",
    "unread",
    "last_seq",
    "read_seq",
    "last_message",
    "updated_at",
}
V1_USER = {"id", "username", "display_name"}


async def entry_of(account: Account, conversation: str) -> dict[str, Any]:
    """``account``'s entry for ``conversation`` as its chat list shows it (the wire JSON)."""
    status, body = await account.client.request("GET", "/api/v1/conversations")
    assert status == 200, body
    assert isinstance(body, dict)
    found = [e for e in body["conversations"] if e["id"] == conversation]
    assert len(found) == 1, body
    entry: dict[str, Any] = found[0]
    return entry


async def log_in(username: str, password: str, client: Client) -> tuple[int, object]:
    return await client.request("POST", LOG_IN, {"username": username, "password": password})


# -- PATCH /api/v1/me ------------------------------------------------------------


async def test_a_rename_answers_the_user_and_every_later_fetch_shows_it(
    alice: Account, bob: Account, carol: Account
) -> None:
    conversation = private(alice, bob)
    await alice.client.send(conversation, "hi bob")
    group = await alice.client.create_group("Hikers", [bob.id])
    # Fetched once before: a chat list kept elsewhere (Redis) holds the entry now.
    assert (await entry_of(bob, conversation))["title"] == "Alice"

    status, user = await alice.client.request("PATCH", ME, {"display_name": "  Alice B.  "})
    assert (status, user) == (
        200,
        {"id": alice.id, "username": "alice", "display_name": "Alice B."},
    )
    assert await alice.client.request("GET", ME) == (200, user)
    assert await carol.client.request("GET", f"/api/v1/users/{alice.id}") == (200, user)

    assert (await entry_of(bob, conversation))["title"] == "Alice B."
    status, entry = await bob.client.request("GET", f"/api/v1/conversations/{conversation}")
    assert status == 200 and entry["title"] == "Alice B."  # type: ignore[index]
    assert (await entry_of(bob, f"g:{group.id}"))["title"] == "Hikers"  # a group keeps its name
    assert (await entry_of(alice, conversation))["title"] == "Bob"  # her own list: her peers


async def test_online_peers_get_their_private_entry_with_the_new_title(
    alice: Account, bob: Account, carol: Account
) -> None:
    conversation = private(alice, bob)
    await alice.client.send(conversation, "one")
    await alice.client.send(conversation, "two")
    await alice.client.create_group("Not a peer", [carol.id])  # carol shares a group only
    async with (
        await bob.client.connect() as bob_ws,
        await carol.client.connect() as carol_ws,
        await alice.client.connect() as alice_ws,
    ):
        renamed = await alice.client.set_display_name("Alice in Chains")
        assert renamed.display_name == "Alice in Chains"
        event = await bob_ws.next_event()
        assert event == {"type": "conversation", "conversation": await entry_of(bob, conversation)}
        entry = event["conversation"]
        assert isinstance(entry, dict)
        assert (entry["title"], entry["peer_id"], entry["unread"]) == (
            "Alice in Chains",
            alice.id,
            2,
        )
        await no_event(carol_ws)
        await no_event(alice_ws)


async def test_past_many_peers_only_the_online_ones_are_told(
    alice: Account, bob: Account, carol: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user with very many peers: presence picks who hears of the rename."""
    monkeypatch.setattr(accounts, "TELL_EVERY_PEER_UP_TO", 0)
    await alice.client.send(private(alice, bob), "hi bob")
    await alice.client.send(private(alice, carol), "hi carol")  # carol stays offline
    async with await bob.client.connect() as bob_ws:
        await alice.client.set_display_name("Alice of Many")
        event = await bob_ws.next_event()
        assert event == {
            "type": "conversation",
            "conversation": await entry_of(bob, private(alice, bob)),
        }
    assert (await entry_of(carol, private(alice, carol)))["title"] == "Alice of Many"


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": ""},
        {"display_name": "   "},
        {"display_name": "x" * 65},
        {"display_name": " " + "x" * 65 + " "},
        {"display_name": "nul\u0000inside"},
        {"display_name": 7},
        {"display_name": None},
        {},
        {"name": "Alice"},
        [],
    ],
)
async def test_a_bad_display_name_is_422_and_changes_nothing(
    alice: Account, bob: Account, body: object
) -> None:
    await alice.client.send(private(alice, bob), "hi")
    async with await bob.client.connect() as bob_ws:
        assert_error(await alice.client.request("PATCH", ME, body), 422, "bad_request")
        await no_event(bob_ws)
    assert (await alice.client.me()).display_name == "Alice"


async def test_a_display_name_of_64_characters_is_kept_trimmed(alice: Account) -> None:
    name = "名" * 64
    assert (await alice.client.set_display_name(f"\t {name} \n")).display_name == name
    assert (await alice.client.me()).display_name == name


# -- POST /api/v1/me/password -------------------------------------------------------


async def test_a_password_change_keeps_this_session_and_revokes_every_other(
    alice: Account, bob: Account
) -> None:
    async with Client(alice.client.base_url) as phone:
        await phone.login("alice", PASSWORD)
        phone_ws = await phone.connect()
        own_ws = await alice.client.connect()
        bob_ws = await bob.client.connect()

        status, body = await alice.client.request(
            "POST", PASSWORD_PATH, {"current": PASSWORD, "new": NEW_PASSWORD}
        )
        assert (status, body) == (204, None)

        assert await phone_ws.wait_closed() == 4003
        assert_error(await phone.request("GET", ME), 401, "unauthorized")
        # The asking session stays: its token and its socket.
        assert await alice.client.me() == alice.user
        await own_ws.ping()
        sent = await own_ws.send(private(alice, bob), "still here")
        assert (await bob_ws.next_event())["message"] == msgspec.to_builtins(sent)
        # Another user's sessions are not touched.
        assert (await bob.client.me()).id == bob.id
        await own_ws.close()
        await bob_ws.close()

        assert_error(await log_in("alice", PASSWORD, phone), 401, "unauthorized")
        status, session = await log_in("alice", NEW_PASSWORD, phone)
        assert status == 200, session


async def test_a_wrong_current_password_is_403_and_changes_nothing(alice: Account) -> None:
    async with Client(alice.client.base_url) as phone:
        await phone.login("alice", PASSWORD)
        body = {"current": "not the password", "new": NEW_PASSWORD}
        assert_error(await alice.client.request("POST", PASSWORD_PATH, body), 403, "forbidden")
        assert (await phone.me()).id == alice.id  # no session was revoked
        assert_error(await log_in("alice", NEW_PASSWORD, phone), 401, "unauthorized")
        status, _ = await log_in("alice", PASSWORD, phone)
        assert status == 200


@pytest.mark.parametrize(("length", "works"), [(7, False), (8, True), (256, True), (257, False)])
async def test_a_new_password_has_8_to_256_characters(
    alice: Account, length: int, works: bool
) -> None:
    new = "n" * length
    answer = await alice.client.request("POST", PASSWORD_PATH, {"current": PASSWORD, "new": new})
    async with Client(alice.client.base_url) as other:
        if works:
            assert answer[0] == 204, answer
            assert (await log_in("alice", new, other))[0] == 200
        else:
            assert_error(answer, 422, "bad_request")
            assert "new" in answer[1]["error"]["message"]  # type: ignore[index]
            assert (await log_in("alice", PASSWORD, other))[0] == 200


@pytest.mark.parametrize(
    "body",
    [
        {"current": PASSWORD},
        {"new": NEW_PASSWORD},
        {"current": PASSWORD, "new": 12345678},
        {"current": None, "new": NEW_PASSWORD},
        "a string",
    ],
)
async def test_a_password_change_with_a_missing_or_mistyped_field_is_422(
    alice: Account, body: object
) -> None:
    assert_error(await alice.client.request("POST", PASSWORD_PATH, body), 422, "bad_request")
    assert (await alice.client.me()).id == alice.id


async def test_wrong_current_passwords_are_limited_as_failed_logins(
    make_server: ServerFactory,
) -> None:
    server = await make_server(login_failures_per_minute=2)
    async with Client(server.url) as client:
        await client.signup("limited", PASSWORD)
        await client.login("limited", PASSWORD)
        wrong = {"current": "wrong password", "new": NEW_PASSWORD}
        for _ in range(2):
            assert_error(await client.request("POST", PASSWORD_PATH, wrong), 403, "forbidden")
        right = {"current": PASSWORD, "new": NEW_PASSWORD}
        assert_error(await client.request("POST", PASSWORD_PATH, right), 429, "rate_limited")
        assert_error(await log_in("limited", PASSWORD, client), 429, "rate_limited")


async def test_a_user_without_a_password_cannot_set_one_here(make_server: ServerFactory) -> None:
    server = await make_server(service_token=SERVICE_TOKEN)
    async with Client(server.url, token=SERVICE_TOKEN) as admin:
        status, user = await admin.request("POST", "/api/v1/admin/users", {"username": "app_user"})
        assert status == 201
        assert isinstance(user, dict)
        status, minted = await admin.request("POST", f"/api/v1/admin/users/{user['id']}/tokens")
        assert status == 201 and isinstance(minted, dict)
    async with Client(server.url, token=minted["token"]) as client:
        body = {"current": "anything at all", "new": NEW_PASSWORD}
        assert_error(await client.request("POST", PASSWORD_PATH, body), 403, "forbidden")
        assert_error(await log_in("app_user", NEW_PASSWORD, client), 401, "unauthorized")


# -- a v1 client ---------------------------------------------------------------------


async def test_a_v1_client_reads_a_peers_rename_as_v1_values(alice: Account, bob: Account) -> None:
    """bob knows only v1: the event is a v1 ``conversation`` frame with a v1 entry, the
    user object keeps its three fields, and his own session is untouched by alice's
    password change."""
    conversation = private(alice, bob)
    await bob.client.send(conversation, "hello")
    async with await bob.client.connect() as bob_ws:
        status, user = await alice.client.request("PATCH", ME, {"display_name": "Alicia"})
        assert status == 200 and isinstance(user, dict) and set(user) == V1_USER
        event = await bob_ws.next_event()
        assert set(event) == {"type", "conversation"} and event["type"] == "conversation"
        entry = event["conversation"]
        assert isinstance(entry, dict) and set(entry) >= V1_ENTRY
        assert entry["type"] == "private" and entry["group_id"] is None
        assert (entry["title"], entry["peer_id"]) == ("Alicia", alice.id)
        assert (entry["unread"], entry["last_seq"], entry["read_seq"]) == (0, 1, 1)
        assert entry["last_message"]["body"] == "hello"
        answer = await alice.client.request(
            "POST", PASSWORD_PATH, {"current": PASSWORD, "new": NEW_PASSWORD}
        )
        assert answer[0] == 204
        await bob_ws.ping()
        await no_event(bob_ws)
    assert (await bob.client.me()).id == bob.id
    async with Client(alice.client.base_url) as other:
        with pytest.raises(ApiError):
            await other.login("alice", PASSWORD)


async def test_openapi_describes_both_routes_with_their_bodies(alice: Account) -> None:
    status, document = await alice.client.request("GET", "/openapi.json")
    assert status == 200 and isinstance(document, dict)
    paths, schemas = document["paths"], document["components"]["schemas"]

    def body_schema(path: str, method: str) -> dict[str, Any]:
        ref = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        found: dict[str, Any] = schemas[ref.rsplit("/", 1)[1]]
        return found

    rename = body_schema(ME, "patch")
    assert rename["required"] == ["display_name"]
    assert "200" in paths[ME]["patch"]["responses"]
    change = body_schema(PASSWORD_PATH, "post")
    assert sorted(change["required"]) == ["current", "new"]
    assert {"204", "401", "403", "422"} <= set(paths[PASSWORD_PATH]["post"]["responses"])
