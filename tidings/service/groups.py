"""Groups: create, run and look up; who may do which (PROTOCOL-v2 §6).

The rules live here; the store runs each change under the group's lock
with its ``system`` notice, and the writer commits it in queue order among
the conversation's messages, so a change's notice reaches every member in
seq order and a send racing with a change either comes before it or is
judged by it. Who gets which event (joiners, the notice, leavers) is
``recipients.group_events``, published right after the commit.

- The owner: everything. Admins: rename, announcement, mute-all, add
  members, remove and mute plain members. Members: leave.
- ``actor`` None is the business backend (integration API): it may do
  whatever the owner may.
- A dissolved group takes no change but leaving.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tidings.config import Settings
from tidings.errors import ErrorCode, TidingsError, bad_request, forbidden, not_found, not_member
from tidings.ids import GroupId, UserId, group_conversation
from tidings.models import Group
from tidings.service.text import without_nul
from tidings.service.writer import GroupCommitWriter
from tidings.store import (
    AddMembers,
    Announce,
    CreateGroup,
    DeleteGroup,
    Dissolve,
    GroupChange,
    GroupEdit,
    GroupRequest,
    Mute,
    MuteAll,
    RemoveMember,
    Rename,
    Roster,
    SetAdmins,
    Store,
    TransferOwner,
    Unmute,
)

MAX_GROUP_NAME = 100
MAX_ANNOUNCEMENT = 2000
MAX_MUTE_SECONDS = 30 * 86_400


class Groups:
    def __init__(self, store: Store, writer: GroupCommitWriter, settings: Settings) -> None:
        self._store = store
        self._writer = writer
        self._settings = settings

    async def create(self, owner: UserId, name: str, member_ids: Sequence[UserId]) -> Group:
        title = _group_name(name)
        self._check_size(len(set(member_ids) | {owner}))
        edit = CreateGroup(owner, title, tuple(member_ids))
        return _group(await self._writer.change_group(GroupRequest(None, owner, edit)))

    async def get(self, user: UserId, gid: GroupId) -> Group:
        group = await self._store.group(gid)
        if group is None:
            raise not_found(f"no group {gid}")
        if user not in group.member_ids:
            raise not_member(group_conversation(gid))
        return group

    async def add(self, actor: UserId | None, gid: GroupId, user_ids: Sequence[UserId]) -> Group:
        def rule(roster: Roster, joining: Sequence[UserId]) -> None:
            _running(roster, actor, "add members")
            self._check_size(len(roster.ranks) + len(joining))

        return _group(await self._change(actor, gid, AddMembers(tuple(user_ids)), rule))

    async def remove(self, actor: UserId | None, gid: GroupId, user: UserId) -> None:
        def rule(roster: Roster, _leaving: Sequence[UserId]) -> None:
            if actor is not None and actor not in roster.ranks:
                raise not_member(roster.conversation)
            if user not in roster.ranks:
                raise not_found(f"user {user} is not a member of {roster.conversation}")
            if actor == user:
                return  # anyone may leave, a dissolved group too
            _running(roster, actor, "remove members")
            if actor is not None and actor != roster.owner and _ranked(roster, user):
                raise forbidden("admins remove plain members only, not the owner or admins")

        await self._change(actor, gid, RemoveMember(user), rule)

    async def update(
        self,
        actor: UserId | None,
        gid: GroupId,
        *,
        name: str | None = None,
        announcement: str | None = None,
        muted_all: bool | None = None,
    ) -> Group:
        """PATCH: each field given is one change with its own notice, in this order."""
        edits: list[GroupEdit] = []
        if name is not None:
            edits.append(Rename(_group_name(name)))
        if announcement is not None:
            edits.append(Announce(_announcement(announcement)))
        if muted_all is not None:
            edits.append(MuteAll(muted_all))

        def rule(roster: Roster, _users: Sequence[UserId]) -> None:
            _running(roster, actor, "change the group")

        if not edits:
            return await self._get_for(actor, gid)
        change = None
        for edit in edits:
            change = await self._change(actor, gid, edit, rule)
        assert change is not None
        return _group(change)

    async def set_admins(
        self, actor: UserId | None, gid: GroupId, user_ids: Sequence[UserId]
    ) -> Group:
        return _group(
            await self._change(
                actor, gid, SetAdmins(tuple(user_ids)), _owner_only(actor, "set admins")
            )
        )

    async def transfer(self, actor: UserId | None, gid: GroupId, user: UserId) -> Group:
        return _group(
            await self._change(
                actor, gid, TransferOwner(user), _owner_only(actor, "hand the group on")
            )
        )

    async def delete(self, gid: GroupId) -> None:
        """The business backend's delete: the group and its history go at once."""
        await self._change(None, gid, DeleteGroup(), _any)

    async def dissolve(self, actor: UserId | None, gid: GroupId) -> None:
        await self._change(actor, gid, Dissolve(), _owner_only(actor, "dissolve the group"))

    async def mute(self, actor: UserId | None, gid: GroupId, user: UserId, seconds: int) -> Group:
        if not 1 <= seconds <= MAX_MUTE_SECONDS:
            raise bad_request(f"seconds: 1 to {MAX_MUTE_SECONDS} (30 days)")
        return _group(await self._change(actor, gid, Mute(user, seconds), _mute_rule(actor, user)))

    async def unmute(self, actor: UserId | None, gid: GroupId, user: UserId) -> Group:
        return _group(await self._change(actor, gid, Unmute(user), _mute_rule(actor, user)))

    async def _change(
        self,
        actor: UserId | None,
        gid: GroupId,
        edit: GroupEdit,
        rule: Callable[[Roster, Sequence[UserId]], None],
    ) -> GroupChange:
        return await self._writer.change_group(GroupRequest(gid, actor, edit, rule))

    async def _get_for(self, actor: UserId | None, gid: GroupId) -> Group:
        if actor is None:
            group = await self._store.group(gid)
            if group is None:
                raise not_found(f"no group {gid}")
            return group
        return await self.get(actor, gid)

    def _check_size(self, members: int) -> None:
        limit = self._settings.max_group_members
        if members > limit:
            raise bad_request(f"a group has at most {limit} members")


