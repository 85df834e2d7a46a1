"""Wiring: the one place that builds the store, broker, services and edge.

Each class's constructor shows what it needs; nothing is global. The
builders below each make one part: the cluster (broker, seq orderer, the
chat list's Redis copy), the services, presence, the metrics' gauges, the
web application, and the start and stop order. Start: store (migrate),
broker, presence, chat-list copy, webhooks, writer; stop is the reverse,
with sockets closed (1001) before the writer's last batch is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web
from argon2 import PasswordHasher
from sqlalchemy.engine import make_url

from tidings.broker import Broker
from tidings.broker.local import LocalBroker
from tidings.config import DEFAULT_FILES_URL, Settings
from tidings.errors import TidingsError
from tidings.events import Event, MessageCreated
from tidings.files import BlobStore
from tidings.files.url import open_blob_store
from tidings.gateway import admin as admin_routes
from tidings.gateway import files as file_routes
from tidings.gateway import http, webclient
from tidings.gateway.context import Edge
from tidings.gateway.hub import Hub
from tidings.gateway.links import FileLinks
from tidings.gateway.ordering import Deliver, SeqOrderer, Steady
from tidings.gateway.websocket import CLOSE_IDLE, websocket
from tidings.ids import ConversationId, UserId
from tidings.metrics import Metrics
from tidings.models import Conversation, NodeStats
from tidings.nodes import NodeId, new_node_id
from tidings.presence import Presence
from tidings.presence.local import LocalPresence
from tidings.push.runtime import WebPush
from tidings.redis_target import RedisTarget
from tidings.service.accounts import Accounts
from tidings.service.admin import Admin
from tidings.service.archive import Archiver, ParquetSegments, require_pyarrow, run_schedule
from tidings.service.chatlists import ChatLists
from tidings.service.conversations import Conversations
from tidings.service.files import Files
from tidings.service.groups import Groups
from tidings.service.push import PushSubscriptions
from tidings.service.recipients import missed_messages
from tidings.service.search import Search
from tidings.service.typing import Typing
from tidings.state import ChatListState
from tidings.store import Store
from tidings.store.engines import describe
from tidings.store.search_index import SqliteSearchIndex
from tidings.store.search_pg import PgSearchIndex
from tidings.store.sql import SqlStore
from tidings.webhooks import WebhookSender

if TYPE_CHECKING:
    from tidings.broker.redis import RedisBroker
    from tidings.state.redis import RedisChatList

log = logging.getLogger("tidings")

# The store's search index once started (None on MariaDB): for tests.
SEARCH_INDEX: web.AppKey[Callable[[], SqliteSearchIndex | PgSearchIndex | None]] = web.AppKey(
    "search_index"
)


def build_app(settings: Settings, *, hasher: PasswordHasher | None = None) -> web.Application:
    if settings.archive_after_seconds > 0:
        require_pyarrow()  # archiving on a schedule: say so at start, not an hour later
    node = new_node_id()
    store = SqlStore.from_url(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pg_partitions=settings.pg_partitions,
        search_index=settings.search_index,
    )
    cluster = build_cluster(settings, store, node)
    webhooks = (
        WebhookSender(settings.webhook_url, settings.service_token or "")
        if settings.webhook_url
        else None
    )
    links = FileLinks(settings.file_url_ttl, settings.file_url_secret)
    metrics = Metrics()
    push_state = PushState()
    publisher = Outbound(cluster.broker, webhooks, links, push_state)
    hasher = hasher or PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
    )
    conversations = Conversations(store, publisher, settings, metrics, cluster.chat_list)
    chat_lists = ChatLists(store, publisher, cluster.chat_list)
    groups = Groups(store, conversations.writer, settings)
    typing = Typing(store, publisher)
    files = Files(store, settings, metrics)
    hub = Hub(node, cluster.orderer, links)
    presence = build_presence(settings, node, hub, conversations)
    accounts = Accounts(
        store,
        publisher,
        hasher,
        presence=presence,
        login_failures_per_minute=settings.login_failures_per_minute,
    )
    admin = Admin(store, accounts, conversations, groups, presence, publisher, settings)
    push = build_push(settings, store, presence, chat_lists, metrics, webhooks)
    push_state.push = push
    metrics.gauge(
        "tidings_push_backlog", "Pushes waiting to be planned or delivered.", lambda: push.backlog
    )
    add_gauges(metrics, hub, conversations, cluster, webhooks)

    cluster.broker.subscribe(accounts.hear)
    cluster.broker.subscribe(typing.hear)
    cluster.broker.subscribe(hub)
    cluster.broker.watch(hub.broker_state)

    edge = Edge(
        settings,
        accounts,
        conversations,
        chat_lists,
        groups,
        typing,
        hub,
        admin,
        metrics,
        presence,
        readiness_check(store, cluster.redis_broker),
        node,
        search=Search(store),
        files=files,
        links=links,
        push=PushSubscriptions(
            store.push(),
            push.application_server_key,
            allow_private=settings.push_allow_private,
            max_per_user=settings.push_max_subscriptions,
        ),
    )
    app = web.Application(
        client_max_size=settings.max_http_body_bytes,
        middlewares=[http.errors_middleware],
    )
    app[Edge.KEY] = edge
    app[SEARCH_INDEX] = lambda: store.search_index
    http.add_routes(app)
    file_routes.add_routes(app)
    admin_routes.add_routes(app)
    app.router.add_get("/ws", websocket)
    webclient.add_routes(app)
    add_lifecycle(app, settings, node, store, cluster, presence, webhooks, push, conversations, hub)
    add_files_lifecycle(app, settings, store, files, links, conversations, metrics)
    return app


@dataclass(slots=True)
class Cluster:
    """What makes one node part of many: the broker, and with Redis the seq
    orderer for events from other nodes and the chat list's Redis copy."""

    broker: Broker
    orderer: Callable[[Deliver, Steady], SeqOrderer] | None = None
    chat_list: ChatListState | None = None
    redis_broker: RedisBroker | None = None
    redis_chat_list: RedisChatList | None = None


