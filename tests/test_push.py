"""Offline push end to end: a real Web Push receiver on loopback that decrypts.

The receiver plays a browser's push service: each subscription has a P-256
key pair and an auth secret made here as a browser makes them; every POST
is checked as a push service would (the VAPID JWT's signature with the
server's key, its audience, expiry and subject) and decrypted (RFC 8291
``aes128gcm``) with the subscription's private key.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import http_ece  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.conftest import PASSWORD, RunningServer, ServerFactory
from tests.loopback import serving
from tidings.client import Client
from tidings.client.errors import ApiError
from tidings.gateway.context import Edge
from tidings.ids import UserId
from tidings.metrics import Metrics
from tidings.push.delivery import Delivery, PublicResolver, Push
from tidings.push.keys import VapidKeys, load_private_key, new_private_key
from tidings.store import PushSubscription

FAST = {"push_allow_private": True, "push_collapse_seconds": 0.3}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """One subscription, as a browser holds it: where, and the keys to decrypt."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    statuses: list[int] = field(default_factory=list)  # answered first, then 201
    retry_after: str | None = None  # sent with each of those statuses
    attempts: int = 0
    tried: list[float] = field(default_factory=list)  # monotonic, per attempt
    pushes: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # monotonic, per push

    def subscription(self) -> dict[str, Any]:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        keys = {"p256dh": b64url(point), "auth": b64url(self.auth)}
        return {"endpoint": self.endpoint, "keys": keys, "expirationTime": None}


@dataclass
class PushService:
    origin: str = ""
    vapid_key: str = ""  # the server's, once known
    browsers: dict[str, Browser] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)

    def browser(self, name: str) -> Browser:
        found = Browser(f"{self.origin}/push/{name}")
        self.browsers[name] = found
        return found

    async def handle(self, request: web.Request) -> web.Response:
        browser = self.browsers[request.match_info["name"]]
        browser.attempts += 1
        browser.tried.append(time.monotonic())
        body = await request.read()
        try:
            self._check_vapid(request.headers.get("Authorization", ""))
            assert request.headers["Content-Encoding"] == "aes128gcm"
            assert int(request.headers["TTL"]) > 0
            plain = http_ece.decrypt(
                body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm"
            )
        except Exception as exc:  # a test fails on it below, with the reason
            self.problems.append(repr(exc))
            return web.Response(status=400)
        if browser.statuses:
            headers = {"Retry-After": browser.retry_after} if browser.retry_after else None
            return web.Response(status=browser.statuses.pop(0), headers=headers)
        browser.pushes.append(json.loads(plain))
        browser.arrived.append(time.monotonic())
        self.got.set()
        return web.Response(status=201)

    def _check_vapid(self, header: str) -> None:
        scheme, _, rest = header.partition(" ")
        assert scheme == "vapid", header
        parts = dict(part.strip().split("=", 1) for part in rest.split(","))
        assert parts["k"] == self.vapid_key
        signed, _, signature = parts["t"].rpartition(".")
        raw = unb64url(signature)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), unb64url(self.vapid_key)
        )
        public.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))
        claims = json.loads(unb64url(signed.split(".")[1]))
        assert claims["aud"] == self.origin
        assert claims["exp"] > time.time()
        assert claims["sub"].startswith(("mailto:", "https:"))

    async def wait(self, browser: Browser, count: int, within: float = 10) -> None:
        deadline = time.monotonic() + within
        while len(browser.pushes) < count:
            assert not self.problems, self.problems
            self.got.clear()
            await asyncio.wait_for(self.got.wait(), max(0.01, deadline - time.monotonic()))
        assert not self.problems, self.problems


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    app = web.Application()
    app.router.add_post("/push/{name}", service.handle)
    async with serving(app, shutdown_timeout=0.1) as origin:
        service.origin = origin
        yield service


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.close()


async def sign_up(server: RunningServer, clients: list[Client], name: str) -> tuple[Client, int]:
    client = Client(server.url)
    clients.append(client)
    user = await client.signup(name, PASSWORD, name.capitalize())
    await client.login(name, PASSWORD)
    return client, user.id


async def subscribed(client: Client, service: PushService, name: str) -> Browser:
    service.vapid_key = await client.vapid_key()
    browser = service.browser(name)
    await client.subscribe_push(browser.subscription())
    return browser


