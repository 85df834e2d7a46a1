"""The invariants, checked against the stored history after the run.

The stored history (read back page by page at the end) is the reference:
each check recomputes what the contract says a client should have seen,
or what a chat list should say, from it and from the soak's own records,
and counts every difference. A difference is a server bug unless the
soak's recording is wrong; the first few of each kind are kept verbatim.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from tidings.client import private_conversation
from tidings.models import ChatList, Conversation, Message
from tidings.soak.actor import Actor, Attempt
from tidings.soak.keep import Act, entry_state_errors, order_errors, total_errors
from tidings.soak.world import World

#: The contract's default gap after which a message carries a time separator.
SEPARATOR_SECONDS = 300
#: PROTOCOL-v2 section 1: the kinds that count as unread; the rest are notices.
COUNTABLE = frozenset({"text", "image", "file", "voice"})


@dataclass
class Effects:
    """What a conversation's notices did to their targets: the last edit's text, recalls."""

    edited: dict[int, Message] = field(default_factory=dict)  # target seq -> last edit notice
    recalled: set[int] = field(default_factory=set)

    @staticmethod
    def of(history: list[Message]) -> Effects:
        found = Effects()
        for message in history:  # in seq order: a later edit wins
            if message.kind == "edit" and message.target_seq is not None:
                found.edited[message.target_seq] = message
            elif message.kind == "recall" and message.target_seq is not None:
                found.recalled.add(message.target_seq)
        return found


# The group notices a soak makes: the world creates groups, actors rename them,
# set their announcement and their admins (actor._run_group).
_GROUP_CHANGES = frozenset({"created", "renamed", "announcement", "admins_changed"})


@dataclass
class Findings:
    """Counts of each kind of violation, with a few examples."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, example: str, n: int = 1) -> None:
        self.counts[kind] += n
        kept = self.examples.setdefault(kind, [])
        if len(kept) < 5:
            kept.append(example)

    def total(self, *kinds: str) -> int:
        return sum(self.counts[k] for k in kinds)


@dataclass
class Figures:
    """What was checked, besides what went wrong."""

    stored: int = 0
    acked: int = 0
    attempts: int = 0
    deliveries_checked: int = 0
    live_events: int = 0
    redelivered_across_sessions: int = 0
    chat_entries_checked: int = 0


