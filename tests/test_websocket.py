"""The WebSocket endpoint: auth, frames, acks, events, errors and close codes."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import Account, AccountFactory, RunningServer, ServerFactory, no_event, private
from tidings.client import ApiError, Client
from tidings.gateway.context import Edge


async def test_auth_ok_names_the_user(alice: Account) -> None:
    async with await alice.client.connect() as ws:
        assert ws.user == alice.user


async def test_a_wrong_token_gets_unauthorized_then_close_4001(server: RunningServer) -> None:
    async with Client(server.url, token="nope") as client:
        ws = await client.connect(auth=False)
        await ws.send_raw('{"type": "auth", "token": "nope"}')
        event = await ws.next_event()
        assert event["type"] == "error"
        assert event["code"] == "unauthorized"
        assert "ref" not in event
        assert await ws.wait_closed() == 4001


async def test_a_first_frame_that_is_not_auth_closes_4001(alice: Account) -> None:
    ws = await alice.client.connect(auth=False)
    await ws.send_raw('{"type": "ping", "ref": 1}')
    event = await ws.next_event()
    assert (event["type"], event["code"]) == ("error", "unauthorized")
    assert await ws.wait_closed() == 4001


async def test_no_auth_frame_in_time_closes_4001(make_server: ServerFactory) -> None:
    server = await make_server(auth_timeout_seconds=0.3)
    async with Client(server.url) as client:
        ws = await client.connect(auth=False)
        assert await ws.wait_closed(timeout=5) == 4001


async def test_a_silent_connection_is_closed_as_idle(make_server: ServerFactory) -> None:
    server = await make_server(idle_timeout_seconds=0.4)
    async with Client(server.url) as client:
        await client.signup("idler", "password1")
        await client.login("idler", "password1")
        ws = await client.connect()
        assert await ws.wait_closed(timeout=5) == 4002


async def test_pings_keep_a_connection_open(make_server: ServerFactory) -> None:
    # Pinging every 0.2 s for longer than the idle timeout; the margin is wide
    # so that a loaded machine's scheduling delays cannot fake an idle client.
    server = await make_server(idle_timeout_seconds=1.5)
    async with Client(server.url) as client:
        await client.signup("pinger", "password1")
        await client.login("pinger", "password1")
        ws = await client.connect()
        for _ in range(10):
            await asyncio.sleep(0.2)
            await ws.ping()
        assert not ws.closed
        await ws.close()


async def test_websocket_protocol_pings_count_as_activity(make_server: ServerFactory) -> None:
    server = await make_server(idle_timeout_seconds=1.5)
    async with Client(server.url) as client:
        await client.signup("rawpinger", "password1")
        session = await client.login("rawpinger", "password1")
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(server.url + "/ws", autoping=True) as ws,
        ):
            await ws.send_json({"type": "auth", "token": session.token})
            assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
            for _ in range(10):  # 2 s of RFC 6455 pings only, no frame of the contract
                await asyncio.sleep(0.2)
                await ws.ping()
            assert not ws.closed
            await ws.send_json({"type": "ping", "ref": "still here"})
            answer = await ws.receive_json(timeout=5)
            assert answer == {"type": "pong", "ref": "still here"}


async def test_a_socket_authenticating_while_the_broker_goes_down_is_sent_away(
    server: RunningServer, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 1012 sweep runs while this socket is not in the hub yet: it must not stay."""
    edge = server.app[Edge.KEY]
    authenticate = edge.accounts.authenticate

    async def broker_lost_meanwhile(token: str) -> int:
        user = await authenticate(token)
        edge.hub.broker_state(False)
        return user

    monkeypatch.setattr(edge.accounts, "authenticate", broker_lost_meanwhile)
    try:
        socket_ = await alice.client.connect()
        assert await socket_.wait_closed(timeout=5) == 1012
        assert not edge.hub.is_online(alice.id)
    finally:
        edge.hub.broker_state(True)


async def test_ping_is_answered_with_pong_and_the_same_ref(alice: Account) -> None:
    async with await alice.client.connect() as ws:
        for ref in (7, "abc", {"nested": [1, None]}, None):
            answer = await ws.request({"type": "ping", "ref": ref})
            assert answer == {"type": "pong", "ref": ref}


async def test_an_answer_to_a_frame_without_ref_has_no_ref(alice: Account) -> None:
    async with await alice.client.connect() as ws:
        await ws.send_raw('{"type": "ping"}')
        assert await ws.next_event() == {"type": "pong"}
        await ws.send_raw('{"type": "nonsense"}')
        event = await ws.next_event()
        assert event["code"] == "unknown_type"
        assert "ref" not in event


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_request"),
        ("[1, 2]", "bad_request"),
        ('{"ref": 1}', "bad_request"),
        ('{"type": "dance", "ref": 1}', "unknown_type"),
        ('{"type": "send", "ref": 1, "conversation": 5, "body": "x"}', "bad_request"),
        ('{"type": "send", "ref": 1, "conversation": "p:1-2", "body": ""}', "bad_request"),
        ('{"type": "send", "ref": 1, "conversation": "p:1-2", "body": 3}', "bad_request"),
        ('{"type": "send", "ref": 1, "conversation": "nowhere", "body": "x"}', "not_found"),
        (
            '{"type": "send", "ref": 1, "conversation": "p:1-2", "body": "x", "client_msg_id": 5}',
            "bad_request",
        ),
        ('{"type": "read", "ref": 1, "conversation": "p:1-2", "seq": "3"}', "bad_request"),
        ('{"type": "read", "ref": 1, "conversation": "p:1-2", "seq": -1}', "bad_request"),
        ('{"type": "auth", "ref": 1, "token": "again"}', "bad_request"),
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_connection_stays_usable(
    alice: Account, bob: Account, frame: str, code: str
) -> None:
    async with await alice.client.connect() as ws:
        await ws.send_raw(frame)
        event = await ws.next_event()
        assert event["type"] == "error"
        assert event["code"] == code
        assert isinstance(event["message"], str)
        message = await ws.send(private(alice, bob), "still here")
        assert message.seq == 1