def redis_target(settings: Settings) -> RedisTarget | None:
    """Where Redis is, or None for one node without it."""
    if not settings.redis_url:
        return None
    return RedisTarget(settings.redis_url, settings.redis_prefix, settings.redis_cluster)


def build_cluster(settings: Settings, store: Store, node: NodeId) -> Cluster:
    target = redis_target(settings)
    if target is None:
        return Cluster(LocalBroker())
    # Imported here: redis-py is the `redis` extra, and `make run` has no extras.
    from tidings.broker.redis import RedisBroker

    broker = RedisBroker(target, node=node)

    async def fetch(
        conversation: str, after: int, before: int, recipients: tuple[UserId, ...]
    ) -> list[MessageCreated]:
        return await missed_messages(store, ConversationId(conversation), after, before, recipients)

    def orderer(deliver: Deliver, steady: Steady) -> SeqOrderer:
        return SeqOrderer(deliver, fetch, steady)

    cluster = Cluster(broker, orderer, redis_broker=broker)
    if settings.redis_chat_list:
        from tidings.state.redis import RedisChatList

        cluster.chat_list = cluster.redis_chat_list = RedisChatList(target, store, node=node)
    return cluster


def build_push(
    settings: Settings,
    store: Store,
    presence: Presence,
    chat_lists: ChatLists,
    metrics: Metrics,
    webhooks: WebhookSender | None,
) -> WebPush:
    async def entry_and_total(
        user: UserId, conversation: ConversationId
    ) -> tuple[Conversation | None, int]:
        # The total as GET /api/v1/conversations gives it (Redis copy or SQL).
        listed = await chat_lists.chat_list(user, 1)
        return await store.chat_entry(user, conversation), listed.total_unread

    hook = webhooks.offer_payload if webhooks is not None else None
    windows = None
    target = redis_target(settings)
    if target is not None:
        # Many nodes: one collapse window per user and conversation for all of them.
        from tidings.push.windows import RedisWindows

        windows = RedisWindows(target)
    return WebPush(
        settings,
        store.push(),
        store.files().secret,
        presence.connections,
        entry_and_total,
        metrics,
        hook,
        windows,
    )