def private(a: int, b: int) -> str:
    return f"p:{min(a, b)}-{max(a, b)}"


async def test_an_offline_recipient_gets_one_push_with_the_lists_total(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    server = await make_server(**FAST)
    alice, a = await sign_up(server, clients, "alice")
    bob, b = await sign_up(server, clients, "bob")
    browser = await subscribed(bob, push_service, "bob")
    await bob.subscribe_push(browser.subscription())  # the same endpoint again: still one
    long = "x" * 150
    sent = await alice.send(private(a, b), long)
    await push_service.wait(browser, 1)
    listed = await bob.chat_list()
    assert browser.pushes == [
        {
            "conversation": private(a, b),
            "seq": sent.seq,
            "title": "Alice",
            "body": "x" * 99 + "…",
            "total_unread": listed.total_unread,
        }
    ]
    assert listed.total_unread == 1
    await asyncio.sleep(0.5)  # past the collapse window: nothing more was owed
    assert len(browser.pushes) == 1
    assert browser.attempts == 1


async def test_a_recipient_with_a_socket_on_any_node_gets_no_push(
    make_server: ServerFactory, push_service: PushService, clients: list[Client], stack: str
) -> None:
    server = await make_server(**FAST)
    # On the Redis stack Bob's socket is on another node than the sender's.
    other = await make_server(**FAST) if "redis" in stack else server
    alice, a = await sign_up(server, clients, "alice")
    bob, b = await sign_up(other, clients, "bob")
    carol, c = await sign_up(server, clients, "carol")
    bob_browser = await subscribed(bob, push_service, "bob")
    carol_browser = await subscribed(carol, push_service, "carol")
    socket = await bob.connect()
    presence = server.app[Edge.KEY].presence
    deadline = time.monotonic() + 5
    while not (await presence.connections([UserId(b)])).get(UserId(b)):
        assert time.monotonic() < deadline, "the sender's node never saw Bob's socket"
        await asyncio.sleep(0.02)
    await alice.send(private(a, b), "you are here")
    await alice.send(private(a, c), "you are not")  # planned after Bob's: a marker
    await push_service.wait(carol_browser, 1)
    assert bob_browser.pushes == []
    await socket.close()


async def test_a_muted_conversation_pushes_only_a_mention(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    server = await make_server(**FAST)
    alice, _a = await sign_up(server, clients, "alice")
    bob, b = await sign_up(server, clients, "bob")
    group = await alice.create_group("quiet", [b])
    await bob.update_conversation(f"g:{group.id}", muted=True)
    browser = await subscribed(bob, push_service, "bob")
    await alice.send(f"g:{group.id}", "nothing to see")
    mention = await alice.send(f"g:{group.id}", "@bob look", mentions=[b])
    await push_service.wait(browser, 1)
    await asyncio.sleep(0.5)
    assert [p["seq"] for p in browser.pushes] == [mention.seq]
    # Muted: the list's total leaves the conversation out, and so does the push.
    assert browser.pushes[0]["total_unread"] == (await bob.chat_list()).total_unread == 0


async def test_a_gone_subscription_is_deleted(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    server = await make_server(**FAST)
    alice, a = await sign_up(server, clients, "alice")
    bob, b = await sign_up(server, clients, "bob")
    carol, c = await sign_up(server, clients, "carol")
    gone = await subscribed(bob, push_service, "bob")
    gone.statuses = [410]
    await alice.send(private(a, b), "one")
    records = server.app[Edge.KEY].push._records
    deadline = time.monotonic() + 10
    while await records.subscriptions([UserId(b)]):
        assert time.monotonic() < deadline, "the subscription answered 410 was kept"
        await asyncio.sleep(0.02)
    assert gone.attempts == 1
    metrics = (await alice.request("GET", "/metrics"))[1]
    assert "tidings_push_subscriptions_deleted_total 1.0" in str(metrics)
    assert 'tidings_push_failed_total{reason="gone"} 1.0' in str(metrics)
    # Deleted: the next message is not even tried there.
    marker = await subscribed(carol, push_service, "carol")
    await asyncio.sleep(0.4)  # Bob's collapse window closes
    await alice.send(private(a, b), "two")
    await alice.send(private(a, c), "marker")
    await push_service.wait(marker, 1)
    assert gone.attempts == 1


async def test_a_failing_push_service_is_retried_until_it_takes_the_push(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    server = await make_server(**FAST)
    alice, a = await sign_up(server, clients, "alice")
    bob, b = await sign_up(server, clients, "bob")
    browser = await subscribed(bob, push_service, "bob")
    browser.statuses = [500, 503]
    sent = await alice.send(private(a, b), "eventually")
    await push_service.wait(browser, 1, within=15)
    assert browser.attempts == 3
    assert browser.pushes[0]["seq"] == sent.seq
    metrics = str((await alice.request("GET", "/metrics"))[1])
    assert "tidings_push_sent_total 1.0" in metrics


async def test_a_push_service_asking_to_wait_is_retried_no_sooner(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    server = await make_server(**FAST)
    alice, a = await sign_up(server, clients, "alice")
    bob, b = await sign_up(server, clients, "bob")
    browser = await subscribed(bob, push_service, "bob")
    browser.statuses, browser.retry_after = [429], "2"
    await alice.send(private(a, b), "when you are ready")
    await push_service.wait(browser, 1, within=15)
    # Our own first backoff is 0.25-0.75 s: only the Retry-After explains 2 s.
    assert browser.attempts == 2
    assert browser.tried[1] - browser.tried[0] >= 1.9


async def test_a_retry_after_past_the_retry_time_drops_the_push_at_once(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    server = await make_server(**FAST)
    alice, a = await sign_up(server, clients, "alice")
    bob, b = await sign_up(server, clients, "bob")
    carol, c = await sign_up(server, clients, "carol")
    busy = await subscribed(bob, push_service, "bob")
    busy.statuses, busy.retry_after = [503, 503], "Wed, 21 Oct 2099 07:28:00 GMT"
    marker = await subscribed(carol, push_service, "carol")
    await alice.send(private(a, b), "not today")
    deadline = time.monotonic() + 10
    while 'tidings_push_failed_total{reason="gave_up"} 1.0' not in str(
        (await alice.request("GET", "/metrics"))[1]
    ):
        assert time.monotonic() < deadline, "the push was not given up"
        await asyncio.sleep(0.05)
    assert busy.attempts == 1
    # The server goes on pushing to others.
    await alice.send(private(a, c), "marker")
    await push_service.wait(marker, 1)


async def test_a_burst_collapses_and_the_last_push_has_the_final_count(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    server = await make_server(push_allow_private=True, push_collapse_seconds=1.0)
    alice, a = await sign_up(server, clients, "alice")
    bob, b = await sign_up(server, clients, "bob")
    browser = await subscribed(bob, push_service, "bob")
    started = time.monotonic()
    sent = [await alice.send(private(a, b), f"m{i}") for i in range(10)]
    sending = time.monotonic() - started
    deadline = time.monotonic() + 10
    while not browser.pushes or browser.pushes[-1]["seq"] != sent[-1].seq:
        assert time.monotonic() < deadline, browser.pushes
        await push_service.wait(browser, len(browser.pushes) + 1, within=5)
    # One at once and the window's last: 2 when the sends fit in one window
    # (they do unless the machine is loaded); never two within a window.
    assert 1 <= len(browser.pushes) <= 2 + int(sending)
    gaps = [later - earlier for earlier, later in itertools.pairwise(browser.arrived)]
    assert all(gap > 0.5 for gap in gaps), gaps  # planned 1 s apart; delivery jitters
    assert browser.pushes[-1]["total_unread"] == 10 == (await bob.chat_list()).total_unread
    assert browser.pushes[-1]["body"] == "m9"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://push.example.com/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[fe80::1]/x",
        "https://localhost/x",  # a name that resolves to loopback
        "https://example.com/" + "x" * 2100,
        "ftp://push.example.com/x",
    ],
)
async def test_an_endpoint_that_is_not_https_to_a_public_address_is_refused(
    make_server: ServerFactory, clients: list[Client], endpoint: str
) -> None:
    server = await make_server()
    bob, _b = await sign_up(server, clients, "bob")
    browser = Browser(endpoint)
    with pytest.raises(ApiError) as refused:
        await bob.subscribe_push(browser.subscription())
    assert (refused.value.status, refused.value.code) == (422, "bad_request")


async def test_a_malformed_key_is_refused(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    server = await make_server(**FAST)
    bob, _b = await sign_up(server, clients, "bob")
    good = push_service.browser("bob").subscription()
    for keys in (
        {"p256dh": "AAAA", "auth": good["keys"]["auth"]},
        {"p256dh": good["keys"]["p256dh"], "auth": "short"},
        {"p256dh": "B" * 87, "auth": good["keys"]["auth"]},  # not a point on the curve
    ):
        status, body = await bob.request(
            "POST", "/api/v1/push/subscriptions", good | {"keys": keys}
        )
        assert status == 422, body


async def test_subscribing_is_rate_limited_per_user(
    make_server: ServerFactory, push_service: PushService, clients: list[Client]
) -> None:
    # Each subscribe resolves the endpoint's name: a loop of them is refused.
    server = await make_server(**FAST)
    bob, _b = await sign_up(server, clients, "bob")
    carol, _c = await sign_up(server, clients, "carol")
    good = push_service.browser("bob").subscription()
    answers = []
    for n in range(12):
        endpoint = good | {"endpoint": f"{good['endpoint']}-{n}"}
        answers.append((await bob.request("POST", "/api/v1/push/subscriptions", endpoint))[0])
    assert answers == [201] * 10 + [429] * 2
    status, body = await bob.request("POST", "/api/v1/push/subscriptions", good)
    assert (status, body["error"]["code"]) == (429, "rate_limited")  # type: ignore[index]
    # Another user is not held back by Bob's loop.
    status, _ = await carol.request("POST", "/api/v1/push/subscriptions", good)
    assert status == 201


async def test_the_vapid_key_is_kept_with_the_data(
    make_server: ServerFactory, clients: list[Client]
) -> None:
    first = await make_server()
    second = await make_server()  # another node (or a restart) on the same database
    for running in (first, second):
        clients.append(Client(running.url))
    keys = {await client.vapid_key() for client in clients}
    assert len(keys) == 1
    key = unb64url(keys.pop())
    assert len(key) == 65 and key[0] == 4


async def test_the_push_decision_goes_out_as_a_signed_webhook(
    make_server: ServerFactory, clients: list[Client]
) -> None:
    from tests.test_webhooks import Receiver

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    async with serving(app, shutdown_timeout=0.1) as origin:
        server = await make_server(
            service_token="hook-s3cret", webhook_url=f"{origin}/hook", **FAST
        )
        alice, a = await sign_up(server, clients, "alice")
        _bob, b = await sign_up(server, clients, "bob")  # no subscription: the backend pushes
        sent = await alice.send(private(a, b), "via your backend")
        deadline = time.monotonic() + 10
        while not receiver.pushes:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.4)  # past the collapse window: nothing more was owed
        assert receiver.pushes == [
            {
                "event": "push",
                "type": "push",
                "user_id": b,
                "conversation": private(a, b),
                "seq": sent.seq,
                "title": "Alice",
                "body": "via your backend",
                "total_unread": 1,
            }
        ]


async def test_a_name_resolving_to_a_private_address_is_refused_at_send_time() -> None:
    # What DNS rebinding would do after a subscription was accepted: the
    # delivery's own resolver refuses the name on every connection.
    resolver = PublicResolver()
    try:
        with pytest.raises(OSError):
            await resolver.resolve("localhost", 443)
    finally:
        await resolver.close()


async def test_a_stored_subscription_to_a_private_address_is_not_posted_to() -> None:
    metrics = Metrics()
    keys = VapidKeys(load_private_key(new_private_key()), "mailto:ops@example.com")

    async def forget(endpoint: str) -> None:
        raise AssertionError("nothing was sent, so nothing is forgotten")

    delivery = Delivery(keys, forget, metrics, allow_private=False)
    await delivery.start()
    try:
        browser = Browser("https://127.0.0.1:9/push")
        keys_of = browser.subscription()["keys"]
        subscription = PushSubscription(
            UserId(1), browser.endpoint, keys_of["p256dh"], keys_of["auth"]
        )
        delivery.offer(Push(subscription, "t", b"{}"))
        deadline = time.monotonic() + 5
        while b'reason="refused"} 1.0' not in metrics.render():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        await delivery.close()
