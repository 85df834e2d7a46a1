"""What the edge's handlers need, built once in ``tidings.app`` and stored on the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web

from tidings.config import Settings
from tidings.gateway.hub import Hub
from tidings.service.accounts import Accounts
from tidings.service.admin import Admin
from tidings.service.conversations import Conversations
from tidings.service.groups import Groups


@dataclass(frozen=True, slots=True)
class Edge:
    KEY: ClassVar[web.AppKey[Edge]]

    settings: Settings
    accounts: Accounts
    conversations: Conversations
    groups: Groups
    hub: Hub
    admin: Admin


Edge.KEY = web.AppKey("tidings.edge", Edge)
