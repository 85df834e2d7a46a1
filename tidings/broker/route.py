"""Which nodes hold an event's recipients: the routing of the Redis broker.

Each node reads its own channel ``{prefix}events:{node}`` and the shared
one ``{prefix}events``. Presence keeps, per node, the set
``{prefix}routes:{node}`` of the users with a socket there, and writes a
user into it before that user's socket gets ``auth_ok``
(``Presence.announce``). So for a batch of events, one script call
(``ROUTE``) asks every other node's set about the batch's users, and the
batch costs one PUBLISH per node that holds a recipient (not per user,
not per event), and nothing to the rest.

Why no event is missed live: an event is committed before it is routed,
and routed after any route written before it. A socket whose route was
written before the routing read gets the event on its node; one whose
route came later got ``auth_ok`` after the commit, and its client's
catch-up (``after`` its last seq) finds the event in SQL.

The script falls back to the shared channel, for the whole batch:

- while the routing table may be incomplete: for ``warm_up`` seconds after
  Redis lost it (a restart without persistence, a FLUSHALL; first start
  too), long enough for every live node to notice and write its set again
  (presence checks the marker of its hash on every lease);
- when a node of an earlier version (its presence hash has no ``~routed``
  marker: it reads only the shared channel) holds a recipient: a rolling
  upgrade loses no live event.

On a Redis Cluster the registry and every node's presence keys carry the
deployment's hash tag, so the script reads one slot; each node's channel
carries the node's own tag instead (``sharded_channel``), and the broker
SPUBLISHes to it: an event crosses only the shard that owns that channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tidings.events import (
    ConversationAdded,
    ConversationRemoved,
    EntryChanged,
    Event,
    MessageCreated,
    Pushed,
    ReadMoved,
    SessionRevoked,
    TypingStarted,
)
from tidings.ids import UserId
from tidings.nodes import (
    ROUTED_FIELD,
    presence_key,
    registry_key,
    routes_key,
    routing_since_key,
)

# Users per command inside the script: Lua's unpack() overflows its C stack near 8,000.
_CHUNK = 4000

# KEYS: the registry, ``{prefix}routing:since`` (when the table was found lost).
# ARGV: prefix, this node, warm-up seconds, the batch's users joined by commas (one
# argument: redis-py packs each argument in Python, at a cost per argument).
# It also reads every node's presence hash and routes set (nodes.py's names),
# which it learns from the registry: on a Cluster all of them carry the
# deployment's hash tag, so they live in the slot of the keys it declares.
# Returns {0} for "use the shared channel", else {1, node, found, node, found, ...}:
# every other routed node, with one 1 or 0 per user for whether it holds them.
ROUTE = """
local prefix, me, warm = ARGV[1], ARGV[2], tonumber(ARGV[3])
local since_key = KEYS[2]
local now = tonumber(redis.call('TIME')[1])
local since = redis.call('GET', since_key)
if not since then
  redis.call('SET', since_key, now)
  return {0}
end
if now - tonumber(since) < warm then
  return {0}
