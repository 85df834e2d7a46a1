"""What a soak user keeps on its chat-list entries (PROTOCOL-v2 §5), and what
each entry must then show at the end.

The actor pins, mutes, marks unread, hides and drafts at random while
messages flow. Each acked ``PATCH`` fixes what the entry must hold, until
something of the user's own clears it: a send clears the draft, any entry
of one's own or read clears the mark, a countable message by anyone
brings a hidden entry back. What the client cannot know (a ``PATCH`` with no
answer; a send of its own still unacked when the ``PATCH`` went, which the
server may have stored before or after) widens the allowed values instead
of guessing, so every finding is a real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.models import Conversation, Message

COUNTABLE = frozenset({"text", "image", "file", "voice"})


@dataclass
class Act:
    """One own act in a conversation, in the actor's order: a send (``send``), a
    recall or an edit (``entry``), or a read; ``done`` once answered with success."""

    clock: int
    kind: str
    done: bool = False
    failed: bool = False  # refused for good: it never reached the store


@dataclass
class Kept:
    """The values an entry may show at the end, from the user's own changes."""

    pinned: set[bool] = field(default_factory=lambda: {False})
    muted: set[bool] = field(default_factory=lambda: {False})
    # Drafts: the bodies it may hold as of ``draft_clock`` (None: no draft), and
    # whether an own send unanswered at that moment may have cleared it after.
    drafts: set[str | None] = field(default_factory=lambda: {None})
    draft_clock: int = 0
    draft_unsure: bool = False
    marked: set[bool] = field(default_factory=lambda: {False})
    marked_clock: int = 0
    marked_unsure: bool = False
    # Hidden as of ``hidden_seq`` (the last seq of the PATCH's answer); None
    # when not hidden; ``hidden_unsure`` after a PATCH with no answer.
    hidden_seq: int | None = None
    hidden_unsure: bool = False


def take_answer(
    kept: Kept,
    change: dict[str, object],
    entry: Conversation,
    clock: int,
    unsure_sends: bool,
    unsure_acts: bool,
) -> None:
    """An acked PATCH of ``change``: the entry as answered fixes the fields changed."""
    if "pinned" in change:
        kept.pinned = {bool(change["pinned"])}
    if "muted" in change:
        kept.muted = {bool(change["muted"])}
    if "draft" in change:
        body = change["draft"]
        kept.drafts = {body if isinstance(body, str) and body else None}
        kept.draft_clock, kept.draft_unsure = clock, unsure_sends
    if "marked_unread" in change:
        kept.marked = {bool(change["marked_unread"])}
        kept.marked_clock, kept.marked_unsure = clock, unsure_acts
    if "hidden" in change:
        kept.hidden_seq = entry.last_seq if entry.hidden else None
        kept.hidden_unsure = False


def take_silence(kept: Kept, change: dict[str, object], clock: int) -> None:
    """A PATCH with no answer: it may or may not have been applied."""
    if "pinned" in change:
        kept.pinned.add(bool(change["pinned"]))
    if "muted" in change:
        kept.muted.add(bool(change["muted"]))
    if "draft" in change:
        body = change["draft"]
        kept.drafts.add(body if isinstance(body, str) and body else None)
        kept.draft_clock = clock
    if "marked_unread" in change:
        kept.marked.add(bool(change["marked_unread"]))
        kept.marked_clock = clock
    if "hidden" in change:
        kept.hidden_unsure = True


def entry_state_errors(
    kept: Kept | None, acts: list[Act], entry: Conversation, history: list[Message]
) -> list[str]:
    """The entry's pinned, muted, draft, marked_unread and hidden against ``kept``."""
    kept = kept or Kept()
    wrong: list[str] = []
    if entry.pinned not in kept.pinned:
        wrong.append(f"pinned {entry.pinned}, expected one of {kept.pinned}")
    if entry.muted not in kept.muted:
        wrong.append(f"muted {entry.muted}, expected one of {kept.muted}")
    drafts = set(kept.drafts)
    later_sends = [
        a for a in acts if a.kind == "send" and a.clock > kept.draft_clock and not a.failed
    ]
    if any(a.done for a in later_sends):
        drafts = {None}  # a send stored after the draft cleared it
    elif later_sends or kept.draft_unsure:
        drafts.add(None)  # a send that may have been stored after it
    draft = None if entry.draft is None else entry.draft.body
    if draft not in drafts:
        wrong.append(f"draft {draft!r:.40}, expected one of {sorted(map(str, drafts))}")
    marked = set(kept.marked)
    later = [a for a in acts if a.clock > kept.marked_clock and not a.failed]
    if any(a.done for a in later):
        marked = {False}
    elif later or kept.marked_unsure:
        marked.add(False)
    if entry.marked_unread not in marked:
        wrong.append(f"marked_unread {entry.marked_unread}, expected one of {marked}")
    if not kept.hidden_unsure:
        hidden = kept.hidden_seq is not None and not any(
            m.seq > kept.hidden_seq and m.kind in COUNTABLE and not m.recalled for m in history
        )
        if entry.hidden != hidden:
            wrong.append(f"hidden {entry.hidden}, expected {hidden} (hidden at {kept.hidden_seq})")
    return wrong


def order_errors(entries: list[Conversation]) -> list[str]:
    """Pinned first, then newest first by the later of the entry's and its draft's time."""

    def at(entry: Conversation) -> str:
        if entry.draft is not None and entry.draft.updated_at > entry.updated_at:
            return entry.draft.updated_at
        return entry.updated_at

    keys = [(not e.pinned, _negated(at(e)), e.id) for e in entries]
    return [] if keys == sorted(keys) else ["not pinned first, then newest first"]


def _negated(stamp: str) -> tuple[int, ...]:
    """A key that sorts ISO times newest first."""
    return tuple(-ord(c) for c in stamp)


def total_errors(total: int, entries: list[Conversation]) -> list[str]:
    """``total_unread`` against its rule over every entry (hidden ones listed too)."""
    expected = sum(e.unread or int(e.marked_unread) for e in entries if not e.muted)
    return [] if total == expected else [f"total_unread {total}, recomputed {expected}"]
