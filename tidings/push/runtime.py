"""One node's push side, started after the store opens: keys, planner, delivery.

The VAPID key pair comes from a setting or from the database (a
``server_secrets`` row made by the first node to start, so every node and
every restart signs alike): it exists only once the store is open; until
then ``offer`` is a no-op and the key endpoint answers ``unavailable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tidings.config import Settings
from tidings.errors import unavailable
from tidings.events import Event
from tidings.metrics import Metrics
from tidings.push.delivery import Delivery
from tidings.push.keys import VapidKeys, load_private_key, new_private_key
from tidings.push.planner import Connections, EntryAndTotal, PushHook, PushPlanner, SharedWindows
from tidings.store import PushRecord

# The value every node shares under a name, made once by the first to ask
# (``store.files().secret``: the ``server_secrets`` table).
SharedKey = Callable[[str, Callable[[], str]], Awaitable[str]]


class WebPush:
    def __init__(
        self,
        settings: Settings,
        records: PushRecord,
        shared_key: SharedKey,
        connections: Connections,
        entry_and_total: EntryAndTotal,
        metrics: Metrics,
        hook: PushHook | None = None,
        windows: SharedWindows | None = None,
    ) -> None:
        self._settings = settings
        self._windows = windows
        self._records = records
        self._shared_key = shared_key
        self._connections = connections
        self._entry_and_total = entry_and_total
        self._metrics = metrics
        self._hook = hook
        self._keys: VapidKeys | None = None
        self._delivery: Delivery | None = None
        self._planner: PushPlanner | None = None

    async def start(self) -> None:
        settings = self._settings
        private = settings.vapid_private_key or await self._shared_key(
            "vapid_private_key", new_private_key
        )
        self._keys = VapidKeys(load_private_key(private), settings.vapid_subject)
        self._delivery = Delivery(
            self._keys,
            self._records.forget,
            self._metrics,
            allow_private=settings.push_allow_private,
        )
        self._planner = PushPlanner(
            self._records,
            self._delivery,
            self._connections,
            self._entry_and_total,
            self._metrics,
            collapse_seconds=settings.push_collapse_seconds,
            hook=self._hook,
            windows=self._windows,
        )
        await self._delivery.start()
        self._planner.start()

    async def close(self) -> None:
        if self._planner is not None:
            await self._planner.close()
        if self._delivery is not None:
            await self._delivery.close()
        if self._windows is not None:
            await self._windows.close()

    def offer(self, event: Event) -> None:
        if self._planner is not None:
            self._planner.offer(event)

    def application_server_key(self) -> str:
        if self._keys is None:
            raise unavailable("the server is starting; retry")
        return self._keys.application_server_key

    @property
    def backlog(self) -> int:
        planner, delivery = self._planner, self._delivery
        return (planner.backlog if planner else 0) + (delivery.backlog if delivery else 0)