end
local users = {}
for user in string.gmatch(ARGV[4], '[^,]+') do users[#users + 1] = user end
local out = {1}
for _, node in ipairs(redis.call('HKEYS', KEYS[1])) do
  if node ~= me then
    local presence = prefix .. 'presence:' .. node
    local routed = redis.call('HEXISTS', presence, 'MARKER') == 1
    local found = {}
    for first = 1, #users, CHUNK do
      local last = math.min(first + CHUNK - 1, #users)
      if routed then
        local some = redis.call('SMISMEMBER', prefix .. 'routes:' .. node,
                                unpack(users, first, last))
        if first == 1 then
          found = some
        else
          for j = 1, #some do found[#found + 1] = some[j] end
        end
      else
        -- A node of an earlier version, or one whose lease ran out: its hash
        -- is all there is. Holding a recipient, it hears only the shared channel.
        local counts = redis.call('HMGET', presence, unpack(users, first, last))
        for j = 1, #counts do
          if counts[j] then return {0} end
        end
      end
    end
    if routed then
      out[#out + 1] = node
      out[#out + 1] = found
    end
  end
end
return out
""".replace("CHUNK", str(_CHUNK)).replace("MARKER", ROUTED_FIELD)
# The script spells out nodes.py's key names; they must not drift apart.
assert presence_key("P", "N") == "Ppresence:N" and routes_key("P", "N") == "Proutes:N"

# KEYS: channels, ARGV: one message for each. One script call is atomic, as a
# MULTI of PUBLISHes is on one server; a Cluster client refuses that MULTI.
PUBLISH_EACH = """
for i = 1, #KEYS do redis.call('PUBLISH', KEYS[i], ARGV[i]) end
return #KEYS
"""


def route_keys(prefix: str) -> list[str]:
    """The keys the script declares (its slot on a Cluster)."""
    return [registry_key(prefix), routing_since_key(prefix)]


def route_arguments(prefix: str, node: str, warm_up: float, users: Sequence[UserId]) -> list[str]:
    """The script's ARGV for a batch whose users are ``users``."""
    return [prefix, node, str(warm_up), ",".join(map(str, users))]


def channel(prefix: str, node: str) -> str:
    """The channel only ``node`` reads, on one Redis server."""
    return f"{prefix}events:{node}"


def sharded_channel(prefix: str, node: str) -> str:
    """The channel only ``node`` reads, on a Cluster: the node's id is its hash
    tag, so the nodes' channels spread over the shards (``prefix`` is the plain
    one, without the deployment's tag)."""
    return f"{prefix}events:{{{node}}}"


def shared_channel(prefix: str) -> str:
    """The channel every node reads."""
    return f"{prefix}events"


def audience(event: Event) -> tuple[UserId, ...] | None:
    """The users an event is for, or None when every node must hear it.

    Besides the hub, a node's caches listen: a token revoked anywhere, and
    a group's membership changing (the typing cache keeps the members of
    groups whose members may be on any node), reach every node.
    """
    if isinstance(event, MessageCreated | ReadMoved | TypingStarted):
        return event.recipients
    if isinstance(event, EntryChanged):
        return (event.user,)
    if isinstance(event, ConversationAdded):
        return None if event.conversation.group_id is not None else (event.user,)
    if isinstance(event, ConversationRemoved | SessionRevoked):
        return None
    if isinstance(event, Pushed):
        return event.users
    raise TypeError(f"no routing rule for {type(event).__name__}")


def batch_users(events: Iterable[Event]) -> list[UserId]:
    """The distinct users the batch's events are for, in first-seen order."""
    seen: dict[UserId, None] = {}
    done: set[int] = set()  # a group's events share one recipients tuple: read it once
    for event in events:
        users = audience(event)
        if users is not None and id(users) not in done:
            done.add(id(users))
            seen.update(dict.fromkeys(users))
    return list(seen)


def split(
    events: Sequence[Event], users: Sequence[UserId], answer: Sequence[Any]
) -> dict[str, list[int]] | None:
    """Per node, the indexes of the events it must get, in publish order.

    ``answer`` is what ``ROUTE`` returned for ``users``; None means the
    whole batch goes on the shared channel.
    """
    if not answer or int(answer[0]) == 0:
        return None
    holders: dict[UserId, list[str]] = {}
    nodes: list[str] = []
    for at in range(1, len(answer), 2):
        raw_node, found = answer[at], answer[at + 1]
        node = raw_node.decode() if isinstance(raw_node, bytes) else str(raw_node)
        nodes.append(node)
        for user, held in zip(users, found, strict=True):
            if held:
                holders.setdefault(user, []).append(node)
    plan: dict[str, list[int]] = {}
    # By the recipients tuple's identity: the events of one group share it
    # within a batch, and a big group's members are looked up once.
    targets_of: dict[int, Iterable[str]] = {}
    for index, event in enumerate(events):
        users_ = audience(event)
        if users_ is None:
            targets: Iterable[str] = nodes
        else:
            known = targets_of.get(id(users_))
            if known is None:
                known = targets_of[id(users_)] = _targets(users_, holders, len(nodes))
            targets = known
        for node in targets:
            plan.setdefault(node, []).append(index)
    return plan


def _targets(
    users: tuple[UserId, ...], holders: dict[UserId, list[str]], node_count: int
) -> list[str]:
    found: dict[str, None] = {}
    for user in users:
        for node in holders.get(user, ()):
            found[node] = None
        if len(found) == node_count:
            break  # every node already: the rest of a big group changes nothing
    return list(found)
