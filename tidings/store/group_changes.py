"""A group's changes, each committed with its ``system`` notice (PROTOCOL-v2 §6).

One transaction per change: lock the conversation (its seq) and then the
group, let the service's rule decide on the roster as it stands, apply the
change, and store its notice at the next seq, uncounted. So the notice and
its effect are never seen apart, seqs stay gapless, and catch-up by seq
replays every change. The lock order (conversation, then group) is the one
every writer here uses; a send batch locks conversations only.

A change that changes nothing (a rename to the same name, an unmute of
someone not muted) stores no notice and answers the group as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings import notices
from tidings.errors import bad_request, not_found
from tidings.ids import ConversationId, GroupId, UserId, group_conversation
from tidings.models import Announcement, Group, Message, iso_ms, message_id
from tidings.store import (
    AddMembers,
    Announce,
    CreateGroup,
    DeleteGroup,
    Dissolve,
    GroupChange,
    GroupRequest,
    Mute,
    MuteAll,
    RemoveMember,
    Rename,
    Roster,
    SetAdmins,
    StoredMessage,
    TransferOwner,
    Unmute,
)
from tidings.store.schema import (
    ADMIN,
    archive_segments,
    archived_files,
    conversations,
    groups,
    members,
    mentions,
    messages,
    uncounted,
    users,
)


@dataclass(slots=True)
class _Notice:
    """A notice to store: its event, the users it names, and its extras."""

    event: str
    users: tuple[UserId, ...] = ()
    name: str | None = None
    text: str | None = None
    extra: dict[str, Any] | None = None
    # Only for the body: admins removed, the new owner after its owner left.
    removed: tuple[UserId, ...] = ()
    heir: UserId | None = None
    seconds: int | None = None


@dataclass(slots=True)
class _Head:
    last_seq: int
    last_sent_at: int | None


class GroupChanger:
    """Runs one ``GroupRequest`` in ``conn``'s transaction (the caller commits)."""

    def __init__(self, conn: AsyncConnection, request: GroupRequest, now: int, gap_ms: int):
        self.conn = conn
        self.request = request
        self.now = now
        self.gap_ms = gap_ms

    async def run(self) -> GroupChange:
        edit = self.request.edit
        if isinstance(edit, CreateGroup):
            return await self._create(edit)
        assert self.request.group is not None
        gid = self.request.group
        cid = group_conversation(gid)
        head = await self._lock_head(cid, gid)
        group_row, roster = await self._roster(gid, cid)
        if isinstance(edit, AddMembers):
            return await self._add(gid, cid, head, group_row, roster, edit)
        if isinstance(edit, RemoveMember):
            return await self._remove(gid, cid, head, roster, edit.user_id)
        if isinstance(edit, DeleteGroup):
            self.request.rule(roster, tuple(roster.ranks))
            await self._delete(gid, cid)
            left = tuple(sorted(roster.ranks, key=roster.ranks.__getitem__))
            return GroupChange(None, cid, left=left)
        self.request.rule(roster, _concerned(edit))
        notice = await self._edit(gid, cid, group_row, roster)
        if notice is None:
            return GroupChange(await load_group(self.conn, gid, self.now), cid)
        after = _after(roster, edit, self.now)
        stored = await self._store_notice(cid, head, notice, after)
        return GroupChange(await load_group(self.conn, gid, self.now), cid, notice=stored)

    # -- the changes ----------------------------------------------------------

    async def _create(self, edit: CreateGroup) -> GroupChange:
        ordered = list(dict.fromkeys([edit.owner, *edit.member_ids]))
        await require_users(self.conn, ordered)
        result = await self.conn.execute(
            insert(groups).values(
                name=edit.name,
                owner_id=edit.owner,
                join_counter=len(ordered),
                created_at=self.now,
            )
        )
        gid = GroupId(int(result.inserted_primary_key[0]))  # type: ignore[index]
        cid = group_conversation(gid)
        await self.conn.execute(
            insert(conversations).values(
                id=cid,
                kind="group",
                group_id=gid,
                last_seq=0,
                last_sent_at=None,
                created_at=self.now,
            )
        )
        await self.conn.execute(
            insert(members),
            [
                {
                    "conversation_id": cid,
                    "user_id": uid,
                    "peer_id": None,
                    "joined_seq": 0,
                    "read_seq": 1,  # the created notice, which never counts
                    "joined_at": self.now,
                    "join_rank": rank,
                }
                for rank, uid in enumerate(ordered)
            ],
        )
        roster = Roster(cid, edit.owner, {u: r for r, u in enumerate(ordered)})
        notice = _Notice("created", name=edit.name)
        stored = await self._store_notice(cid, _Head(0, None), notice, roster)
        return GroupChange(
            await load_group(self.conn, gid, self.now),
            cid,
            joined=tuple(ordered),
            notice=stored,
        )

    async def _add(
        self,
        gid: GroupId,
        cid: ConversationId,
        head: _Head,
        group_row: Any,
        roster: Roster,
        edit: AddMembers,
    ) -> GroupChange:
        wanted = [u for u in dict.fromkeys(edit.user_ids) if u not in roster.ranks]
        self.request.rule(roster, wanted)
        await require_users(self.conn, wanted)
        if not wanted:
            return GroupChange(await load_group(self.conn, gid, self.now), cid)
        # A joiner sees the notice that added it and nothing before it.
        await self.conn.execute(
            insert(members),
            [
                {
                    "conversation_id": cid,
                    "user_id": uid,
                    "peer_id": None,
                    "joined_seq": head.last_seq,
                    "read_seq": head.last_seq + 1,
                    "joined_at": self.now,
                    "join_rank": group_row.join_counter + i,
                }
                for i, uid in enumerate(wanted)
            ],
        )
        await self.conn.execute(
            update(groups)
            .where(groups.c.id == gid)
            .values(join_counter=group_row.join_counter + len(wanted))
        )
        ranks = dict(roster.ranks)
        ranks.update({u: group_row.join_counter + i for i, u in enumerate(wanted)})
        after = replace(roster, ranks=ranks)
        stored = await self._store_notice(cid, head, _Notice("members_added", tuple(wanted)), after)
        return GroupChange(
            await load_group(self.conn, gid, self.now),
            cid,
            joined=tuple(wanted),
            notice=stored,
        )

    async def _remove(
        self, gid: GroupId, cid: ConversationId, head: _Head, roster: Roster, user: UserId
    ) -> GroupChange:
        self.request.rule(roster, (user,))
        if user not in roster.ranks:
            raise not_found(f"user {user} is not a member of {cid}")
        await self.conn.execute(
            delete(members).where(members.c.conversation_id == cid, members.c.user_id == user)
        )
        ranks = {u: r for u, r in roster.ranks.items() if u != user}
        if not ranks:
            await self._delete(gid, cid)  # left by everyone
            return GroupChange(None, cid, left=(user,))
        owner, heir = roster.owner, None
        if user == roster.owner:
            owner = heir = min(ranks, key=ranks.__getitem__)
            await self.conn.execute(update(groups).where(groups.c.id == gid).values(owner_id=heir))
            await self._set_role(cid, (heir,), 0)
        muted = {u: t for u, t in roster.muted.items() if u != user}
        after = replace(
            roster, ranks=ranks, owner=owner, admins=roster.admins - {user, owner}, muted=muted
        )
        event = "member_left" if user == self.request.actor else "member_removed"
        stored = await self._store_notice(cid, head, _Notice(event, (user,), heir=heir), after)
        group = await load_group(self.conn, gid, self.now)
        return GroupChange(group, cid, left=(user,), notice=stored)

    async def _delete(self, gid: GroupId, cid: ConversationId) -> None:
        """The group, its conversation, members and history go."""
        # Archived segments go with it: their blobs, no longer named, are swept
        # as strays (service/files.py).
        for table in (members, messages, uncounted, mentions, archive_segments, archived_files):
            await self.conn.execute(delete(table).where(table.c.conversation_id == cid))
        await self.conn.execute(delete(conversations).where(conversations.c.id == cid))
        await self.conn.execute(delete(groups).where(groups.c.id == gid))

    async def _edit(
        self, gid: GroupId, cid: ConversationId, group_row: Any, roster: Roster
    ) -> _Notice | None:
        """Apply a change of the group itself; its notice, or None if nothing changed."""
        edit = self.request.edit
        match edit:
            case Rename(name=name):
                if name == group_row.name:
                    return None
                await self._set_group(gid, name=name)
                return _Notice("renamed", name=name)
            case Announce(text=text):
                if text is None and group_row.announcement is None:
                    return None
                await self._set_group(
                    gid,
                    announcement=text,
                    announcement_at=None if text is None else self.now,
                    announcement_by=None if text is None else self.request.actor,
                )
                return _Notice("announcement", text=text)
            case MuteAll(on=on):
                if on == bool(group_row.muted_all):
                    return None
                await self._set_group(gid, muted_all=on)
                return _Notice("muted_all", extra={"on": on})
            case SetAdmins(user_ids=wanted):
                chosen = tuple(dict.fromkeys(wanted))
                strangers = [u for u in chosen if u not in roster.ranks]
                if strangers:
                    raise bad_request(f"not members of {cid}: {strangers}")
                if roster.owner in chosen:
                    raise bad_request("the owner is not made an admin; it already runs the group")
                added = tuple(u for u in chosen if u not in roster.admins)
                dropped = tuple(u for u in roster.admins if u not in chosen)
                if not added and not dropped:
                    return None
                await self._set_role(cid, dropped, 0)
                await self._set_role(cid, added, ADMIN)
                ordered = tuple(sorted(chosen, key=roster.ranks.__getitem__))
                return _Notice(
                    "admins_changed",
                    ordered,
                    extra={"added": list(added), "removed": list(dropped)},
                    removed=dropped,
                )
            case TransferOwner(user_id=user):
                self._require_member(roster, user)
                if user == roster.owner:
                    return None
                await self._set_group(gid, owner_id=user)
                await self._set_role(cid, (user, roster.owner), 0)
                return _Notice("owner_changed", (user,), extra={"previous": roster.owner})
            case Mute(user_id=user, seconds=seconds):
                self._require_member(roster, user)
                until = self.now + seconds * 1000
                await self._set_member(cid, user, muted_until=until)
                return _Notice(
                    "muted",
                    (user,),
                    extra={"seconds": seconds, "until": iso_ms(until)},
                    seconds=seconds,
                )
            case Unmute(user_id=user):
                self._require_member(roster, user)
                if roster.muted.get(user, 0) <= self.now:
                    if user in roster.muted:  # expired: forget it quietly
                        await self._set_member(cid, user, muted_until=None)
                    return None
                await self._set_member(cid, user, muted_until=None)
                return _Notice("unmuted", (user,))
            case Dissolve():
                await self._set_group(gid, dissolved_at=self.now)
                return _Notice("dissolved")
        raise AssertionError(f"unhandled group edit {edit!r}")

    # -- the notice -----------------------------------------------------------

    async def _store_notice(
        self, cid: ConversationId, head: _Head, notice: _Notice, after: Roster
    ) -> StoredMessage:
        """Store ``notice`` at the next seq and move the conversation to it."""
        actor = self.request.actor
        named = {u for u in (*notice.users, *notice.removed) if u is not None}
        if actor is not None:
            named.add(actor)
        if notice.heir is not None:
            named.add(notice.heir)
        names = await display_names(self.conn, named)
        text = notices.body(
            notice.event,
            None if actor is None else names.get(actor, f"user {actor}"),
            [names.get(u, f"user {u}") for u in notice.users],
            name=notice.name,
            text=notice.text,
            seconds=notice.seconds,
            on=None if notice.extra is None else notice.extra.get("on"),
            heir=None if notice.heir is None else names.get(notice.heir),
            removed=[names.get(u, f"user {u}") for u in notice.removed],
        )
        system: dict[str, Any] = {
            "event": notice.event,
            "actor": actor,
            "users": list(notice.users),
            "name": notice.name,
            "text": notice.text,
        }
        if notice.extra:
            system.update(notice.extra)
        if notice.heir is not None:
            system["owner"] = notice.heir
        seq = head.last_seq + 1
        previous = head.last_sent_at
        sent_at = self.now if previous is None else max(self.now, previous)
        separator = previous is None or sent_at - previous > self.gap_ms
        # A change by the business backend is sent in the owner's name (as a
        # moderation recall is in the sender's); system.actor says who did it.
        sender = actor if actor is not None else after.owner
        await self.conn.execute(
            insert(messages).values(
                conversation_id=cid,
                seq=seq,
                sender_id=sender,
                body=text,
                client_msg_id=None,
                sent_at=sent_at,
                time_separator=separator,
                kind="system",
                mention_all=False,
                system=msgspec.json.encode(system).decode(),
            )
        )
        await self.conn.execute(insert(uncounted).values(conversation_id=cid, seq=seq))
        if actor is not None and actor in after.ranks:
            # An entry of one's own: one has read up to it (as with a send).
            await self.conn.execute(
                update(members)
                .where(
                    members.c.conversation_id == cid,
                    members.c.user_id == actor,
                    members.c.read_seq < seq,
                )
                .values(read_seq=seq)
            )
        await self.conn.execute(
            update(conversations)
            .where(conversations.c.id == cid)
            .values(
                last_seq=seq,
                last_sent_at=sent_at,
                shown_seq=seq,
                guarded=_guarded(after, self.now),
            )
        )
        message = Message(
            id=message_id(cid, seq),
            conversation=cid,
            seq=seq,
            sender=sender,
            body=text,
            client_msg_id=None,
            sent_at=iso_ms(sent_at),
            time_separator=separator,
            kind="system",
            system=system,
        )
        recipients = tuple(sorted(after.ranks, key=after.ranks.__getitem__))
        return StoredMessage(message, fresh=True, recipients=recipients)

    # -- reading and writing rows --------------------------------------------

    async def _lock_head(self, cid: ConversationId, gid: GroupId) -> _Head:
        rows = await self.conn.execute(
            select(conversations.c.last_seq, conversations.c.last_sent_at)
            .where(conversations.c.id == cid)
            .with_for_update()
        )
        row = rows.first()
        if row is None:
            raise not_found(f"no group {gid}")
        return _Head(int(row.last_seq), row.last_sent_at)

    async def _roster(self, gid: GroupId, cid: ConversationId) -> tuple[Any, Roster]:
        group_row = (
            await self.conn.execute(
                select(
                    groups.c.name,
                    groups.c.owner_id,
                    groups.c.join_counter,
                    groups.c.announcement,
                    groups.c.muted_all,
                    groups.c.dissolved_at,
                )
                .where(groups.c.id == gid)
                .with_for_update()
            )
        ).first()
        if group_row is None:
            raise not_found(f"no group {gid}")
        rows = await self.conn.execute(
            select(
                members.c.user_id, members.c.join_rank, members.c.role, members.c.muted_until
            ).where(members.c.conversation_id == cid)
        )
        ranks: dict[UserId, int] = {}
        admins: set[UserId] = set()
        muted: dict[UserId, int] = {}
        for row in rows:
            user = UserId(row.user_id)
            ranks[user] = row.join_rank
            if row.role == ADMIN:
                admins.add(user)
            if row.muted_until is not None:
                muted[user] = int(row.muted_until)
        roster = Roster(
            cid,
            UserId(group_row.owner_id),
            ranks,
            frozenset(admins),
            muted,
            bool(group_row.muted_all),
            group_row.dissolved_at is not None,
        )
        return group_row, roster

    def _require_member(self, roster: Roster, user: UserId) -> None:
        if user not in roster.ranks:
            raise not_found(f"user {user} is not a member of {roster.conversation}")

    async def _set_group(self, gid: GroupId, **values: Any) -> None:
        await self.conn.execute(update(groups).where(groups.c.id == gid).values(**values))

    async def _set_member(self, cid: ConversationId, user: UserId, **values: Any) -> None:
        await self.conn.execute(
            update(members)
            .where(members.c.conversation_id == cid, members.c.user_id == user)
            .values(**values)
        )

    async def _set_role(self, cid: ConversationId, users_: Sequence[UserId], role: int) -> None:
        if users_:
            await self.conn.execute(
                update(members)
                .where(members.c.conversation_id == cid, members.c.user_id.in_(list(users_)))
                .values(role=role)
            )


