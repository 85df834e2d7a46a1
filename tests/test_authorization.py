"""The authorization matrix: every user endpoint and frame against every kind of caller.

The cast, set up fresh for each row (``scene``):

- alice (``owner``) owns the group "Secret Garden" and writes to bob in private;
- bob (``member``) is in the group but does not own it;
- carol (``outsider``) is in nothing of theirs;
- dave (``removed``) was in the group and was removed by alice;
- ``revoked`` is a token of alice's that was logged out (so a refusal is
  about the token, not about membership); ``garbage`` a token never issued;
  ``none`` sends no Authorization header.

Each row names the refusal it must get (401 ``unauthorized``, 403
``not_member``, 403 ``forbidden``, 404 ``not_found``, or close 4001/4003 on
the WebSocket), and for every refusal the whole answer is searched for the
scene's secrets: message bodies, client_msg_ids, the group's name and the
other users' display names. A refusal must tell nothing of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from tests.conftest import (
    PASSWORD,
    Account,
    AccountFactory,
    RunningServer,
    ServerFactory,
    private,
)
from tidings.client import ApiError, Client, Socket

SECRET_BODIES = (
    "alice to bob: the key is under the mat 🗝️",
    "bob to alice: ack, mat it is",
    "group: meet at the old oak 🌳",
    "group, after dave left: new oak is the birch",
)
SECRET_CLIENT_IDS = ("cmid-secret-private-1", "cmid-secret-group-1")
# The notices of the scene's own changes: no refused request adds one.
SCENE_NOTICES = ["created", "member_removed"]
GROUP_NAME = "Secret Garden"
DISPLAY = {"alice": "Alice Anonymous", "bob": "Bob Backstage", "carol": "Carol Curious"}
DISPLAY["dave"] = "Dave Departed"


@dataclass
class Scene:
    server: RunningServer
    users: dict[str, Account]
    tokens: dict[str, str | None]  # principal -> token (None: no header)
    group_id: int
    private: str  # alice and bob
    group: str
    _clients: list[Client] = field(default_factory=list)

    def path(self, template: str) -> str:
        ids = {name: account.id for name, account in self.users.items()}
        return template.format(private=self.private, group=self.group_id, **ids)

    def client(self, principal: str) -> Client:
        client = Client(self.server.url, token=self.tokens[principal])
        self._clients.append(client)
        return client

    def secrets_hidden_from(self, principal: str) -> list[str]:
        """What ``principal`` has no right to see in a refusal."""
        own = {"owner": "alice", "member": "bob", "outsider": "carol", "removed": "dave"}
        me = own.get(principal)
        names = [display for user, display in DISPLAY.items() if user != me]
        return [*SECRET_BODIES, *SECRET_CLIENT_IDS, GROUP_NAME, *names]


@pytest.fixture
async def scene(server: RunningServer, make_account: AccountFactory) -> AsyncIterator[Scene]:
    users = {name: await make_account(name, display) for name, display in DISPLAY.items()}
    alice, bob, dave = users["alice"], users["bob"], users["dave"]
    group = await alice.client.create_group(GROUP_NAME, [bob.id, dave.id])
    conversation, group_conv = private(alice, bob), f"g:{group.id}"
    await alice.client.send(conversation, SECRET_BODIES[0], SECRET_CLIENT_IDS[0])
    await bob.client.send(conversation, SECRET_BODIES[1])
    await alice.client.send(group_conv, SECRET_BODIES[2], SECRET_CLIENT_IDS[1])
    await alice.client.remove_member(group.id, dave.id)
    await bob.client.send(group_conv, SECRET_BODIES[3])
    # A second session of alice's, logged out: its token is revoked.
    revoked = Client(server.url)
    await revoked.login("alice", PASSWORD)
    await revoked.logout()
    tokens: dict[str, str | None] = {
        "owner": alice.client.token,
        "member": bob.client.token,
        "outsider": users["carol"].client.token,
        "removed": dave.client.token,
        "revoked": revoked.token,
        "garbage": "not-a-token-" + "x" * 40,
        "none": None,
    }
    made = Scene(server, users, tokens, group.id, conversation, group_conv, [revoked])
    yield made
    for client in made._clients:
        await client.close()


def assert_nothing_leaks(answer: object, hidden: list[str]) -> None:
    """No secret appears anywhere in the decoded answer (re-encoded, emoji unescaped)."""
    text = answer if isinstance(answer, str) else msgspec.json.encode(answer).decode()
    for secret in hidden:
        assert secret not in text, f"refusal leaks {secret!r}: {text[:500]}"


# -- HTTP ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A request by ``principal`` and the refusal it must get."""

    principal: str
    method: str
    path: str
    body: Any
    status: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.principal}-{self.method}-{self.path}"


