"""Webhooks to a real HTTP receiver on loopback: signed, retried, never in the way."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import pytest
from aiohttp import web

from tests.conftest import AccountFactory, ServerFactory
from tests.loopback import serving
from tidings.client import Client

SECRET = "hook-s3cret"


@dataclass
class Receiver:
    url: str = ""
    bodies: list[dict[str, object]] = field(default_factory=list)
    # The push decisions (PROTOCOL-v2 §8), kept apart: tests/test_push.py reads them.
    pushes: list[dict[str, object]] = field(default_factory=list)
    failures_left: int = 0
    hang: bool = False
    attempts: int = 0
    got: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers["X-Tidings-Signature"], expected)
        decoded = msgspec.json.decode(raw)
        if decoded.get("type") == "push":  # an offline recipient's push: apart from the rest
            self.pushes.append(decoded)
            self.got.set()
            return web.Response(status=204)
        self.attempts += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.failures_left:
            self.failures_left -= 1
            return web.Response(status=500)
        self.bodies.append(decoded)
        self.got.set()
        return web.Response(status=204)

    async def wait_for(self, count: int, within: float = 10) -> None:
        deadline = time.monotonic() + within
        while len(self.bodies) < count:
            self.got.clear()
            await asyncio.wait_for(self.got.wait(), max(0.01, deadline - time.monotonic()))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    async with serving(app, shutdown_timeout=0.1) as origin:
        found.url = f"{origin}/hook"
        yield found


async def test_each_stored_message_is_posted_once_signed(
    make_server: ServerFactory, receiver: Receiver, make_account: AccountFactory
) -> None:
    server = await make_server(service_token=SECRET, webhook_url=receiver.url)
    async with Client(server.url) as alice, Client(server.url) as bob:
        a = await alice.signup("hooked_a", "password1")
        b = await bob.signup("hooked_b", "password1")
        await alice.login("hooked_a", "password1")
        sent = [await alice.send(f"p:{a.id}-{b.id}", f"m{i}", f"k{i}") for i in range(3)]
        await alice.send(f"p:{a.id}-{b.id}", "m0", "k0")  # a repeat: not posted again
        group = await alice.create_group("hooks", [b.id])
        await alice.update_group(group.id, name="hooks 2")
        # 3 messages, 2 joins, and 2 group changes: each a notice and a group.changed.
        await receiver.wait_for(9)
        await asyncio.sleep(0.2)
    messages = [body for body in receiver.bodies if body["event"] == "message.created"]
    texts = [m for m in messages if m["message"]["kind"] == "text"]  # type: ignore[index]
    assert [m["message"]["id"] for m in texts] == [s.id for s in sent]  # type: ignore[index]
    joins = sorted(
        (body["group_id"], body["user_id"])
        for body in receiver.bodies
        if body["event"] == "group.member_added"
    )
    assert joins == [(group.id, a.id), (group.id, b.id)]
    changes = [body for body in receiver.bodies if body["event"] == "group.changed"]
    assert [(c["group_id"], c["seq"], c["change"]["event"]) for c in changes] == [  # type: ignore[index]
        (group.id, 1, "created"),
        (group.id, 2, "renamed"),
    ]
    assert changes[1]["change"]["name"] == "hooks 2"  # type: ignore[index]
    assert len(receiver.bodies) == 9


async def test_a_failing_receiver_is_retried_until_it_takes_the_message(
    make_server: ServerFactory, receiver: Receiver
) -> None:
    receiver.failures_left = 2
    server = await make_server(service_token=SECRET, webhook_url=receiver.url)
    async with Client(server.url) as alice:
        a = await alice.signup("retry_a", "password1")
        await alice.login("retry_a", "password1")
        async with Client(server.url) as bob:
            b = await bob.signup("retry_b", "password1")
        await alice.send(f"p:{a.id}-{b.id}", "eventually")
        await receiver.wait_for(1, within=15)
    assert receiver.attempts == 3
    assert receiver.bodies[0]["message"]["body"] == "eventually"  # type: ignore[index]


async def test_a_hanging_receiver_slows_no_message(
    make_server: ServerFactory, receiver: Receiver
) -> None:
    receiver.hang = True
    server = await make_server(service_token=SECRET, webhook_url=receiver.url)
    async with Client(server.url) as alice, Client(server.url) as bob:
        a = await alice.signup("hang_a", "password1")
        b = await bob.signup("hang_b", "password1")
        await alice.login("hang_a", "password1")
        await bob.login("hang_b", "password1")
        conversation = f"p:{a.id}-{b.id}"
        async with await alice.connect() as sender, await bob.connect() as inbox:
            # Every ack and event comes (each within next_event's few seconds)
            # while the receiver has not answered a single webhook.
            for i in range(50):
                await sender.send(conversation, f"m{i}")
            seqs = [(await inbox.next_event())["message"]["seq"] for _ in range(50)]  # type: ignore[index]
    assert seqs == list(range(1, 51))
    assert receiver.bodies == [] and receiver.attempts >= 1


async def test_a_webhook_url_without_a_service_token_is_refused_at_start() -> None:
    from tidings.config import Settings, SettingsError

    with pytest.raises(SettingsError, match="TIDINGS_SERVICE_TOKEN"):
        Settings.from_env({"TIDINGS_WEBHOOK_URL": "http://127.0.0.1:9/hook"})


async def test_recalls_and_edits_are_posted_as_their_notices(
    make_server: ServerFactory, receiver: Receiver
) -> None:
    server = await make_server(service_token=SECRET, webhook_url=receiver.url)
    async with Client(server.url) as alice, Client(server.url) as bob:
        a = await alice.signup("hooked_a", "password1")
        b = await bob.signup("hooked_b", "password1")
        await alice.login("hooked_a", "password1")
        chat = f"p:{a.id}-{b.id}"
        first = await alice.send(chat, "helo")
        second = await alice.send(chat, "oops")
        await alice.edit(chat, first.seq, "hello")
        await alice.recall(chat, second.seq)
        await alice.recall(chat, second.seq)  # a repeat: not posted again
        await receiver.wait_for(4)
        await asyncio.sleep(0.2)
    posted = [body["message"] for body in receiver.bodies if body["event"] == "message.created"]
    assert [(m["seq"], m["kind"], m["target_seq"], m["body"]) for m in posted] == [  # type: ignore[index]
        (1, "text", None, "helo"),
        (2, "text", None, "oops"),
        (3, "edit", 1, "hello"),
        (4, "recall", 2, "hooked_a recalled a message"),
    ]


async def test_a_file_message_is_posted_with_signed_links_the_backend_can_fetch(
    make_server: ServerFactory, receiver: Receiver
) -> None:
    server = await make_server(service_token=SECRET, webhook_url=receiver.url)
    async with Client(server.url) as alice, Client(server.url) as anon:
        a = await alice.signup("hooked_f", "password1")
        b = await alice.signup("hooked_g", "password1")
        await alice.login("hooked_f", "password1")
        await alice.send_file(f"p:{a.id}-{b.id}", b"invoice bytes", name="invoice.pdf")
        await receiver.wait_for(1)
        [posted] = [body["message"] for body in receiver.bodies]
        attachment = posted["attachment"]  # type: ignore[index]
        assert attachment["name"] == "invoice.pdf" and "thumbnail" not in attachment
        assert await anon.download(attachment["url"]) == b"invoice bytes"
