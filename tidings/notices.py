"""The plain text of a group's ``system`` notices (PROTOCOL-v2 §1, §6).

A v1 client shows a notice as a line of text, so the body must read well
alone: "ann added bob and carol", "ann muted bob for 10 minutes". The
structured ``system`` object beside it is what v2 clients use; the body is
written once, when the notice is stored, with the names as they were then.
"""

from __future__ import annotations

from collections.abc import Sequence

# At most this many names are spelled out; the rest are counted.
_NAMES_SHOWN = 10

_UNITS = ((86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second"))


def listing(names: Sequence[str]) -> str:
    """'bob', 'bob and carol', 'bob, carol and dan', 'bob, …, and 12 others'."""
    if len(names) > _NAMES_SHOWN:
        rest = len(names) - _NAMES_SHOWN
        return f"{', '.join(names[:_NAMES_SHOWN])} and {rest} other{'s' if rest > 1 else ''}"
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def duration(seconds: int) -> str:
    """The largest whole unit: '10 minutes', '1 hour', '2 days', '90 seconds'."""
    for size, unit in _UNITS:
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def body(
    event: str,
    actor: str | None,
    users: Sequence[str] = (),
    *,
    name: str | None = None,
    text: str | None = None,
    seconds: int | None = None,
    on: bool | None = None,
    heir: str | None = None,
    removed: Sequence[str] = (),
) -> str:
    """The notice's text; ``actor`` None is a change made by the business backend."""
    who = listing(users)
    by = "" if actor is None else f"{actor} "
    match event:
        case "created":
            return f'{by}created the group "{name}"' if actor else f'The group "{name}" was created'
        case "members_added":
            return f"{by}added {who}" if actor else f"{who} joined the group"
        case "member_removed":
            return f"{by}removed {who}" if actor else f"{who} was removed from the group"
        case "member_left":
            left = f"{who} left the group"
            return left if heir is None else f"{left}; {heir} is now the owner"
        case "renamed":
            return f'{by}renamed the group to "{name}"' if actor else f'The group is now "{name}"'
        case "announcement":
            if text is None:
                return f"{by}cleared the announcement" if actor else "The announcement was cleared"
            return f"{by}updated the announcement: {text}" if actor else f"Announcement: {text}"
        case "owner_changed":
            return f"{by}made {who} the owner" if actor else f"{who} is now the owner"
        case "admins_changed":
            # ``users`` here are the admins added, ``removed`` those no longer admins.
            parts = []
            if users:
                parts.append(f"made {who} {'an admin' if len(users) == 1 else 'admins'}")
            if removed:
                parts.append(
                    f"removed {listing(removed)} as admin{'s' if len(removed) > 1 else ''}"
                )
            change = "; ".join(parts)
            return f"{by}{change}" if actor else f"The group {change}"
        case "muted":
            span = duration(seconds or 0)
            return f"{by}muted {who} for {span}" if actor else f"{who} was muted for {span}"
        case "unmuted":
            return f"{by}unmuted {who}" if actor else f"{who} was unmuted"
        case "muted_all":
            state = "muted everyone" if on else "unmuted everyone"
            return f"{by}{state}" if actor else f"The group is {'muted' if on else 'unmuted'}"
        case "dissolved":
            return f"{by}dissolved the group" if actor else "The group was dissolved"
    raise ValueError(f"unknown notice event {event!r}")