def check_store(
    world: World, actors: list[Actor], histories: dict[str, list[Message]]
) -> tuple[Findings, Figures]:
    """Every attempted send stored exactly once where it was sent; gapless seqs; no strays."""
    found, figures = Findings(), Figures()
    attempts = {cmid: (actor, a) for actor in actors for cmid, a in actor.attempts.items()}
    figures.attempts = len(attempts)
    by_key: dict[tuple[int, str], Message] = {}
    ids: set[str] = set()
    for conversation, messages in histories.items():
        effects = Effects.of(messages)
        seqs = [m.seq for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            found.add("seq_gaps", f"{conversation}: seqs are not 1..{len(seqs)}")
        previous: Message | None = None
        for message in messages:
            figures.stored += 1
            if message.id in ids:
                found.add("duplicated_stored", f"id {message.id} stored twice")
            ids.add(message.id)
            if message.conversation != conversation:
                found.add("misplaced", f"{message.id} listed under {conversation}")
            if message.kind == "system":
                # A group's change (PROTOCOL-v2 §6): those the world and the actors make.
                event = None if message.system is None else message.system.get("event")
                if event not in _GROUP_CHANGES or message.client_msg_id is not None:
                    found.add("strays", f"{message.id} is an unexpected notice {event!r}")
            elif message.client_msg_id is None:
                found.add("strays", f"{message.id} has no client_msg_id")
                continue
            else:
                key = (message.sender, message.client_msg_id)
                if key in by_key:
                    twice = f"{key} stored twice: {by_key[key].id} and {message.id}"
                    found.add("duplicated_stored", twice)
                by_key[key] = message
                origin = attempts.get(message.client_msg_id)
                if origin is None or origin[0].user_id != message.sender:
                    found.add("strays", f"{message.id} was never sent by {message.sender}")
                else:
                    wrong = _entry_problem(origin[1], message, effects)
                    if wrong:
                        found.add("corrupt", f"{message.id}: {wrong}")
            separator = previous is None or _gap(previous, message) > SEPARATOR_SECONDS
            if message.time_separator != separator:
                found.add("separators", f"{message.id}: time_separator {message.time_separator}")
            previous = message
    for cmid, (actor, attempt) in attempts.items():
        if attempt.declined is not None:
            if by_key.get((actor.user_id, cmid)) is not None:
                found.add("corrupt", f"{cmid} was refused ({attempt.declined}) yet stored")
            continue
        stored = by_key.get((actor.user_id, cmid))
        if attempt.acked is not None:
            figures.acked += 1
        if stored is None:
            kind = "lost_acked" if attempt.acked is not None else "lost_unacked"
            found.add(kind, f"{cmid} ({attempt.tries} tries, refused={attempt.refused})")
        elif attempt.acked is not None and attempt.acked.id != stored.id:
            found.add("corrupt", f"{cmid} acked as {attempt.acked.id}, stored as {stored.id}")
    return found, figures


def _entry_problem(attempt: Attempt, message: Message, effects: Effects) -> str | None:
    """What is wrong with a stored entry against its attempt and the notices on it."""
    if attempt.conversation != message.conversation or attempt.kind != message.kind:
        return f"stored as a {message.kind} in {message.conversation}"
    if attempt.kind in ("recall", "edit"):
        if message.target_seq != attempt.target:
            return f"targets {message.target_seq}, not {attempt.target}"
        if attempt.kind == "edit" and message.body != attempt.body:
            return "the edit's text differs from what was sent"
        return None
    if sorted(message.mentions) != sorted(set(attempt.mentions)):
        return f"mentions {message.mentions} != {list(attempt.mentions)}"
    if message.seq in effects.recalled:
        return None if message.recalled and message.body is None else "recalled, yet not blank"
    if message.recalled:
        return "blank with no recall notice"
    edit = effects.edited.get(message.seq)
    if edit is not None:
        if (message.body, message.edited_at) != (edit.body, edit.sent_at):
            return "does not read as its last edit"
        return None
    if message.edited_at is not None or message.body != attempt.body:
        return "differs from what was sent"
    return None


def _gap(earlier: Message, later: Message) -> float:
    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (parse(later.sent_at) - parse(earlier.sent_at)).total_seconds()


def check_deliveries(
    actors: list[Actor], histories: dict[str, list[Message]], found: Findings, figures: Figures
) -> None:
    """Per client and conversation: live events in order, once per connection, gapless
    within a connection, with the right ids; and live ∪ acks ∪ catch-up = the history."""
    for actor in actors:
        for conversation in actor.conversations:
            history = histories.get(conversation, [])
            id_at = {m.seq: m.id for m in history}
            seen: set[int] = set(actor.caught.get(conversation, {}))
            ever_live: set[int] = set()
            for number, session in enumerate(actor.sessions):
                where = f"user {actor.user_id} {conversation} session {number}"
                live = session.live.get(conversation, [])
                figures.live_events += len(live)
                previous = 0
                received: set[int] = set()
                for seq, ident in live:
                    if seq in received:
                        found.add("duplicated_live", f"{where}: seq {seq} twice")
                    elif seq < previous:
                        found.add("order_violations", f"{where}: seq {seq} after {previous}")
                    received.add(seq)
                    previous = max(previous, seq)
                    if id_at.get(seq) != ident:
                        found.add("corrupt", f"{where}: event {seq} has id {ident}")
                    if seq in ever_live:
                        figures.redelivered_across_sessions += 1
                ever_live |= received
                top = max(received, default=0)
                received |= set(session.acked.get(conversation, []))
                if top:
                    # Up to the last live event only: an ack is not ordered with the
                    # events of other nodes, so an earlier seq committed elsewhere may
                    # still be in flight when the connection ends after an ack.
                    holes = set(range(min(received), top)) - received
                    if holes:
                        found.add("live_gaps", f"{where}: missing {sorted(holes)[:10]}", len(holes))
                seen |= received
            for seq, ident in actor.caught.get(conversation, {}).items():
                if id_at.get(seq) != ident:
                    found.add("corrupt", f"user {actor.user_id} {conversation}: history {seq}")
            expected = set(id_at)
            figures.deliveries_checked += len(expected)
            missing = expected - seen
            if missing:
                found.add(
                    "lost_deliveries",
                    f"user {actor.user_id} {conversation}: never saw {sorted(missing)[:10]}",
                    len(missing),
                )


def check_chat_lists(
    world: World,
    actors: list[Actor],
    histories: dict[str, list[Message]],
    lists: dict[tuple[int, int], ChatList],
    found: Findings,
    figures: Figures,
) -> None:
    """Each user's chat list, on every node, equals a recomputation from history and
    from what the user kept on its entries (hidden ones are asked for too)."""
    by_user = {actor.user_id: actor for actor in actors}
    for (user, node), listed in lists.items():
        entries = listed.conversations
        actor = by_user[user]
        where = f"user {user} on node {node}"
        expected = {
            c for c in world.conversations_of[user] if c.startswith("g:") or histories.get(c)
        }
        got = {e.id for e in entries}
        if got != expected:
            found.add(
                "chat_list",
                f"{where}: extra {sorted(got - expected)}, missing {sorted(expected - got)}",
            )
        for text in order_errors(entries) + total_errors(listed.total_unread, entries):
            found.add("chat_list", f"{where}: {text}")
        for entry in entries:
            figures.chat_entries_checked += 1
            history = histories.get(entry.id, [])
            wrong = _entry_errors(actor, entry, history)
            wrong += entry_state_errors(
                actor.kept.get(entry.id), acts_of(actor, entry.id), entry, history
            )
            if entry.peer_id is not None and entry.peer_read_seq is not None:
                peer_list = lists.get((entry.peer_id, node))
                peer_entries = [] if peer_list is None else peer_list.conversations
                peer_read = {e.id: e.read_seq for e in peer_entries}.get(entry.id)
                if peer_read is not None and peer_read != entry.peer_read_seq:
                    wrong.append(f"peer_read_seq {entry.peer_read_seq} != peer's {peer_read}")
            for text in wrong:
                found.add("chat_list", f"{where} {entry.id}: {text}")


def acts_of(actor: Actor, conversation: str) -> list[Act]:
    """The user's own acts in a conversation: sends, recalls and edits, and reads."""
    acts = [
        Act(
            a.born,
            "send" if a.kind == "text" else "entry",
            done=a.acked is not None,
            failed=a.refused is not None or a.declined is not None,
        )
        for a in actor.attempts.values()
        if a.conversation == conversation
    ]
    return acts + actor.read_acts.get(conversation, [])


def _by(message: Message, user: int) -> bool:
    """Whether ``user`` wrote this entry: its sender, or for a notice its actor."""
    if message.kind == "system":
        return message.system is not None and message.system.get("actor") == user
    return message.sender == user


def _entry_errors(actor: Actor, entry: Conversation, history: list[Message]) -> list[str]:
    """The entry against PROTOCOL-v2 section 1's rules, recomputed from full history."""
    user = actor.user_id
    wrong: list[str] = []
    shown = [m for m in history if m.kind != "edit"]
    last = shown[-1] if shown else None
    if entry.last_seq != len(history):
        wrong.append(f"last_seq {entry.last_seq} != {len(history)}")
    if entry.last_message != last:
        wrong.append("last_message is not the newest entry (edits aside) as it reads now")
    if last is not None and entry.updated_at != last.sent_at:
        wrong.append(f"updated_at {entry.updated_at} != last sent_at {last.sent_at}")
    # One's own entries (a group change's notice counts for its actor) are read;
    # a member's read position starts at the notice that made it one.
    own = max((m.seq for m in history if _by(m, user)), default=0)
    joined = history[0].seq if history and history[0].kind == "system" else 0
    low = max(own, joined, actor.read_acked.get(entry.id, 0))
    high = max(low, actor.read_tried.get(entry.id, 0))
    if not low <= entry.read_seq <= high:
        wrong.append(f"read_seq {entry.read_seq} not in [{low}, {high}] (own last {own})")
    unread = [
        m
        for m in history
        if m.seq > entry.read_seq and m.sender != user and m.kind in COUNTABLE and not m.recalled
    ]
    if entry.unread != len(unread):
        wrong.append(f"unread {entry.unread}: {len(unread)} countable unread by others")
    mentioned = sum(1 for m in unread if m.mention_all or user in m.mentions)
    if entry.mentioned != mentioned:
        wrong.append(f"mentioned {entry.mentioned}: {mentioned} unread mention this user")
    if entry.type == "private":
        if entry.peer_id is None or private_conversation(user, entry.peer_id) != entry.id:
            wrong.append(f"peer_id {entry.peer_id}")
    elif entry.type != "group" or entry.group_id is None or f"g:{entry.group_id}" != entry.id:
        wrong.append(f"type {entry.type} group_id {entry.group_id}")
    return wrong