PRIVATE_PATHS = "/api/v1/conversations/{private}"
GROUP_PATHS = "/api/v1/conversations/g:{group}"

# Every user endpoint, with a body that would succeed for the right caller.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/me", None),
    ("PATCH", "/api/v1/me", {"display_name": "Mallory"}),
    ("POST", "/api/v1/me/password", {"current": PASSWORD, "new": "taken over"}),
    ("GET", "/api/v1/users/{bob}", None),
    ("GET", "/api/v1/users?username=bob", None),
    ("DELETE", "/api/v1/sessions/current", None),
    ("POST", "/api/v1/groups", {"name": "new", "member_ids": []}),
    ("GET", "/api/v1/groups/{group}", None),
    ("POST", "/api/v1/groups/{group}/members", {"user_id": "{carol}"}),
    ("DELETE", "/api/v1/groups/{group}/members/{bob}", None),
    *(
        GROUP_RUNNING := [
            ("PATCH", "/api/v1/groups/{group}", {"name": "taken", "muted_all": True}),
            ("PUT", "/api/v1/groups/{group}/admins", {"user_ids": ["{bob}"]}),
            ("POST", "/api/v1/groups/{group}/owner", {"user_id": "{bob}"}),
            ("PUT", "/api/v1/groups/{group}/mutes/{bob}", {"seconds": 60}),
            ("DELETE", "/api/v1/groups/{group}/mutes/{bob}", None),
            ("DELETE", "/api/v1/groups/{group}", None),
        ]
    ),
    ("GET", "/api/v1/conversations", None),
    ("GET", PRIVATE_PATHS, None),
    ("GET", PRIVATE_PATHS + "/messages", None),
    ("GET", PRIVATE_PATHS + "/messages?after=0", None),
    ("POST", PRIVATE_PATHS + "/messages", {"body": "hi"}),
    ("POST", PRIVATE_PATHS + "/read", {"seq": 1}),
    ("PATCH", PRIVATE_PATHS, {"pinned": True}),
    ("GET", GROUP_PATHS, None),
    ("GET", GROUP_PATHS + "/messages", None),
    ("GET", GROUP_PATHS + "/messages?before=3", None),
    ("POST", GROUP_PATHS + "/messages", {"body": "hi"}),
    ("POST", GROUP_PATHS + "/read", {"seq": 1}),
    ("PATCH", GROUP_PATHS, {"muted": True, "draft": "later"}),
]
CONVERSATION_ENDPOINTS = [e for e in ENDPOINTS if e[1].startswith("/api/v1/conversations/")]
GROUP_CONVERSATION_ENDPOINTS = [e for e in CONVERSATION_ENDPOINTS if "g:" in e[1]]