async def test_a_body_over_the_limit_is_too_large(alice: Account, bob: Account) -> None:
    async with await alice.client.connect() as ws:
        answer = await ws.request(
            {"type": "send", "conversation": private(alice, bob), "body": "x" * 4001}
        )
        assert answer["code"] == "too_large"
        ok = await ws.send(private(alice, bob), "x" * 4000)
        assert len(ok.body) == 4000


async def test_a_frame_over_the_size_limit_closes_1009(alice: Account) -> None:
    async with await alice.client.connect() as ws:
        await ws.send_raw('{"type": "ping", "pad": "' + "x" * 70_000 + '"}')
        assert await ws.wait_closed() == 1009


async def test_send_is_acked_and_delivered_to_the_peer(alice: Account, bob: Account) -> None:
    conversation = private(alice, bob)
    async with await alice.client.connect() as a, await bob.client.connect() as b:
        answer = await a.request(
            {"type": "send", "conversation": conversation, "body": "hello", "client_msg_id": "m1"}
        )
        assert answer["type"] == "ack"
        sent = answer["message"]
        assert isinstance(sent, dict)
        assert sent["seq"] == 1 and sent["sender"] == alice.id and sent["body"] == "hello"
        assert sent["client_msg_id"] == "m1" and sent["time_separator"] is True
        event = await b.next_event()
        assert event == {"type": "message", "message": sent}
        await no_event(a)


async def test_the_senders_other_device_gets_the_message(
    alice: Account, bob: Account, server: RunningServer
) -> None:
    async with (
        await alice.client.connect() as phone,
        await alice.client.connect() as laptop,
        await bob.client.connect() as b,
    ):
        sent = await phone.send(private(alice, bob), "from my phone")
        laptop_event = await laptop.next_event()
        assert laptop_event["type"] == "message"
        assert laptop_event["message"]["id"] == sent.id  # type: ignore[index]
        assert (await b.next_event())["message"]["id"] == sent.id  # type: ignore[index]
        await no_event(phone)


async def test_a_repeated_client_msg_id_is_acked_with_the_original_and_delivered_once(
    alice: Account, bob: Account
) -> None:
    conversation = private(alice, bob)
    async with await alice.client.connect() as a, await bob.client.connect() as b:
        first = await a.send(conversation, "once", client_msg_id="same")
        again = await a.send(conversation, "once", client_msg_id="same")
        assert again == first
        over_http = await alice.client.send(conversation, "once", client_msg_id="same")
        assert over_http == first
        assert (await b.next_event())["message"]["seq"] == 1  # type: ignore[index]
        await no_event(b)
    assert [m.seq for m in await bob.client.messages(conversation)] == [1]


async def test_pipelined_sends_are_acked_in_order(alice: Account, bob: Account) -> None:
    async with await alice.client.connect() as a, await bob.client.connect() as b:
        messages = await asyncio.gather(*(a.send(private(alice, bob), f"m{i}") for i in range(50)))
        assert sorted(m.seq for m in messages) == list(range(1, 51))
        seen = [(await b.next_event())["message"]["seq"] for _ in range(50)]  # type: ignore[index]
        assert seen == list(range(1, 51))


async def test_sending_to_someone_elses_private_conversation_is_not_member(
    make_account: AccountFactory,
) -> None:
    a, b, c = [await make_account() for _ in range(3)]
    async with await c.client.connect() as ws:
        answer = await ws.request({"type": "send", "conversation": private(a, b), "body": "hi"})
        assert answer["code"] == "not_member"


async def test_sending_to_a_user_that_does_not_exist_is_not_found(alice: Account) -> None:
    async with await alice.client.connect() as ws:
        answer = await ws.request(
            {"type": "send", "conversation": f"p:{alice.id}-999999", "body": "hi"}
        )
        assert answer["code"] == "not_found"


async def test_read_frame_acks_the_entry_and_tells_other_devices_and_the_peer(
    alice: Account, bob: Account
) -> None:
    conversation = private(alice, bob)
    for i in range(3):
        await alice.client.send(conversation, f"m{i}")
    async with (
        await bob.client.connect() as bob_phone,
        await bob.client.connect() as bob_laptop,
        await alice.client.connect() as a,
    ):
        entry = await bob_phone.mark_read(conversation, 2)
        assert (entry.read_seq, entry.unread, entry.last_seq) == (2, 1, 3)
        expected = {"type": "read", "conversation": conversation, "user": bob.id, "seq": 2}
        assert await bob_laptop.next_event() == expected
        assert await a.next_event() == expected
        await no_event(bob_phone)
        # Not moving backwards: no event, same entry.
        entry = await bob_phone.mark_read(conversation, 1)
        assert entry.read_seq == 2
        await no_event(a)


async def test_logout_closes_that_tokens_sockets_with_4003(alice: Account) -> None:
    other = Client(alice.client.base_url)
    await other.login("alice", "correct horse")
    try:
        ws_kept = await other.connect()
        ws_gone = await alice.client.connect()
        await alice.client.logout()
        assert await ws_gone.wait_closed() == 4003
        assert not ws_kept.closed
        with pytest.raises(ApiError) as refused:
            await alice.client.me()
        assert refused.value.status == 401
        await ws_kept.close()
    finally:
        await other.close()
