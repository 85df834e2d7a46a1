"""Webhooks: each stored message and group change, POSTed to the backend.

Signed like GitHub's: ``X-Tidings-Signature: sha256=<hex HMAC-SHA256 of the
body, keyed with the service token>``. Nothing here is on the message path:
``offer`` only appends to a bounded queue (tidings.outbox: dropping, and
counting, the oldest when full), and a few workers deliver with a timeout
per attempt and backoff (or the receiver's ``Retry-After``) for a bounded
time. Any answer but 2xx is retried: a backend's 4xx may be a deploy in
progress. A backend that hangs or fails costs webhook deliveries, never
chat latency.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import aiohttp
import msgspec

from tidings.events import ConversationAdded, ConversationRemoved, Event, MessageCreated
from tidings.ids import GroupRef, parse_conversation
from tidings.outbox import Retry, WorkQueue, retry_after_seconds, with_retries

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Tidings-Signature`` for ``body``; receivers compare it in constant time."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payloads_of(event: Event) -> list[dict[str, Any]]:
    """The webhook bodies for an event: a group's ``system`` notice is also a
    ``group.changed`` (PROTOCOL-v2 §6), after its ``message.created``."""
    payload = payload_of(event)
    if payload is None:
        return []
    if isinstance(event, MessageCreated) and event.message.system is not None:
        where = parse_conversation(event.message.conversation)
        if isinstance(where, GroupRef):
            changed = {
                "event": "group.changed",
                "group_id": where.group,
                "change": event.message.system,
                "seq": event.message.seq,
            }
            return [payload, changed]
    return [payload]


def payload_of(event: Event) -> dict[str, Any] | None:
    """The webhook body for an event, or None for events a backend is not told about."""
    if isinstance(event, MessageCreated):
        return {"event": "message.created", "message": event.message}
    if isinstance(event, ConversationAdded) and event.conversation.group_id is not None:
        return {
            "event": "group.member_added",
            "group_id": event.conversation.group_id,
            "user_id": event.user,
        }
    if isinstance(event, ConversationRemoved):
        removed = parse_conversation(event.conversation)
        if isinstance(removed, GroupRef):
            return {
                "event": "group.member_removed",
                "group_id": removed.group,
                "user_id": event.user,
            }
    return None


class WebhookSender:
    def __init__(
        self,
        url: str,
        secret: str,
        *,
        max_queue: int = 10_000,
        attempt_timeout: float = 5.0,
        retry_for: float = 300.0,
        workers: int = 4,
    ) -> None:
        self._url = url
        self._secret = secret
        self._attempt_timeout = attempt_timeout
        self._retry_for = retry_for
        self._workers = workers
        self._queue = WorkQueue(
            self._deliver,
            name="webhook",
            workers=workers,
            max_queue=max_queue,
            on_drop=self._dropped,
        )
        self._session: aiohttp.ClientSession | None = None
        self.dropped = 0
        self.failed = 0

    def _dropped(self) -> None:
        self.dropped += 1

    def offer(self, event: Event) -> None:
        for payload in payloads_of(event):
            self._queue.offer(_encode(payload))

    def offer_payload(self, payload: dict[str, Any]) -> None:
        """Queue a body made elsewhere (the ``push`` decision, PROTOCOL-v2 §8)."""
        self._queue.offer(_encode(payload))

    @property
    def backlog(self) -> int:
        return self._queue.backlog

    async def start(self) -> None:
        # A fresh connection per attempt would be slow; a bounded pool is enough.
        connector = aiohttp.TCPConnector(limit=self._workers)
        timeout = aiohttp.ClientTimeout(total=self._attempt_timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        self._queue.start()

    async def close(self, *, drain_for: float = 2.0) -> None:
        await self._queue.close(drain_for=drain_for)
        if self._session is not None:
            await self._session.close()

    async def _deliver(self, body: bytes) -> None:
        session = self._session
        assert session is not None
        headers = {
            "Content-Type": "application/json",
            "X-Tidings-Signature": signature(self._secret, body),
            "User-Agent": "tidings-webhook",
        }

        async def attempt() -> Retry | None:
            try:
                async with session.post(self._url, data=body, headers=headers) as answer:
                    if 200 <= answer.status < 300:
                        return None
                    after = retry_after_seconds(answer.headers.get("Retry-After"))
                    return Retry(f"HTTP {answer.status}", after)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return Retry(type(exc).__name__)

        gave_up = await with_retries(attempt, retry_for=self._retry_for)
        if gave_up is not None:
            self.failed += 1
            log.warning("webhook gave up after retries (%s)", gave_up.reason)