def build_presence(
    settings: Settings, node: NodeId, hub: Hub, conversations: Conversations
) -> Presence:
    def node_stats() -> NodeStats:
        return NodeStats(
            node=node,
            connections=hub.connection_count,
            users_online=hub.user_count,
            messages_per_second=conversations.writer.messages_per_second(),
            pending_writes=conversations.writer.pending,
        )

    target = redis_target(settings)
    if target is None:
        return LocalPresence(hub, node_stats)
    from tidings.presence.redis import RedisPresence

    return RedisPresence(target, hub, node_stats, node=node)


def add_gauges(
    metrics: Metrics,
    hub: Hub,
    conversations: Conversations,
    cluster: Cluster,
    webhooks: WebhookSender | None,
) -> None:
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
    if cluster.redis_broker is not None:
        broker = cluster.redis_broker
        metrics.gauge(
            "tidings_broker_events_received",
            "Events this node took from other nodes' messages (only those for its users).",
            lambda: broker.events_received,
        )
        metrics.gauge(
            "tidings_broker_publishes",
            "PUBLISHes this node made: one per batch and target node.",
            lambda: broker.publishes,
        )
        metrics.gauge(
            "tidings_broker_events_sent",
            "Events in this node's PUBLISHes, counted once per target node.",
            lambda: broker.events_sent,
        )
        metrics.gauge(
            "tidings_broker_shared_batches",
            "Batches sent to every node on the shared channel (routing table warming up "
            "after Redis lost it, or a node of an earlier version holding a recipient).",
            lambda: broker.shared_batches,
        )
    if cluster.redis_chat_list is not None:
        cached = cluster.redis_chat_list
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
        sender = webhooks
        metrics.gauge(
            "tidings_webhook_backlog", "Webhook deliveries waiting.", lambda: sender.backlog
        )
        metrics.gauge(
            "tidings_webhook_dropped",
            "Webhook deliveries dropped (queue full).",
            lambda: sender.dropped,
        )


def readiness_check(
    store: Store, redis_broker: RedisBroker | None
) -> Callable[[], Awaitable[dict[str, str]]]:
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

    return readiness


def add_lifecycle(
    app: web.Application,
    settings: Settings,
    node: NodeId,
    store: Store,
    cluster: Cluster,
    presence: Presence,
    webhooks: WebhookSender | None,
    push: WebPush,
    conversations: Conversations,
    hub: Hub,
) -> None:
    idle_watch: list[asyncio.Task[None]] = []

    async def start(_app: web.Application) -> None:
        await store.open()
        target = redis_target(settings)
        if target is not None and cluster.chat_list is None:
            # The Redis chat list claims the prefix as it binds its copy; without
            # it the events and presence still share the prefix: claim it here.
            from tidings.state.claim import claim_prefix_at

            identity = (await store.deployment().current()).identity
            await claim_prefix_at(target, identity, node=node)
        await cluster.broker.start()
        await presence.start()
        if cluster.chat_list is not None:
            await cluster.chat_list.start()
        if webhooks is not None:
            await webhooks.start()
        await push.start()
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
        if cluster.chat_list is not None:
            await cluster.chat_list.close()
        await push.close()
        if webhooks is not None:
            await webhooks.close()
        await presence.close()
        await cluster.broker.close()
        await store.close()

    app.on_startup.append(start)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(stop)


