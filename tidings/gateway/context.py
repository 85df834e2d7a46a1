"""What the edge's handlers need, built once in ``tidings.app`` and stored on the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web

from tidings.config import Settings
from tidings.gateway.hub import Hub
from tidings.gateway.links import FileLinks
from tidings.metrics import Metrics
from tidings.nodes import NodeId
from tidings.presence import Presence
from tidings.service.accounts import Accounts
from tidings.service.admin import Admin
from tidings.service.chatlists import ChatLists
from tidings.service.conversations import Conversations
from tidings.service.files import Files
from tidings.service.groups import Groups
from tidings.service.push import PushSubscriptions
from tidings.service.search import Search
from tidings.service.typing import Typing


@dataclass(frozen=True, slots=True)
class Edge:
    KEY: ClassVar[web.AppKey[Edge]]

    settings: Settings
    accounts: Accounts
    conversations: Conversations
    chat_lists: ChatLists
    groups: Groups
    typing: Typing
    hub: Hub
    admin: Admin
    metrics: Metrics
    presence: Presence
    # Name -> "ok" or what is wrong, for /readyz.
    readiness: Callable[[], Awaitable[dict[str, str]]]
    # This process's node id, named by /readyz: which node (or worker) answered.
    node: NodeId
    search: Search
    files: Files
    links: FileLinks
    push: PushSubscriptions


Edge.KEY = web.AppKey("tidings.edge", Edge)
