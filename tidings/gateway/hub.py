"""This node's connections by user, and the hand-off of events to them.

The hub subscribes to the broker. Each event is encoded once and the same
bytes are queued on every recipient connection, skipping the connection
the event came from (it gets an ack instead).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from tidings.events import (
    ConversationAdded,
    ConversationRemoved,
    EntryChanged,
    Event,
    MessageCreated,
    Pushed,
    ReadMoved,
    SessionRevoked,
    TypingStarted,
)
from tidings.gateway import frames
from tidings.gateway.connection import Connection, WriteCoalescer
from tidings.gateway.links import FileLinks
from tidings.gateway.ordering import Deliver, SeqOrderer, Steady
from tidings.gateway.wire import WebSocketWire
from tidings.ids import UserId
from tidings.models import Conversation
from tidings.nodes import NodeId


class Hub:
    def __init__(
        self,
        node: NodeId,
        orderer: Callable[[Deliver, Steady], SeqOrderer] | None = None,
        links: FileLinks | None = None,
    ) -> None:
        """``orderer`` builds the seq orderer when events come from several nodes;
        ``links`` signs the file links of what is sent (once per event, for all)."""
        self._links = links
        self._by_user: dict[UserId, list[Connection]] = {}
        # Connection ids are unique across nodes: the node's id above a counter
        # (30 bits of it, so ids stay below 2**62).
        self._ids = itertools.count(((int(node, 16) >> 2) << 32) + 1)
        self._orderer = (
            orderer(self._deliver_message, self._steady) if orderer is not None else None
        )
        # False while this node cannot hear the other nodes: no new sockets.
        self.accepting = True
        self._listeners: list[Callable[[UserId], None]] = []
        # Upgraded sockets not yet authenticated: only shutdown needs them.
        self._unauthenticated: set[WebSocketWire] = set()
        # Every connection's frames of one turn of the loop leave in one write.
        self.writes = WriteCoalescer()

    def broker_state(self, up: bool) -> None:
        """The broker's watcher: on losing the other nodes, send every client to reconnect.

        A socket kept open while events from other nodes cannot arrive would
        miss them silently; closed (1012, "service restart"), its client
        reconnects once the broker is back and catches up with ``after``.
        """
        self.accepting = up
        if not up:
            for connections in list(self._by_user.values()):
                for connection in list(connections):
                    connection.close_soon(1012, "reconnect: this node lost its broker")

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, connection: Connection) -> None:
        connection.opened_at = time.monotonic()
        self._by_user.setdefault(connection.user, []).append(connection)
        for listener in self._listeners:
            listener(connection.user)

    def add_unauthenticated(self, wire: WebSocketWire) -> None:
        self._unauthenticated.add(wire)

    def discard_unauthenticated(self, wire: WebSocketWire) -> None:
        self._unauthenticated.discard(wire)

    def remove(self, connection: Connection) -> None:
        connections = self._by_user.get(connection.user)
        if connections is None:
            return
        try:
            connections.remove(connection)
        except ValueError:
            return
        if not connections:
            del self._by_user[connection.user]
        for listener in self._listeners:
            listener(connection.user)

    def _steady(self, users: tuple[UserId, ...], since: float) -> bool:
        """Whether one of ``users`` has had a connection open here since ``since``:
        then the broker routed this node every event for them since (the orderer)."""
        by_user = self._by_user
        for user in users:
            for connection in by_user.get(user, ()):
                if connection.opened_at <= since:
                    return True
        return False

    def connections_of(self, user: UserId) -> list[Connection]:
        return self._by_user.get(user, [])

    def open_sockets(self, user: UserId) -> int:
        connections = self._by_user.get(user)
        return 0 if connections is None else len(connections)

    def is_online(self, user: UserId) -> bool:
        return user in self._by_user

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    @property
    def user_count(self) -> int:
        return len(self._by_user)

    def counts(self) -> dict[UserId, int]:
        """Open connections per connected user on this node."""
        return {user: len(connections) for user, connections in self._by_user.items()}

    def on_change(self, listener: Callable[[UserId], None]) -> None:
        """``listener(user)`` after a user's connections on this node change."""
        self._listeners.append(listener)

    def __call__(self, event: Event) -> None:
        """The broker's subscriber: deliver one event to this node's connections."""
        if isinstance(event, MessageCreated):
            if self._orderer is not None:
                self._orderer.offer(event)
            else:
                self._deliver_message(event, None)
        elif isinstance(event, ReadMoved):
            frame = frames.read_event(event.conversation, event.user, event.seq)
            self._after_messages(
                event.conversation, lambda: self._fan_out(event.recipients, frame, event.origin)
            )
        elif isinstance(event, ConversationAdded):
            entry = self._signed_entry(event.conversation)
            self._fan_out((event.user,), frames.conversation_event(entry), None)
        elif isinstance(event, EntryChanged):
            frame = frames.conversation_event(self._signed_entry(event.conversation))
            self._fan_out((event.user,), frame, event.origin)
        elif isinstance(event, TypingStarted):
            frame = frames.typing_event(event.conversation, event.user)
            self._fan_out(event.recipients, frame, None)
        elif isinstance(event, ConversationRemoved):
            frame = frames.conversation_removed_event(event.conversation)
            self._after_messages(
                event.conversation, lambda: self._fan_out((event.user,), frame, None)
            )
        elif isinstance(event, Pushed):
            frame = frames.push_event(event.payload)
            if event.users is None:
                wire = frames.wire_text(frame)
                for connections in self._by_user.values():
                    for connection in connections:
                        connection.push(frame, wire)
            else:
                self._fan_out(event.users, frame, None)
        elif isinstance(event, SessionRevoked):
            for connections in list(self._by_user.values()):
                for connection in list(connections):
                    if connection.token_hash == event.token_hash:
                        connection.close_soon(4003, "token revoked")

    def _after_messages(self, conversation: str, run: Callable[[], None]) -> None:
        """``run()`` behind the messages of ``conversation`` the orderer still holds."""
        if self._orderer is None:
            run()
        else:
            self._orderer.after(conversation, run)

    def _signed_entry(self, entry: Conversation) -> Conversation:
        return entry if self._links is None else self._links.entry(entry)

    def _deliver_message(self, event: MessageCreated, arrived: float | None) -> None:
        message = event.message
        if self._links is not None and message.attachment is not None:
            message = self._links.message(message)
        frame = frames.message_event(message)
        self._fan_out(event.recipients, frame, event.origin, arrived)

    def _fan_out(
        self,
        users: tuple[UserId, ...],
        frame: bytes,
        origin: int | None,
        arrived: float | None = None,
    ) -> None:
        """Queue ``frame`` on the users' connections but ``origin``'s.

        With ``arrived`` (an event held back for ordering), only connections
        already open when the event reached this node get it.
        """
        by_user = self._by_user
        wire: bytes | None = None  # header + payload, built once for all recipients
        for user in users:
            connections = by_user.get(user)
            if connections is None:
                continue
            for connection in connections:
                if connection.id != origin and (arrived is None or connection.opened_at <= arrived):
                    if wire is None:
                        wire = frames.wire_text(frame)
                    connection.push(frame, wire)

    async def close_idle(self, idle: float, code: int) -> None:
        """Close every connection that sent nothing for ``idle`` seconds; runs until cancelled.

        One sweep for the node every ``idle / 4`` (so a connection goes
        between ``idle`` and ``1.25 × idle``), instead of a timer armed
        and cancelled on every frame of every connection.
        """
        period = max(0.05, min(idle / 4, 5.0))
        while True:
            await asyncio.sleep(period)
            cutoff = time.monotonic() - idle
            for connections in list(self._by_user.values()):
                for connection in list(connections):
                    if connection.last_seen < cutoff:
                        connection.close_soon(code, "idle")

    async def close_all(self, code: int, reason: str) -> None:
        """Close every connection (shutdown: 1001), after what is queued is written."""
        connections = [c for cs in self._by_user.values() for c in cs]
        # All at once, so shutdown waits for the slowest client, not their sum;
        # each keeps the full close-handshake timeout, which busy clients on a
        # loaded machine need.
        await asyncio.gather(
            *(c.close(code, reason) for c in connections),
            *(w.close(code, reason) for w in list(self._unauthenticated)),
        )
