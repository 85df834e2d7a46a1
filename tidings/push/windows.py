"""Collapse windows shared by every node, in Redis.

Each node collapses the pushes of the messages it committed
(``decide.Collapser``). With many nodes, two of them committing messages
of one conversation in the same window would each push. So before a push
goes out, its node claims the window for (user, conversation) in Redis,
``SET key seq PX window NX``: one claim per window in the whole cluster.
A node that loses the claim learns the seq the winner pushed: its own
push, if newer, waits until the window ends (the key's ``PTTL``) and
claims again then, so the final state still goes out and no window
carries two pushes; if older, it is dropped (the winner said more). A claim is one
key, so it works on Redis Cluster too, and a whole batch is one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidings.ids import UserId
from tidings.push.planner import WindowHolder
from tidings.redis_target import RedisTarget

# A window claimed by someone else but already expiring: look again this soon.
_AGAIN = 0.01


class RedisWindows:
    def __init__(self, target: RedisTarget) -> None:
        self._redis = target.connect(socket_connect_timeout=5)
        # The plain prefix: one key per claim, so a Cluster spreads them.
        self._prefix = target.prefix

    async def claim(
        self, keys: Sequence[tuple[UserId, str, int]], window: float
    ) -> list[WindowHolder | None]:
        """For each (user, conversation, seq): None if this node now holds its
        window, else the seq the holder pushed and when its window ends."""
        if not keys:
            return []
        milliseconds = max(1, int(window * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            for user, conversation, seq in keys:
                name = f"{self._prefix}push:w:{user}:{conversation}"
                pipe.set(name, seq, px=milliseconds, nx=True)
                pipe.get(name)
                pipe.pttl(name)
            answers = await pipe.execute()
        out: list[WindowHolder | None] = []
        for index in range(0, len(answers), 3):
            claimed, holder, left = answers[index : index + 3]
            if claimed:
                out.append(None)
            elif holder is None:  # expired between the SET and the GET: free again
                out.append(WindowHolder(-1, _AGAIN))
            else:
                out.append(WindowHolder(int(holder), max(_AGAIN, left / 1000)))
        return out

    async def close(self) -> None:
        await self._redis.aclose()
