"""The rules of a push, without I/O: what it says, and when a burst lets one out.

A push tells an offline user that a conversation moved on; it carries the
chat list's ``total_unread`` so a badge can be exact. A burst in one
conversation makes one push now and at most one more per window, the
window's last, so the final state always goes out and never more than
one push per user and conversation per window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidings.ids import UserId
from tidings.models import Conversation, Message

PREVIEW_CHARS = 100


def preview(message: Message) -> str:
    """What the notification shows of a message: its text, cut to 100 characters."""
    if message.body:
        text = " ".join(message.body.split())
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    return f"[{message.kind}]"  # an image, a file, a voice message: no text to show


def mentions(message: Message, user: UserId) -> bool:
    return message.mention_all or user in message.mentions


def payload(
    user: UserId, entry: Conversation, message: Message, total_unread: int, *, mentioned: bool
) -> dict[str, Any] | None:
    """The push for ``user`` after ``message``, or None: a muted conversation
    says nothing unless the user was mentioned since the last push."""
    if entry.muted and not mentioned:
        return None
    return {
        "conversation": entry.id,
        "seq": message.seq,
        "title": entry.title,
        "body": preview(message),
        "total_unread": total_unread,
    }


@dataclass(slots=True)
class Due:
    """A push to prepare: for ``user`` in ``message``'s conversation, as of that message."""

    user: UserId
    message: Message
    mentioned: bool


@dataclass(slots=True)
class _Slot:
    sent_at: float
    waiting: Due | None = None
    closes_at: float = 0.0


@dataclass(slots=True)
class Collapser:
    """At most one push per (user, conversation) every ``window`` seconds.

    ``note`` a message for a user: it is due now if nothing went out in the
    window, else it waits (replacing what waited before, keeping a mention)
    for ``expire`` at the window's end. A slot lives one window after its
    last push, so the memory held is the pushes of one window.
    """

    window: float
    _slots: dict[tuple[UserId, str], _Slot] = field(default_factory=dict)

    def note(self, due: Due, now: float) -> Due | None:
        key = (due.user, due.message.conversation)
        slot = self._slots.get(key)
        if slot is None or now >= slot.closes_at:
            self._slots[key] = _Slot(now, None, now + self.window)
            return due
        waiting = slot.waiting
        mentioned = due.mentioned or (waiting is not None and waiting.mentioned)
        slot.waiting = Due(due.user, due.message, mentioned)
        return None

    def defer(self, due: Due, until: float) -> None:
        """Hold ``due`` back until ``until`` (another node pushed in this window):
        it waits as a burst's later message does, and goes out at ``expire``."""
        key = (due.user, due.message.conversation)
        slot = self._slots.get(key)
        if slot is None:
            self._slots[key] = _Slot(until, due, until)
            return
        waiting = slot.waiting
        mentioned = due.mentioned or (waiting is not None and waiting.mentioned)
        slot.waiting = Due(due.user, due.message, mentioned)
        slot.closes_at = max(slot.closes_at, until)

    def next_close(self) -> float | None:
        """When the earliest window closes, or None with nothing open."""
        return min((slot.closes_at for slot in self._slots.values()), default=None)

    def expire(self, now: float) -> list[Due]:
        """Close the windows that ended: what waited in them is due now, and
        opens a window of its own."""
        due: list[Due] = []
        for key, slot in list(self._slots.items()):
            if slot.closes_at > now:
                continue
            if slot.waiting is None:
                del self._slots[key]
            else:
                due.append(slot.waiting)
                self._slots[key] = _Slot(now, None, now + self.window)
        return due

    def __len__(self) -> int:
        return len(self._slots)
