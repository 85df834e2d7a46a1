"""Web Push delivery: encrypt (RFC 8291 ``aes128gcm``), sign (VAPID), POST, retry.

A bounded queue and a few workers, as the webhooks have (tidings.outbox): a
push service that hangs or fails costs pushes, never chat latency; a 429 or
5xx is retried with backoff, no sooner than its ``Retry-After``. pywebpush encrypts (its
ECDH and AES run in a thread, off the event loop); the POST is aiohttp's,
through a resolver that refuses non-public addresses on every connection,
so a name that resolved to a public address when subscribed cannot be
turned to the server's own network later (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from tidings.metrics import Metrics
from tidings.outbox import Retry, WorkQueue, retry_after_seconds, with_retries
from tidings.push.addresses import Address, EndpointRefused, check_url, is_public
from tidings.push.keys import VapidKeys, b64url
from tidings.store import PushSubscription

log = logging.getLogger(__name__)

# How long a push service keeps a push for an unreachable browser.
TTL_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class Push:
    subscription: PushSubscription
    topic: str
    data: bytes


def topic_of(conversation: str) -> str:
    """A ``Topic`` (RFC 8030 §5.4: ≤ 32 base64url characters) per conversation: a push
    service replaces an undelivered push with the next one of the same topic."""
    return b64url(hashlib.sha256(conversation.encode()).digest()[:24])


def encrypt(subscription: PushSubscription, data: bytes) -> bytes:
    """The ``aes128gcm`` body for ``subscription`` (blocking: run it in a thread)."""
    # Imported on first use: pywebpush brings requests (unused here), ~5 MiB
    # of RSS that a server which never pushes need not pay.
    from pywebpush import WebPusher

    info = {
        "endpoint": subscription.endpoint,
        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
    }
    return bytes(WebPusher(info).encode(data, "aes128gcm")["body"])


class PublicResolver(AbstractResolver):
    """Resolves names to public addresses only; a name with any other is refused."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            if not is_public(_address(entry["host"])):
                raise OSError(f"push endpoint {host} resolves to a non-public address")
        return found

    async def close(self) -> None:
        await self._inner.close()


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%")[0])


class Delivery:
    def __init__(
        self,
        keys: VapidKeys,
        forget: Callable[[str], Awaitable[None]],
        metrics: Metrics,
        *,
        allow_private: bool,
        max_queue: int = 10_000,
        workers: int = 4,
        attempt_timeout: float = 10.0,
        retry_for: float = 120.0,
        first_retry: float = 0.5,
    ) -> None:
        self._keys = keys
        self._forget = forget
        self._metrics = metrics
        self._allow_private = allow_private
        self._queue = WorkQueue(
            self._deliver,
            name="push",
            workers=workers,
            max_queue=max_queue,
            on_drop=metrics.push_dropped.labels("delivery").inc,
        )
        self._attempt_timeout = attempt_timeout
        self._retry_for = retry_for
        self._first_retry = first_retry
        self._session: aiohttp.ClientSession | None = None

    @property
    def backlog(self) -> int:
        return self._queue.backlog

    def offer(self, push: Push) -> None:
        self._queue.offer(push)

    async def start(self) -> None:
        resolver = None if self._allow_private else PublicResolver()
        connector = aiohttp.TCPConnector(limit=64, resolver=resolver)
        timeout = aiohttp.ClientTimeout(total=self._attempt_timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        self._queue.start()

    async def close(self) -> None:
        await self._queue.close()
        if self._session is not None:
            await self._session.close()

    async def _deliver(self, push: Push) -> None:
        session = self._session
        assert session is not None
        endpoint = push.subscription.endpoint
        try:
            await self._check_address(endpoint)
        except EndpointRefused as refused:
            log.info("push refused: %s", refused)
            self._metrics.push_failed.labels("refused").inc()
            return
        body = await asyncio.to_thread(encrypt, push.subscription, push.data)
        parts = urlsplit(endpoint)
        headers = {
            "Authorization": self._keys.authorization(f"{parts.scheme}://{parts.netloc}"),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(TTL_SECONDS),
            "Topic": push.topic,
            "Urgency": "normal",
        }

        async def attempt() -> Retry | None:
            try:
                # No redirects: one to a literal private address would pass
                # the resolver (aiohttp resolves no literal), and push services
                # do not redirect.
                async with session.post(
                    endpoint, data=body, headers=headers, allow_redirects=False
                ) as answer:
                    status = answer.status
                    after = retry_after_seconds(answer.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return Retry(type(exc).__name__)
            if 200 <= status < 300:
                self._metrics.push_sent.inc()
                return None
            if status in (404, 410):
                await self._forget(endpoint)
                self._metrics.push_failed.labels("gone").inc()
                self._metrics.push_subscriptions_deleted.inc()
                return None
            if status != 429 and status < 500:  # another 4xx, or a 3xx
                log.info("push rejected by %s (HTTP %s)", parts.hostname, status)
                self._metrics.push_failed.labels("rejected").inc()
                return None
            # 429 and 5xx: later, and no sooner than the push service asks.
            return Retry(f"HTTP {status}", after)

        gave_up = await with_retries(
            attempt, retry_for=self._retry_for, first_delay=self._first_retry
        )
        if gave_up is not None:
            log.warning("push to %s gave up after retries (%s)", parts.hostname, gave_up.reason)
            self._metrics.push_failed.labels("gave_up").inc()

    async def _check_address(self, endpoint: str) -> None:
        """Send-time check: the form, and a literal address (aiohttp resolves no
        literal, so the resolver never sees it); names are the resolver's."""
        host, _port = check_url(endpoint, allow_private=self._allow_private)
        if self._allow_private:
            return
        try:
            literal = _address(host)
        except ValueError:
            return
        if not is_public(literal):
            raise EndpointRefused(f"endpoint: {host} is not a public address")


__all__ = ["Delivery", "Push", "PublicResolver", "encrypt", "topic_of"]
