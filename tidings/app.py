"""Wiring: the one place that builds the store, broker, services and edge.

Each class's constructor shows what it needs; nothing is global. Start
order: store (migrate), broker, writer; stop order is the reverse, with
sockets closed (1001) before the writer's last batch is committed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from argon2 import PasswordHasher

from tidings.broker import Broker
from tidings.broker.local import LocalBroker
from tidings.config import Settings
from tidings.errors import TidingsError
from tidings.events import Event, MessageCreated, SessionRevoked
from tidings.gateway import admin as admin_routes
from tidings.gateway import http, webclient
from tidings.gateway.context import Edge
from tidings.gateway.hub import Hub
from tidings.gateway.ordering import Deliver, SeqOrderer
from tidings.gateway.websocket import CLOSE_IDLE, websocket
from tidings.ids import ConversationId, UserId
from tidings.metrics import Metrics
from tidings.presence import NodeStats, Presence
from tidings.presence.local import LocalPresence
from tidings.service.accounts import Accounts
from tidings.service.admin import Admin
from tidings.service.conversations import Conversations
from tidings.service.groups import Groups
from tidings.service.webhooks import WebhookSender
from tidings.state import ChatListState
from tidings.store.engines import describe
from tidings.store.sql import SqlStore

if TYPE_CHECKING:
    from tidings.broker.redis import RedisBroker
    from tidings.state.redis import RedisChatList

log = logging.getLogger("tidings")


def build_app(settings: Settings, *, hasher: PasswordHasher | None = None) -> web.Application:
    store = SqlStore.from_url(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pg_partitions=settings.pg_partitions,
    )
    node = secrets.token_hex(4)
    broker: Broker
    orderer: Callable[[Deliver], SeqOrderer] | None = None
    redis_broker: RedisBroker | None = None
    if settings.redis_url:
        # Imported here: redis-py is the `redis` extra, and `make run` has no extras.
        from tidings.broker.redis import RedisBroker

        broker = redis_broker = RedisBroker(settings.redis_url, prefix=settings.redis_prefix)

        async def fetch(
            conversation: str, after: int, before: int, recipients: tuple[UserId, ...]
        ) -> list[MessageCreated]:
            conversation_id = ConversationId(conversation)
            limit = max(1, min(before - after - 1, 200))
            found = await store.history(
                conversation_id, None, before=None, after=after, limit=limit
            )
            # A member who joined after a missing message must not get it.
            joined = await store.joined_seqs(conversation_id)
            return [
                MessageCreated(
                    m, tuple(u for u in recipients if joined.get(u, m.seq) < m.seq), None
                )
                for m in found
                if m.seq < before
            ]

        def orderer(deliver: Deliver) -> SeqOrderer:
            return SeqOrderer(deliver, fetch)
    else:
        broker = LocalBroker()
    webhooks = (
        WebhookSender(settings.webhook_url, settings.service_token or "")
        if settings.webhook_url
        else None
    )
    publisher = Outbound(broker, webhooks)
    hasher = hasher or PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
    )
    metrics = Metrics()
    accounts = Accounts(
        store, publisher, hasher, login_failures_per_minute=settings.login_failures_per_minute
    )
    state: ChatListState | None = None
    redis_chat_list: RedisChatList | None = None
    if settings.redis_url and settings.redis_chat_list:
        from tidings.state.redis import RedisChatList

        state = redis_chat_list = RedisChatList(
            settings.redis_url, store, prefix=settings.redis_prefix, node=node
        )
    conversations = Conversations(store, publisher, settings, metrics, state)
    groups = Groups(store, publisher, settings, state)
    hub = Hub(orderer)

    def node_stats() -> NodeStats:
        return NodeStats(
            node=node,
            connections=hub.connection_count,
            users_online=hub.user_count,
            messages_per_second=conversations.writer.messages_per_second(),
            pending_writes=conversations.writer.pending,
        )

    presence: Presence
    if settings.redis_url:
        from tidings.presence.redis import RedisPresence

        presence = RedisPresence(
            settings.redis_url, hub, node_stats, node=node, prefix=settings.redis_prefix
        )
    else:
        presence = LocalPresence(hub, node_stats)
    admin = Admin(store, accounts, conversations, groups, presence, publisher, settings)

    async def readiness() -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await store.ping()
            checks["database"] = "ok"
        except TidingsError as exc:
            checks["database"] = exc.message
        if redis_broker is not None:
            checks["redis"] = "ok" if redis_broker.up else "not subscribed to the other nodes"
        return checks

    metrics.gauge(
        "tidings_connections", "Open WebSockets on this node.", lambda: hub.connection_count
    )
    metrics.gauge(
        "tidings_users_online", "Users with a socket on this node.", lambda: hub.user_count
    )
    metrics.gauge(
        "tidings_writer_pending",
        "Writes waiting for the next commit.",
        lambda: conversations.writer.pending,
    )
    if redis_chat_list is not None:
        cached = redis_chat_list
        metrics.gauge(
            "tidings_chat_list_redis_trusted",
            "1 while this node serves chat lists from Redis, 0 while from SQL (after a failure).",
            lambda: 1.0 if cached.vouching else 0.0,
        )
        metrics.gauge(
            "tidings_chat_list_rebuilds",
            "Users whose chat-list index this node rebuilt from SQL into Redis.",
            lambda: cached.rebuilds,
        )
    if webhooks is not None:
        metrics.gauge(
            "tidings_webhook_backlog", "Webhook deliveries waiting.", lambda: webhooks.backlog
        )
        metrics.gauge(
            "tidings_webhook_dropped",
            "Webhook deliveries dropped (queue full).",
            lambda: webhooks.dropped,
        )
    edge = Edge(settings, accounts, conversations, groups, hub, admin, metrics, presence, readiness)

    def on_event(event: Event) -> None:
        if isinstance(event, SessionRevoked):
            accounts.forget_token(event.token_hash)
        hub(event)

    broker.subscribe(on_event)
    broker.watch(hub.broker_state)

    app = web.Application(
        client_max_size=settings.max_http_body_bytes,
        middlewares=[http.errors_middleware],
    )
    app[Edge.KEY] = edge
    http.add_routes(app)
    admin_routes.add_routes(app)
    app.router.add_get("/ws", websocket)
    webclient.add_routes(app)

    idle_watch: list[asyncio.Task[None]] = []

    async def start(_app: web.Application) -> None:
        await store.open()
        await broker.start()
        await presence.start()
        if state is not None:
            await state.start()
        if webhooks is not None:
            await webhooks.start()
        conversations.writer.start()
        idle_watch.append(
            asyncio.create_task(hub.close_idle(settings.idle_timeout_seconds, CLOSE_IDLE))
        )

    async def shutdown(_app: web.Application) -> None:
        for task in idle_watch:
            task.cancel()
        await hub.close_all(1001, "server shutting down")

    async def stop(_app: web.Application) -> None:
        await conversations.writer.close()
        if state is not None:
            await state.close()
        if webhooks is not None:
            await webhooks.close()
        await presence.close()
        await broker.close()
        await store.close()

    app.on_startup.append(start)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(stop)
    return app


class Outbound:
    """Where the service's events go: every node (the broker), and the webhook
    for what this node committed (so each event is POSTed once, not once per node)."""

    def __init__(self, broker: Broker, webhooks: WebhookSender | None) -> None:
        self._broker = broker
        self._webhooks = webhooks

    def publish(self, event: Event) -> None:
        self._broker.publish(event)
        if self._webhooks is not None:
            self._webhooks.offer(event)


def backends(settings: Settings) -> str:
    """One phrase naming the backends in use, for the start-up log line."""
    database = f"database {describe(settings.database_url)}"
    if settings.redis_url:
        redis = describe_redis(settings.redis_url)
        where = "Redis (rebuilt from SQL)" if settings.redis_chat_list else "SQL"
        return f"{database}, chat list in {where}, broker Redis pub/sub at {redis}"
    return f"{database}, chat list in SQL, broker in-process"


def describe_redis(url: str) -> str:
    head, _, tail = url.rpartition("@")
    return f"redis://…@{tail}" if head else url