def _after(roster: Roster, edit: object, now: int) -> Roster:
    """The roster as a change of the group itself leaves it."""
    match edit:
        case MuteAll(on=on):
            return replace(roster, muted_all=on)
        case Dissolve():
            return replace(roster, dissolved=True)
        case Mute(user_id=user, seconds=seconds):
            return replace(roster, muted={**roster.muted, user: now + seconds * 1000})
        case Unmute(user_id=user):
            return replace(roster, muted={u: t for u, t in roster.muted.items() if u != user})
        case TransferOwner(user_id=user):
            return replace(roster, owner=user, admins=roster.admins - {user})
        case SetAdmins(user_ids=chosen):
            return replace(roster, admins=frozenset(chosen))
    return roster


def _guarded(after: Roster, now: int) -> bool:
    """Whether a send needs more than membership (schema: conversations.guarded)."""
    return after.dissolved or after.muted_all or any(t > now for t in after.muted.values())


def _concerned(edit: object) -> tuple[UserId, ...]:
    """The users a change of the group itself is about, for the rule."""
    if isinstance(edit, SetAdmins):
        return edit.user_ids
    if isinstance(edit, (TransferOwner, Mute, Unmute)):
        return (edit.user_id,)
    return ()


async def require_users(conn: AsyncConnection, user_ids: Sequence[UserId]) -> None:
    if not user_ids:
        return
    rows = await conn.execute(select(users.c.id).where(users.c.id.in_(list(user_ids))))
    known = {r.id for r in rows}
    unknown = [u for u in user_ids if u not in known]
    if unknown:
        raise bad_request(f"unknown user ids: {unknown}")