ROWS: list[Row] = [
    # No, a revoked or a made-up token: 401 everywhere.
    *(
        Row(who, method, path, body, 401, "unauthorized")
        for who in ("none", "revoked", "garbage")
        for method, path, body in ENDPOINTS
    ),
    # Not a member: 403 not_member for every endpoint of the conversation or group.
    *(
        Row(who, method, path, body, 403, "not_member")
        for who in ("outsider", "removed")
        for method, path, body in [
            *CONVERSATION_ENDPOINTS,
            ("GET", "/api/v1/groups/{group}", None),
            ("POST", "/api/v1/groups/{group}/members", {"user_id": "{carol}"}),
            ("POST", "/api/v1/groups/{group}/members", {"user_ids": ["{dave}"]}),
            ("DELETE", "/api/v1/groups/{group}/members/{bob}", None),
            ("DELETE", "/api/v1/groups/{group}/members/{alice}", None),
            *GROUP_RUNNING,
        ]
    ),
    # A plain member runs nothing of the group (PROTOCOL-v2 §6).
    *(
        Row("member", method, path.replace("{bob}", "{alice}"), body, 403, "forbidden")
        for method, path, body in GROUP_RUNNING
    ),
    # A member that is not the owner: only the owner adds others or removes them.
    Row(
        "member", "POST", "/api/v1/groups/{group}/members", {"user_id": "{carol}"}, 403, "forbidden"
    ),
    Row(
        "member",
        "POST",
        "/api/v1/groups/{group}/members",
        {"user_ids": ["{dave}"]},
        403,
        "forbidden",
    ),
    Row("member", "DELETE", "/api/v1/groups/{group}/members/{alice}", None, 403, "forbidden"),
    # Removing someone who is not in the group is not found, whoever asks.
    Row("owner", "DELETE", "/api/v1/groups/{group}/members/{dave}", None, 404, "not_found"),
    Row("owner", "DELETE", "/api/v1/groups/{group}/members/{carol}", None, 404, "not_found"),
]


