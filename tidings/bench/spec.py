"""What the parent hands each load process, and what it gets back (picklable values)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Member:
    """One load connection: who it is, where it sends (if it does), what it hears."""

    user_id: int
    token: str
    sends_to: str | None = None
    listens: tuple[str, ...] = ()  # targets whose messages this connection receives
    rooms: tuple[str, ...] = ()  # the socketio peer's rooms to join at auth


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    dialect: str  # "tidings" | "socketio"
    host: str
    port: int
    members: tuple[Member, ...]
    local_host: str | None = None
    window: int = 10  # closed loop: messages in flight per sender
    rate: float = 0.0  # open loop: messages/s over this worker's senders; 0 = closed loop
    warmup: float = 1.0
    duration: float = 5.0
    drain: float = 10.0  # longest wait, after the last send, for acks and deliveries
    body: str = "hello"
    nonce: str = "run"
    connect_concurrency: int = 200
    hold: bool = False  # connect scenario: open, report, hold until told to stop
    # v2 traffic (tidings only): every Nth send @s these users (0: never), and
    # every Nth send is instead a recall of the sender's last acked message.
    mention_ids: tuple[int, ...] = ()
    mention_every: int = 0
    recall_every: int = 0
    # Typing frames/s over this worker's listening members, round robin (0: none).
    typing_rate: float = 0.0


@dataclass(slots=True)
class WorkerResult:
    connections: int = 0
    connect_seconds: float = 0.0
    reconnects: int = 0  # connection attempts that failed and were retried
    sent: int = 0
    acked: int = 0
    errors: int = 0  # sends answered with an error frame
    received: int = 0  # deliveries, duplicates included
    received_in_window: int = 0
    duplicated: int = 0
    acked_by_target: dict[str, int] = field(default_factory=dict)
    # (listened target, acked sends of this worker's own members to it that they do
    # not receive themselves) are subtracted by the parent from the expected count.
    own_acked_heard: int = 0
    unique_by_target: dict[str, int] = field(default_factory=dict)
    listeners_by_target: dict[str, int] = field(default_factory=dict)
    latencies_us: bytes = b""  # array('I') of send-to-delivery latencies in the window
    window_seconds: float = 0.0
    typing_sent: int = 0  # typing frames sent in the measured window
    typing_heard: int = 0  # typing events received in the measured window
    cpu_seconds: float = 0.0  # this process's CPU time within the measured window
    behind: int = 0  # open loop: sends that were due but skipped (the cap was reached)