async def display_names(conn: AsyncConnection, user_ids: set[UserId]) -> dict[UserId, str]:
    if not user_ids:
        return {}
    rows = await conn.execute(
        select(users.c.id, users.c.display_name).where(users.c.id.in_(sorted(user_ids)))
    )
    return {UserId(r.id): r.display_name for r in rows}


async def load_group(conn: AsyncConnection, gid: GroupId, now: int) -> Group | None:
    head = (
        await conn.execute(
            select(
                groups.c.name,
                groups.c.owner_id,
                groups.c.announcement,
                groups.c.announcement_at,
                groups.c.announcement_by,
                groups.c.muted_all,
                groups.c.dissolved_at,
            ).where(groups.c.id == gid)
        )
    ).first()
    if head is None:
        return None
    rows = await conn.execute(
        select(members.c.user_id, members.c.role, members.c.muted_until)
        .where(members.c.conversation_id == group_conversation(gid))
        .order_by(members.c.join_rank)
    )
    member_ids: list[int] = []
    admin_ids: list[int] = []
    mutes: dict[str, str] = {}
    for row in rows:
        member_ids.append(row.user_id)
        if row.role == ADMIN:
            admin_ids.append(row.user_id)
        if row.muted_until is not None and row.muted_until > now:
            mutes[str(row.user_id)] = iso_ms(row.muted_until)
    announcement = None
    if head.announcement is not None:
        announcement = Announcement(
            text=head.announcement,
            updated_at=iso_ms(head.announcement_at or 0),
            by=head.announcement_by,
        )
    return Group(
        id=gid,
        name=head.name,
        owner_id=head.owner_id,
        member_ids=member_ids,
        admin_ids=admin_ids,
        announcement=announcement,
        muted_all=bool(head.muted_all),
        muted_ids=[int(u) for u in mutes],
        mutes=mutes,
        dissolved=head.dissolved_at is not None,
    )