def files_location(settings: Settings) -> tuple[str, Path]:
    """``TIDINGS_FILES_URL`` and the folder a relative ``file://`` path starts from.

    PROTOCOL-v2 §3 keeps files beside the database by default: with the
    default URL and a SQLite file, that is a ``files`` folder next to it
    (``./data/files`` for the default ``./data/tidings.db``); otherwise a
    relative path starts from the working directory.
    """
    url = settings.files_url
    database = make_url(settings.database_url)
    if url == DEFAULT_FILES_URL and database.get_backend_name() == "sqlite":
        path = database.database or ""
        if path and path != ":memory:" and not path.startswith("file:"):
            return "file://files", Path(path).parent
    return url, Path.cwd()


def add_files_lifecycle(
    app: web.Application,
    settings: Settings,
    store: Store,
    files: Files,
    links: FileLinks,
    conversations: Conversations,
    metrics: Metrics,
) -> None:
    """Open the blob store after the database (the link key may live there), start
    the orphan collector, read archived history from it (and archive on the
    schedule, if set); stop all before the database closes."""
    collector: list[asyncio.Task[None]] = []
    opened: list[BlobStore] = []

    async def start(_app: web.Application) -> None:
        if settings.file_url_secret is None:
            links.use_key(await store.files().secret("file_links", lambda: secrets.token_hex(32)))
        url, base_dir = files_location(settings)
        blobs = await open_blob_store(url, base_dir)
        opened.append(blobs)
        files.use_blobs(blobs)
        collector.append(asyncio.create_task(files.run_collector()))
        # Archived history lives in the same blob store (issue 23 §3).
        store.use_archive(ParquetSegments(blobs, metrics=metrics))
        archiver = Archiver(store.archive(), blobs)
        conversations.use_archive(archiver)
        if settings.archive_after_seconds > 0:
            collector.append(
                asyncio.create_task(
                    run_schedule(
                        archiver,
                        settings.archive_after_seconds,
                        settings.archive_every_seconds,
                        metrics,
                    )
                )
            )

    async def stop(_app: web.Application) -> None:
        for task in collector:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await files.close()
        for blobs in opened:
            await blobs.close()

    # After add_lifecycle's: the store is open before, and closed after, these.
    app.on_startup.append(start)
    app.on_cleanup.insert(0, stop)


@dataclass(slots=True)
class PushState:
    """The push side, once built (it needs presence, built after the services)."""

    push: WebPush | None = None


class Outbound:
    """Where the service's events go: every node (the broker), and the webhook
    and the push planner for what this node committed (so each event is POSTed
    or pushed once, not once per node)."""

    def __init__(
        self,
        broker: Broker,
        webhooks: WebhookSender | None,
        links: FileLinks | None = None,
        push: PushState | None = None,
    ) -> None:
        self._broker = broker
        self._webhooks = webhooks
        self._links = links
        self._push = push or PushState()

    def publish(self, event: Event) -> None:
        self._broker.publish(event)
        if self._webhooks is not None:
            self._webhooks.offer(self._for_webhook(event))
        if self._push.push is not None:
            self._push.push.offer(event)

    def _for_webhook(self, event: Event) -> Event:
        """A message with a file goes out with signed links, as to a client: the
        backend fetches the file by them (relative to the server's URL)."""
        if (
            self._links is not None
            and isinstance(event, MessageCreated)
            and event.message.attachment is not None
        ):
            return msgspec.structs.replace(event, message=self._links.message(event.message))
        return event


def backends(settings: Settings) -> str:
    """One phrase naming the backends in use, for the start-up log line."""
    database = f"database {describe(settings.database_url)}"
    target = redis_target(settings)
    if target is not None:
        redis = target.safe_url() + (" (a Redis Cluster)" if target.cluster else "")
        where = "Redis (rebuilt from SQL)" if settings.redis_chat_list else "SQL"
        return f"{database}, chat list in {where}, broker Redis pub/sub at {redis}"
    return f"{database}, chat list in SQL, broker in-process"