def _any(_roster: Roster, _users: Sequence[UserId]) -> None:
    return None


def _group(change: GroupChange) -> Group:
    assert change.group is not None
    return change.group


def _running(roster: Roster, actor: UserId | None, doing: str) -> None:
    """The actor is a member who runs this group (owner or admin), and it still exists."""
    if actor is not None and actor not in roster.ranks:
        raise not_member(roster.conversation)
    if roster.dissolved:
        raise TidingsError(ErrorCode.GROUP_DISSOLVED, "this group was dissolved")
    if not roster.manages(actor):
        raise forbidden(f"only the group's owner and admins {doing}")


def _owner_only(actor: UserId | None, doing: str) -> Callable[[Roster, Sequence[UserId]], None]:
    def rule(roster: Roster, _users: Sequence[UserId]) -> None:
        _running(roster, actor, doing)
        if actor is not None and actor != roster.owner:
            raise forbidden(f"only the group's owner may {doing}")

    return rule


def _ranked(roster: Roster, user: UserId) -> bool:
    return user == roster.owner or user in roster.admins


def _mute_rule(actor: UserId | None, user: UserId) -> Callable[[Roster, Sequence[UserId]], None]:
    def rule(roster: Roster, _users: Sequence[UserId]) -> None:
        _running(roster, actor, "mute members")
        if user == roster.owner:
            raise forbidden("nobody mutes the group's owner")
        if actor is not None and actor != roster.owner and user in roster.admins:
            raise forbidden("only the owner mutes an admin")

    return rule


def _group_name(name: str) -> str:
    if not 1 <= len(name.strip()) <= MAX_GROUP_NAME:
        raise bad_request(f"name: 1 to {MAX_GROUP_NAME} characters")
    return without_nul(name.strip(), "name")


def _announcement(text: str) -> str | None:
    """The announcement as kept: trimmed; empty clears it."""
    text = text.strip()
    if len(text) > MAX_ANNOUNCEMENT:
        raise bad_request(f"announcement: at most {MAX_ANNOUNCEMENT} characters")
    return without_nul(text, "announcement") or None