def fill(value: Any, scene: Scene) -> Any:
    """Put the scene's ids into a body template ("{carol}" -> carol's id)."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return scene.users[value[1:-1]].id
    if isinstance(value, dict):
        return {k: fill(v, scene) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, scene) for v in value]
    return value


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_a_caller_without_the_right_gets_the_contract_refusal_and_no_data(
    scene: Scene, row: Row
) -> None:
    status, body = await scene.client(row.principal).request(
        row.method, scene.path(row.path), fill(row.body, scene)
    )
    assert status == row.status, body
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert body["error"]["code"] == row.code, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert_nothing_leaks(body, scene.secrets_hidden_from(row.principal))


async def test_a_refused_request_changes_nothing(scene: Scene) -> None:
    """The refusals above are refusals, not errors after the fact: nothing was stored."""
    for row in ROWS:
        if row.method != "GET" and row.path != "/api/v1/sessions/current":
            await scene.client(row.principal).request(
                row.method, scene.path(row.path), fill(row.body, scene)
            )
    alice = scene.users["alice"].client
    group = await alice.group(scene.group_id)
    assert group.member_ids == [scene.users["alice"].id, scene.users["bob"].id]
    assert group.owner_id == scene.users["alice"].id
    assert [m.body for m in await alice.messages(scene.private)] == list(SECRET_BODIES[:2])
    # Only the messages the scene itself sent, and the notices of its own changes.
    texts = [m.body for m in await alice.messages(scene.group) if m.kind == "text"]
    assert texts == [SECRET_BODIES[2], SECRET_BODIES[3]]
    notices = [m.system["event"] for m in await alice.messages(scene.group) if m.system]
    assert notices == SCENE_NOTICES
    assert (await alice.me()).display_name == DISPLAY["alice"]
    assert (await scene.client("none").login("alice", PASSWORD)).user.id == scene.users["alice"].id


ALLOWED: list[tuple[str, str, str, Any, int]] = [
    ("owner", "GET", "/api/v1/groups/{group}", None, 200),
    ("member", "GET", "/api/v1/groups/{group}", None, 200),
    ("owner", "POST", "/api/v1/groups/{group}/members", {"user_id": "{carol}"}, 200),
    ("owner", "DELETE", "/api/v1/groups/{group}/members/{bob}", None, 204),
    ("member", "DELETE", "/api/v1/groups/{group}/members/{bob}", None, 204),
    *(
        ("owner", m, p, b, 201 if m == "POST" and p.endswith("messages") else 200)
        for m, p, b in CONVERSATION_ENDPOINTS
    ),
    *(
        ("member", m, p, b, 201 if m == "POST" and p.endswith("messages") else 200)
        for m, p, b in CONVERSATION_ENDPOINTS
    ),
    ("removed", "GET", "/api/v1/conversations/p:{alice}-{dave}/messages", None, 200),
    ("outsider", "GET", "/api/v1/users/{alice}", None, 200),
    ("outsider", "GET", "/api/v1/conversations", None, 200),
]


@pytest.mark.parametrize(
    ("principal", "method", "path", "body", "status"),
    ALLOWED,
    ids=[f"{p}-{m}-{path}" for p, m, path, _, _ in ALLOWED],
)
async def test_the_right_caller_is_allowed_the_same_request(
    scene: Scene, principal: str, method: str, path: str, body: Any, status: int
) -> None:
    """The control group: the refusals above are about the caller, not the request."""
    got, answer = await scene.client(principal).request(method, scene.path(path), fill(body, scene))
    assert got == status, answer


@pytest.mark.parametrize("principal", ["outsider", "removed"])
async def test_the_chat_list_of_a_non_member_shows_nothing_of_the_others(
    scene: Scene, principal: str
) -> None:
    status, body = await scene.client(principal).request("GET", "/api/v1/conversations")
    assert status == 200, body
    assert [entry["id"] for entry in body["conversations"]] == []
    assert_nothing_leaks(body, scene.secrets_hidden_from(principal))


async def test_a_removed_member_sees_its_group_vanish_from_the_chat_list(scene: Scene) -> None:
    entries = await scene.users["dave"].client.conversations()
    assert scene.group not in [entry.id for entry in entries]


async def test_a_user_lookup_shows_only_the_public_profile(scene: Scene) -> None:
    status, body = await scene.client("outsider").request(
        "GET", scene.path("/api/v1/users/{alice}")
    )
    assert status == 200
    assert set(body) == {"id", "username", "display_name"}, body
    assert_nothing_leaks(body, [*SECRET_BODIES, *SECRET_CLIENT_IDS, GROUP_NAME])


async def test_a_revoked_token_stays_revoked_after_a_new_login(scene: Scene) -> None:
    fresh = Client(scene.server.url)
    scene._clients.append(fresh)
    await fresh.login("alice", PASSWORD)
    status, body = await scene.client("revoked").request("GET", "/api/v1/me")
    assert status == 401 and body["error"]["code"] == "unauthorized", body
    assert (await fresh.me()).username == "alice"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "bearer{token}x",
        "Basic {token}",
        "Token {token}",
        "{token}",
        "Bearer {token}x",
        "Bearer x{token}",
        "Bearer {token_upper}",
    ],
)
async def test_a_mangled_authorization_header_is_401(scene: Scene, header: str) -> None:
    token = scene.tokens["owner"]
    assert token is not None
    value = header.format(token=token, token_upper=token.upper())
    if token.upper() == token:
        pytest.skip("the token has no letters to change the case of")
    anon = scene.client("none")
    status, body = await anon.request("GET", "/api/v1/me", headers={"Authorization": value})
    assert status == 401, body
    assert body["error"]["code"] == "unauthorized", body
    assert_nothing_leaks(body, scene.secrets_hidden_from("none"))


# -- WebSocket -----------------------------------------------------------------


async def raw_socket(scene: Scene) -> Socket:
    return await scene.client("none").connect(auth=False)


AUTH_FRAMES: dict[str, Any] = {
    "revoked-token": lambda s: {"type": "auth", "token": s.tokens["revoked"]},
    "garbage-token": lambda s: {"type": "auth", "token": s.tokens["garbage"]},
    "empty-token": lambda s: {"type": "auth", "token": ""},
    "missing-token": lambda s: {"type": "auth"},
    "numeric-token": lambda s: {"type": "auth", "token": 12345},
    "null-token": lambda s: {"type": "auth", "token": None},
    "token-of-another-field": lambda s: {"type": "auth", "password": PASSWORD, "user": "alice"},
    "auth-with-ref": lambda s: {"type": "auth", "ref": "r1", "token": s.tokens["revoked"]},
}
# docs/protocol.md: a first frame that is not `auth` closes with 4001 "too"; the
# unauthorized error before the close is allowed, nothing else is.
NOT_AUTH_FRAMES: dict[str, Any] = {
    "ping-first": lambda s: {"type": "ping", "ref": 1},
    "send-first": lambda s: {"type": "send", "ref": 1, "conversation": s.private, "body": "x"},
    "read-first": lambda s: {"type": "read", "ref": 1, "conversation": s.group, "seq": 1},
    "not-json": lambda s: "not json",
    "array": lambda s: [],
    "no-type": lambda s: {"token": s.tokens["owner"]},
    "empty-text": lambda s: "",
}


@pytest.mark.parametrize("case", list(AUTH_FRAMES))
async def test_a_socket_that_fails_auth_gets_unauthorized_and_close_4001(
    scene: Scene, case: str
) -> None:
    sock = await raw_socket(scene)
    await sock.send_raw(msgspec.json.encode(AUTH_FRAMES[case](scene)).decode())
    code = await sock.wait_closed(timeout=10)
    assert code == 4001
    frames = sock.drain()
    assert len(frames) == 1, frames
    assert frames[0]["type"] == "error" and frames[0]["code"] == "unauthorized", frames
    assert "ref" not in frames[0], frames
    assert_nothing_leaks(frames[0], scene.secrets_hidden_from("none"))


@pytest.mark.parametrize("case", list(NOT_AUTH_FRAMES))
async def test_a_socket_whose_first_frame_is_not_auth_is_closed_4001_with_no_data(
    scene: Scene, case: str
) -> None:
    data = NOT_AUTH_FRAMES[case](scene)
    sock = await raw_socket(scene)
    await sock.send_raw(data if isinstance(data, str) else msgspec.json.encode(data).decode())
    assert await sock.wait_closed(timeout=10) == 4001
    frames = sock.drain()
    assert len(frames) <= 1, frames
    for frame in frames:
        assert frame.get("type") == "error" and frame.get("code") == "unauthorized", frame
        assert "ref" not in frame, frame
        assert_nothing_leaks(frame, scene.secrets_hidden_from("none"))


async def test_a_socket_that_sends_nothing_is_closed_4001_after_the_auth_timeout(
    make_server: ServerFactory,
) -> None:
    quick = await make_server(auth_timeout_seconds=0.3)
    async with Client(quick.url) as anon:
        sock = await anon.connect(auth=False)
        assert await sock.wait_closed(timeout=10) == 4001
        assert sock.drain() == []


@dataclass(frozen=True)
class FrameRow:
    principal: str
    frame: dict[str, Any]
    code: str

    @property
    def id(self) -> str:
        return f"{self.principal}-{self.frame['type']}-{self.frame['conversation']}"


FRAME_ROWS = [
    FrameRow(who, frame, "not_member")
    for who in ("outsider", "removed")
    for frame in (
        {"type": "send", "conversation": "{private}", "body": "let me in"},
        {
            "type": "send",
            "conversation": "{private}",
            "body": "x",
            "client_msg_id": "cmid-secret-private-1",
        },
        {"type": "read", "conversation": "{private}", "seq": 1},
        {"type": "send", "conversation": "{group}", "body": "let me in"},
        {
            "type": "send",
            "conversation": "{group}",
            "body": "x",
            "client_msg_id": "cmid-secret-group-1",
        },
        {"type": "read", "conversation": "{group}", "seq": 2},
    )
]


def frame_for(scene: Scene, template: dict[str, Any]) -> dict[str, Any]:
    ids = {"{private}": scene.private, "{group}": scene.group}
    return {k: ids.get(v, v) if isinstance(v, str) else v for k, v in template.items()}


@pytest.mark.parametrize("row", FRAME_ROWS, ids=[row.id for row in FRAME_ROWS])
async def test_a_frame_on_a_conversation_of_others_gets_not_member_and_no_data(
    scene: Scene, row: FrameRow
) -> None:
    sock = await scene.client(row.principal).connect()
    answer = await sock.request({**frame_for(scene, row.frame), "ref": "r-auth"})
    assert answer["type"] == "error" and answer["code"] == row.code, answer
    assert answer["ref"] == "r-auth"
    assert_nothing_leaks(answer, scene.secrets_hidden_from(row.principal))
    assert not sock.closed
    await sock.ping()  # the socket stays usable


async def test_non_members_sockets_receive_nothing_of_the_others_conversations(
    scene: Scene,
) -> None:
    outsider = await scene.client("outsider").connect()
    removed = await scene.client("removed").connect()
    alice, bob = scene.users["alice"].client, scene.users["bob"].client
    await alice.send(scene.private, "later private " + SECRET_BODIES[0])
    await bob.send(scene.group, "later group " + SECRET_BODIES[2])
    await bob.mark_read(scene.private, 3)
    await asyncio.sleep(0.5)
    got = {"outsider": outsider.drain(), "removed": removed.drain()}
    assert got == {"outsider": [], "removed": []}


async def test_a_socket_of_a_logged_out_token_is_closed_4003_and_gets_nothing_more(
    scene: Scene,
) -> None:
    second = Client(scene.server.url)
    scene._clients.append(second)
    await second.login("bob", PASSWORD)
    sock = await second.connect()
    await second.logout()
    assert await sock.wait_closed(timeout=10) == 4003
    await scene.users["alice"].client.send(scene.private, "after logout " + SECRET_BODIES[0])
    assert [f for f in sock.drain() if f.get("type") == "message"] == []
    with pytest.raises(ApiError) as refused:
        await second.connect()
    assert refused.value.code == "unauthorized"


async def test_a_browser_socket_from_another_origin_is_refused_before_the_upgrade(
    scene: Scene,
) -> None:
    anon = scene.client("none")
    http = anon._http()
    async with http.get(
        anon.ws_url().replace("ws://", "http://"),
        headers={
            "Origin": "http://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    ) as response:
        assert response.status == 403
        body = await response.json()
    assert body["error"]["code"] == "forbidden", body
    assert_nothing_leaks(body, scene.secrets_hidden_from("none"))


# -- client_msg_id replays across a membership boundary -----------------------------


def assert_refused_or_own_original(answer: object, original: dict[str, Any]) -> None:
    """A replayed client_msg_id gets 403 not_member, or the sender's own original
    message back ("a repeat returns the original message wherever it was sent"):
    never a new message, never anything of the others."""
    if isinstance(answer, dict) and "error" in answer:
        assert answer["error"]["code"] == "not_member", answer
    elif isinstance(answer, dict) and answer.get("type") == "error":
        assert answer["code"] == "not_member", answer
    else:
        message = answer["message"] if isinstance(answer, dict) and "message" in answer else answer
        assert message == original, answer


async def test_a_removed_member_replaying_an_old_client_msg_id_stores_nothing_new(
    scene: Scene,
) -> None:
    alice, bob = scene.users["alice"].client, scene.users["bob"]
    sent = await bob.client.send(scene.group, "bob's own line", "bob-cmid-1")
    await alice.remove_member(scene.group_id, bob.id)
    path = f"/api/v1/conversations/{scene.group}/messages"
    status, body = await bob.client.request(
        "POST", path, {"body": "again", "client_msg_id": "bob-cmid-1"}
    )
    assert status in (200, 403), body
    assert_refused_or_own_original(body, msgspec.to_builtins(sent))
    bodies = [m.body for m in await alice.messages(scene.group)]
    assert bodies[-2:] == ["bob's own line", f"{DISPLAY['alice']} removed {DISPLAY['bob']}"]


async def test_a_non_member_reusing_its_own_client_msg_id_on_a_group_stores_nothing_there(
    scene: Scene,
) -> None:
    carol, alice = scene.users["carol"], scene.users["alice"]
    sent = msgspec.to_builtins(
        await carol.client.send(private(alice, carol), "hi alice", "carol-cmid-1")
    )
    frame = {"body": "x", "client_msg_id": "carol-cmid-1"}
    path = f"/api/v1/conversations/{scene.group}/messages"
    status, body = await carol.client.request("POST", path, frame)
    assert status in (200, 403), body
    assert_refused_or_own_original(body, sent)
    sock = await carol.client.connect()
    answer = await sock.request({"type": "send", "conversation": scene.group, **frame})
    assert_refused_or_own_original(answer, sent)
    assert_nothing_leaks([body, answer], scene.secrets_hidden_from("outsider"))
    history = await alice.client.messages(scene.group)
    assert [m.sender for m in history] != [] and carol.id not in [m.sender for m in history]


# -- the integration API is not for user tokens ------------------------------------

ADMIN_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/admin/users", {"username": "sneaky"}),
    ("GET", "/api/v1/admin/users", None),
    ("GET", "/api/v1/admin/users/{alice}", None),
    ("POST", "/api/v1/admin/users/{alice}/tokens", None),
    ("DELETE", "/api/v1/admin/users/{alice}/tokens", None),
    ("POST", "/api/v1/admin/push", {"all": True, "event": {"x": 1}}),
    ("GET", "/api/v1/admin/presence?user_ids={alice},{bob}", None),
    (
        "POST",
        "/api/v1/admin/conversations/{private}/messages",
        {"sender_id": "{alice}", "body": "x"},
    ),
    ("POST", "/api/v1/admin/groups", {"name": "x", "member_ids": []}),
    ("GET", "/api/v1/admin/groups/{group}", None),
    ("PUT", "/api/v1/admin/groups/{group}/members", {"user_ids": ["{carol}"]}),
    ("DELETE", "/api/v1/admin/groups/{group}", None),
    ("GET", "/api/v1/admin/groups/{group}/online", None),
    ("GET", "/api/v1/admin/stats", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ADMIN_ENDPOINTS, ids=[f"{m}-{p}" for m, p, _ in ADMIN_ENDPOINTS]
)
async def test_a_user_token_on_the_admin_api_is_refused_with_no_data(
    scene: Scene, method: str, path: str, body: Any
) -> None:
    status, answer = await scene.client("owner").request(
        method, scene.path(path), fill(body, scene)
    )
    # No service token is configured on this server: the admin API is off (403).
    assert status == 403 and answer["error"]["code"] == "forbidden", answer
    assert_nothing_leaks(answer, scene.secrets_hidden_from("owner"))
    # Nothing happened: the group and the owner's messages are as they were.
    group = await scene.users["alice"].client.group(scene.group_id)
    assert group.member_ids == [scene.users["alice"].id, scene.users["bob"].id]


@pytest.mark.parametrize(
    ("method", "path", "body"), ADMIN_ENDPOINTS, ids=[f"{m}-{p}" for m, p, _ in ADMIN_ENDPOINTS]
)
async def test_a_user_token_on_an_enabled_admin_api_is_unauthorized(
    make_server: ServerFactory, method: str, path: str, body: Any
) -> None:
    server = await make_server(service_token="service-secret-token")
    async with Client(server.url) as alice, Client(server.url) as bob:
        await alice.signup("alice", PASSWORD, DISPLAY["alice"])
        await bob.signup("bob", PASSWORD, DISPLAY["bob"])
        await alice.login("alice", PASSWORD)
        await bob.login("bob", PASSWORD)
        conversation = "p:1-2"
        await alice.send(conversation, SECRET_BODIES[0])
        group = await alice.create_group(GROUP_NAME, [2])
        filled = path.format(alice=1, bob=2, carol=2, private=conversation, group=group.id)
        payload = body and {
            k: (1 if v == "{alice}" else [2] if v == ["{carol}"] else v) for k, v in body.items()
        }
        status, answer = await alice.request(method, filled, payload)
        assert status == 401 and answer["error"]["code"] == "unauthorized", answer
        assert_nothing_leaks(answer, [SECRET_BODIES[0], GROUP_NAME, DISPLAY["bob"]])
