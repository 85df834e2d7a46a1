"""Running a group (PROTOCOL-v2 §6): the same calls for a user and for a business
backend, under ``/api/v1/groups`` or ``/api/v1/admin/groups``."""

from __future__ import annotations

from typing import ClassVar

from tidings.client.transport import HttpBase
from tidings.models import Group


class GroupRunning(HttpBase):
    """A user may do what its role allows (owner, admin); the backend all of it."""

    _GROUPS: ClassVar[str] = "/api/v1/groups"

    async def update_group(
        self,
        group_id: int,
        *,
        name: str | None = None,
        announcement: str | None = None,
        muted_all: bool | None = None,
    ) -> Group:
        """Rename, set the announcement ("" clears it) or mute all (owner and admins)."""
        given = {"name": name, "announcement": announcement, "muted_all": muted_all}
        body = {key: value for key, value in given.items() if value is not None}
        return await self._fetch(Group, "PATCH", f"{self._GROUPS}/{group_id}", body)

    async def set_admins(self, group_id: int, user_ids: list[int]) -> Group:
        """Make exactly these members the admins (owner only)."""
        path = f"{self._GROUPS}/{group_id}/admins"
        return await self._fetch(Group, "PUT", path, {"user_ids": user_ids})

    async def transfer_group(self, group_id: int, user_id: int) -> Group:
        """Hand the group to another member (owner only); the old owner stays a member."""
        path = f"{self._GROUPS}/{group_id}/owner"
        return await self._fetch(Group, "POST", path, {"user_id": user_id})

    async def mute_member(self, group_id: int, user_id: int, seconds: int) -> Group:
        """Keep a member from sending for ``seconds`` (owner and admins)."""
        path = f"{self._GROUPS}/{group_id}/mutes/{user_id}"
        return await self._fetch(Group, "PUT", path, {"seconds": seconds})

    async def unmute_member(self, group_id: int, user_id: int) -> Group:
        return await self._fetch(Group, "DELETE", f"{self._GROUPS}/{group_id}/mutes/{user_id}")
