"""The integration API: each endpoint's success and refusal, and pushes that
reach exactly the right connections."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import PASSWORD, RunningServer, ServerFactory, no_event
from tidings.client import Client

TOKEN = "service-s3cret"


@pytest.fixture
async def admin_server(make_server: ServerFactory) -> RunningServer:
    return await make_server(service_token=TOKEN)


@pytest.fixture
async def admin(admin_server: RunningServer) -> Any:
    async with Client(admin_server.url, token=TOKEN) as client:
        yield client


async def call(client: Client, method: str, path: str, body: object = None) -> tuple[int, Any]:
    return await client.request(method, f"/api/v1/admin{path}", body)


ENDPOINTS = [
    ("POST", "/users", {"username": "x_user"}),
    ("GET", "/users", None),
    ("GET", "/users/1", None),
    ("PATCH", "/users/1", {"display_name": "X"}),
    ("POST", "/users/1/tokens", None),
    ("DELETE", "/users/1/tokens", None),
    ("POST", "/push", {"all": True, "event": {}}),
    ("GET", "/presence?user_ids=1", None),
    ("POST", "/conversations/p:1-2/messages", {"sender_id": 1, "body": "x"}),
    ("POST", "/groups", {"name": "g", "owner_id": 1, "member_ids": []}),
    ("GET", "/groups/1", None),
    ("PUT", "/groups/1/members", {"member_ids": [1]}),
    ("DELETE", "/groups/1", None),
    ("GET", "/groups/1/online", None),
    ("GET", "/stats", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_without_a_configured_service_token_the_admin_api_is_off(
    server: RunningServer, method: str, path: str, body: object
) -> None:
    async with Client(server.url, token="anything") as client:
        status, answer = await call(client, method, path, body)
    assert status == 403 and answer["error"]["code"] == "forbidden"
    assert "TIDINGS_SERVICE_TOKEN" in answer["error"]["message"]


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_a_missing_or_wrong_service_token_is_unauthorized(
    admin_server: RunningServer, token: str | None, method: str, path: str, body: object
) -> None:
    async with Client(admin_server.url, token=token) as client:
        status, answer = await call(client, method, path, body)
    assert status == 401 and answer["error"]["code"] == "unauthorized"


async def test_a_user_token_is_not_a_service_token(
    admin: Client, admin_server: RunningServer
) -> None:
    async with Client(admin_server.url) as user:
        await user.signup("plainuser", PASSWORD)
        await user.login("plainuser", PASSWORD)
        status, _ = await call(user, "GET", "/stats")
    assert status == 401


async def test_a_backend_creates_users_mints_tokens_and_they_chat(
    admin: Client, admin_server: RunningServer
) -> None:
    status, shop = await call(admin, "POST", "/users", {"username": "shop", "display_name": "Shop"})
    assert status == 201 and shop["display_name"] == "Shop"
    _, buyer = await call(admin, "POST", "/users", {"username": "buyer"})
    assert buyer["display_name"] == "buyer"
    status, taken = await call(admin, "POST", "/users", {"username": "SHOP"})
    assert status == 409 and taken["error"]["code"] == "username_taken"
    status, minted = await call(admin, "POST", f"/users/{buyer['id']}/tokens")
    assert status == 201
    async with Client(admin_server.url, token=minted["token"]) as client:
        assert (await client.me()).id == buyer["id"]
        # A user created without a password cannot log in with one.
        status, _ = await client.request(
            "POST", "/api/v1/sessions", {"username": "buyer", "password": "whatever1"}
        )
        assert status == 401
        async with await client.connect() as ws:
            conversation = f"p:{shop['id']}-{buyer['id']}"
            status, sent = await call(
                admin,
                "POST",
                f"/conversations/{conversation}/messages",
                {"sender_id": shop["id"], "body": "your order shipped", "client_msg_id": "o-1"},
            )
            assert status == 201 and sent["sender"] == shop["id"]
            event = await ws.next_event()
            assert event["message"]["body"] == "your order shipped"  # type: ignore[index]
            again = await call(
                admin,
                "POST",
                f"/conversations/{conversation}/messages",
                {"sender_id": shop["id"], "body": "your order shipped", "client_msg_id": "o-1"},
            )
            assert again == (200, sent)
            await no_event(ws)


async def test_send_as_follows_the_membership_rules(admin: Client) -> None:
    ids = [
        (await call(admin, "POST", "/users", {"username": f"member{i}"}))[1]["id"] for i in range(3)
    ]
    status, answer = await call(
        admin,
        "POST",
        f"/conversations/p:{ids[0]}-{ids[1]}/messages",
        {"sender_id": ids[2], "body": "not mine"},
    )
    assert status == 403 and answer["error"]["code"] == "not_member"
    status, answer = await call(
        admin,
        "POST",
        f"/conversations/p:{ids[0]}-{ids[1]}/messages",
        {"sender_id": 999999, "body": "x"},
    )
    assert status == 404


async def test_users_are_listed_in_pages_and_renamed(admin: Client) -> None:
    made = [(await call(admin, "POST", "/users", {"username": f"page{i}"}))[1] for i in range(5)]
    _, first = await call(admin, "GET", "/users?limit=2")
    _, rest = await call(admin, "GET", f"/users?after_id={first['users'][-1]['id']}&limit=10")
    assert [u["id"] for u in first["users"] + rest["users"]] == [u["id"] for u in made]
    status, renamed = await call(admin, "PATCH", f"/users/{made[0]['id']}", {"display_name": "P"})
    assert status == 200 and renamed["display_name"] == "P"
    status, _ = await call(admin, "PATCH", "/users/999999", {"display_name": "P"})
    assert status == 404
    status, _ = await call(admin, "POST", "/users/999999/tokens")
    assert status == 404


async def test_a_rename_reaches_the_users_online_peers_as_its_own_rename_does(
    admin: Client, admin_server: RunningServer
) -> None:
    _, shop = await call(admin, "POST", "/users", {"username": "shop"})
    _, buyer = await call(admin, "POST", "/users", {"username": "buyer"})
    conversation = f"p:{shop['id']}-{buyer['id']}"
    body = {"sender_id": shop["id"], "body": "your order shipped"}
    assert (await call(admin, "POST", f"/conversations/{conversation}/messages", body))[0] == 201
    _, minted = await call(admin, "POST", f"/users/{buyer['id']}/tokens")
    async with Client(admin_server.url, token=minted["token"]) as client:
        ws = await client.connect()
        status, _ = await call(admin, "PATCH", f"/users/{shop['id']}", {"display_name": "Shop"})
        assert status == 200
        event = await ws.next_event()
        assert event["type"] == "conversation"
        entry = event["conversation"]
        assert isinstance(entry, dict)
        assert (entry["id"], entry["title"], entry["unread"]) == (conversation, "Shop", 1)
        await ws.close()


async def test_revoking_a_users_tokens_closes_its_sockets(
    admin: Client, admin_server: RunningServer
) -> None:
    _, user = await call(admin, "POST", "/users", {"username": "revoked"})
    tokens = [(await call(admin, "POST", f"/users/{user['id']}/tokens"))[1]["token"] for _ in "ab"]
    clients = [Client(admin_server.url, token=t) for t in tokens]
    sockets = [await c.connect() for c in clients]
    status, _ = await call(admin, "DELETE", f"/users/{user['id']}/tokens")
    assert status == 204
    for ws in sockets:
        assert await ws.wait_closed() == 4003
    for client in clients:
        with pytest.raises(Exception, match="401"):
            await client.me()
        await client.close()


async def test_push_reaches_exactly_the_named_users_connections(
    admin: Client, admin_server: RunningServer
) -> None:
    ids = [
        (await call(admin, "POST", "/users", {"username": f"pushed{i}"}))[1]["id"] for i in range(3)
    ]
    clients = []
    for uid in ids:
        token = (await call(admin, "POST", f"/users/{uid}/tokens"))[1]["token"]
        clients.append(Client(admin_server.url, token=token))
    first_a, first_b = await clients[0].connect(), await clients[0].connect()
    second, third = await clients[1].connect(), await clients[2].connect()
    event = {"kind": "order", "id": 7, "items": [1, 2], "note": "ünïcode"}
    status, answer = await call(
        admin, "POST", "/push", {"user_ids": [ids[0], ids[1]], "event": event}
    )
    assert status == 200 and answer == {"connections": 3}
    for ws in (first_a, first_b, second):
        assert await ws.next_event() == {"type": "push", "event": event}
    await no_event(third)

    _, group = await call(
        admin, "POST", "/groups", {"name": "g", "owner_id": ids[1], "member_ids": [ids[2]]}
    )
    for ws in (second, third):
        assert (await ws.next_event())["type"] == "conversation"
        created = await ws.next_event()  # the group's first entry: its created notice
        assert created["type"] == "message" and created["message"]["seq"] == 1
    _, answer = await call(admin, "POST", "/push", {"group_id": group["id"], "event": "hi group"})
    assert answer == {"connections": 2}
    for ws in (second, third):
        assert await ws.next_event() == {"type": "push", "event": "hi group"}
    await no_event(first_a)

    _, answer = await call(admin, "POST", "/push", {"all": True, "event": None})
    assert answer == {"connections": 4}
    for ws in (first_a, first_b, second, third):
        assert await ws.next_event() == {"type": "push", "event": None}
    for client in clients:
        await client.close()


@pytest.mark.parametrize(
    "body",
    [
        {"event": 1},
        {"user_ids": [1], "all": True, "event": 1},
        {"user_ids": [1]},
        {"user_ids": "1", "event": 1},
        {"group_id": "x", "event": 1},
        {"all": "yes", "event": 1},
    ],
)
async def test_a_push_without_exactly_one_target_and_an_event_is_422(
    admin: Client, body: dict[str, Any]
) -> None:
    status, answer = await call(admin, "POST", "/push", body)
    assert status == 422 and answer["error"]["code"] == "bad_request"


async def test_presence_and_group_online_counts(admin: Client, admin_server: RunningServer) -> None:
    ids = [
        (await call(admin, "POST", "/users", {"username": f"online{i}"}))[1]["id"] for i in range(3)
    ]
    token = (await call(admin, "POST", f"/users/{ids[0]}/tokens"))[1]["token"]
    async with Client(admin_server.url, token=token) as client:
        sockets = [await client.connect() for _ in range(2)]
        _, answer = await call(admin, "GET", f"/presence?user_ids={ids[0]},{ids[1]}")
        assert answer == {"online": {str(ids[0]): True, str(ids[1]): False}}
        _, group = await call(
            admin, "POST", "/groups", {"name": "g", "owner_id": ids[0], "member_ids": ids[1:]}
        )
        _, online = await call(admin, "GET", f"/groups/{group['id']}/online")
        assert online == {"members": 3, "online": 1, "connections": 2}
        _, stats = await call(admin, "GET", "/stats")
        assert stats["connections"] == 2 and len(stats["nodes"]) == 1
        for ws in sockets:
            await ws.close()
    status, answer = await call(admin, "GET", "/presence?user_ids=a,b")
    assert status == 422


async def test_a_backend_manages_groups_on_users_behalf(
    admin: Client, admin_server: RunningServer
) -> None:
    ids = [
        (await call(admin, "POST", "/users", {"username": f"grouped{i}"}))[1]["id"]
        for i in range(4)
    ]
    status, group = await call(
        admin, "POST", "/groups", {"name": "team", "owner_id": ids[0], "member_ids": ids[1:3]}
    )
    assert status == 201 and group["owner_id"] == ids[0] and group["member_ids"] == ids[:3]
    token = (await call(admin, "POST", f"/users/{ids[1]}/tokens"))[1]["token"]
    async with Client(admin_server.url, token=token) as member:
        ws = await member.connect()
        status, changed = await call(
            admin, "PUT", f"/groups/{group['id']}/members", {"member_ids": [ids[0], ids[3]]}
        )
        assert status == 200 and sorted(changed["member_ids"]) == [ids[0], ids[3]]
        # The missing are added first: the member still there hears that notice.
        added = await ws.next_event()
        assert added["type"] == "message" and added["message"]["system"]["event"] == "members_added"
        assert added["message"]["system"]["actor"] is None
        assert await ws.next_event() == {
            "type": "conversation_removed",
            "conversation": f"g:{group['id']}",
        }
        status, _ = await call(admin, "DELETE", f"/groups/{group['id']}")
        assert status == 204
        assert (await call(admin, "GET", f"/groups/{group['id']}"))[0] == 404
        await ws.close()
    status, _ = await call(admin, "POST", "/groups", {"name": "x", "owner_id": 999999})
    assert status == 404
