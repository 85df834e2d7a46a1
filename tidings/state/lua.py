"""The Lua scripts of the Redis chat list: each one atomic, none a read-modify-write from Python.

Keys, under the namespace ``{prefix}cl2:{identity}.{generation}:`` of the
database the copy is built from (``state.binding``; the scripts take it as
their ``prefix`` argument, and declare its ``epoch`` as KEYS[1]). Two
layouts name them (``ckey`` and ``ukey`` in each script):

- one slot (one Redis server): ``{namespace}{epoch}:h:{conversation}``,
  ``{namespace}{epoch}:u:{user}``, ...; the scripts read the epoch
  themselves;
- spread (a Redis Cluster, docs/redis-cluster-plan.md section 6):
  ``{{namespace}c:{conversation}}{epoch}:h``, ``{{namespace}u:{user}}{epoch}:u``:
  a conversation's keys share its own slot, a user's theirs, so the copy
  spreads over the primaries. The epoch stays one key in the namespace's
  slot (``{namespace}`` in braces); the caller GETs it before its scripts
  and names it in their ARGV. The ``S_`` scripts run one call per primary
  for the keys that primary owns (``allow-cross-slot-keys``).

- ``epoch``: the namespace in use. Every other key lives under
  ``{epoch}:``. Changing it drops the whole cache at once (after a node
  died or lost Redis between a commit and its update); a FLUSHALL drops it
  too, and the first script to run after one opens a new namespace.
- ``primary``: the replication id of the Redis primary that last checked
  in (``FOLLOW_PRIMARY``): a new one drops the cache, as after a death.
- ``{epoch}:reaped``: dead node -> the report the cache was dropped for.
- ``{epoch}:h:{conversation}``: ``{last seq}|{shown seq}|{version}|{time}``:
  the last seq (every entry), the seq of the entry the list shows (the
  newest that is not an edit notice), the seq of the last entry that changed
  it (itself, or an edit notice), and its time (ISO, so strings sort by
  time); plain strings, so one MGET fetches a thousand.
- ``{epoch}:m:{conversation}``: the shown message as it reads now (msgpack).
- ``{epoch}:x:{conversation}``: sorted set of the seqs that do not count as
  unread (notices, recalled messages), score = seq; ``~`` (score 0) marks
  it complete. unread = last seq - read seq - ZCOUNT(x, (read, +inf).
- ``{epoch}:n:{conversation}``: sorted set of mentions, ``{seq}:{user}``
  (user 0 for @all), score = seq, ``~`` likewise; a mention counts while its
  seq is above the read seq and not in ``x`` (recalled).
- ``{epoch}:t:{conversation}``: a group's name, ``{seq}|{name}``: the seq of
  the notice that set it (``created``, ``renamed``: PROTOCOL-v2 §6), or the
  last seq of the SQL read it came from, so a rename applied by any node
  replaces it and an older one never does. h, m, x, n and t of a
  conversation are filled and dropped together (t for groups only).
- ``{epoch}:u:{user}``: hash conversation -> the user's read seq, plus
  ``j:{conversation}`` -> ``joined_seq|joined_at`` for groups, plus ``~``
  so that a user in no conversation still has a (complete) hash. The set
  of fields is the user's conversation index.
- ``{epoch}:cg:{conversation}``, ``{epoch}:ug:{user}``: generations,
  bumped whenever an update finds the hash absent or drops it. A rebuild
  from SQL is installed only if the generation (and epoch) it read before
  its SQL query are unchanged, so a rebuild can never overwrite an update
  committed after its snapshot.

Updates only move positions forward (last seqs and read seqs are maxima,
the shown entry is the greatest (shown seq, version), x and n only grow),
so applies from several nodes may arrive in any order. Sorting a list is
left to the node that reads it (Redis is shared, nodes scale out).
Sequence numbers go through Lua numbers (doubles): exact up to 2**53.
"""

from __future__ import annotations

from tidings.redis_target import PRIMARY_ID

# Opens a namespace when there is none (a fresh or flushed Redis).
_EPOCH = """
local function new_epoch(p, old)
  local now = redis.call('TIME')
  local e = now[1] .. string.format('%06d', tonumber(now[2]))
  if e == old then e = e .. 'x' end
  redis.call('SET', p .. 'epoch', e)
  return e
end
local function epoch(p)
  return redis.call('GET', p .. 'epoch') or new_epoch(p, '')
end
-- A key is absent or dropped: any rebuild of it that began before is void.
local function bump(generation, ttl)
  redis.call('INCR', generation)
  redis.call('EXPIRE', generation, ttl)
end
"""

# The two layouts' key names; ``family`` is h, m, x, n, t or cg of a
# conversation, u or ug of a user. Defined once the script has its
# ``base`` (one slot) or its ``plain`` namespace and epoch ``e`` (spread).
# ``present_at``: the score of the member '~' that keeps x and n present
# when empty. At +inf (spread), any read of the seqs above a read seq shows
# it too, so the read tells an evicted set without an EXISTS of its own
# (one call a conversation fewer: they are one slot each, no EXISTS of many).
_ONE_SLOT = """
local function ckey(family, cid) return base .. family .. ':' .. cid end
local function ukey(family, uid) return base .. family .. ':' .. uid end
local present_at = 0
"""
_SPREAD = """
local function ckey(family, cid) return '{' .. plain .. 'c:' .. cid .. '}' .. e .. ':' .. family end
local function ukey(family, uid) return '{' .. plain .. 'u:' .. uid .. '}' .. e .. ':' .. family end
local present_at = '+inf'
"""
# A spread script touches the keys of several slots, all on the primary it
# is sent to; it declares one of them (its routing key) and names the rest.
_CROSS_SLOT = "#!lua flags=allow-cross-slot-keys\n"

# What each operation does to one conversation or one user, whatever the layout.
_OPS = """
-- APPLY's share for the conversation whose 9 values begin at ARGV[a].
local function apply_head(a, ttl)
  local cid = ARGV[a]
  local hk, xk, nk, tk = ckey('h', cid), ckey('x', cid), ckey('n', cid), ckey('t', cid)
  local group = string.sub(cid, 1, 2) == 'g:'
  local cur = redis.call('GET', hk)
  if cur and redis.call('EXISTS', xk) == 1 and redis.call('EXISTS', nk) == 1
      and (not group or redis.call('EXISTS', tk) == 1) then
    local last, shown, version, at = string.match(cur, '^(%d+)|(%d+)|(%d+)|(.*)$')
    if tonumber(ARGV[a + 1]) > tonumber(last) then last = ARGV[a + 1] end
    local ns, nv = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    if ns > 0 and (ns > tonumber(shown) or (ns == tonumber(shown) and nv > tonumber(version))) then
      shown, version, at = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
      redis.call('SET', ckey('m', cid), ARGV[a + 5], 'EX', ttl)
    end
    redis.call('SET', hk, last .. '|' .. shown .. '|' .. version .. '|' .. at, 'EX', ttl)
    for seq in string.gmatch(ARGV[a + 6], '%d+') do
      redis.call('ZADD', xk, seq, seq)
    end
    for seq, user in string.gmatch(ARGV[a + 7], '(%d+):(%d+)') do
      redis.call('ZADD', nk, seq, seq .. ':' .. user)
    end
    redis.call('EXPIRE', xk, ttl)
    redis.call('EXPIRE', nk, ttl)
    if group then
      local named = tonumber(string.match(ARGV[a + 8], '^(%d+)|') or '0')
      if named > tonumber(string.match(redis.call('GET', tk), '^(%d+)|')) then
        redis.call('SET', tk, ARGV[a + 8], 'EX', ttl)
      else
        redis.call('EXPIRE', tk, ttl)
      end
    end
  else
    if cur then redis.call('DEL', hk) end
    bump(ckey('cg', cid), ttl)
  end
end

-- APPLY's share for (user, conversation, read seq, create) at ARGV[a].
local function apply_read(a, ttl)
  local uk = ukey('u', ARGV[a])
  if redis.call('EXISTS', uk) == 1 then
    local cur = redis.call('HGET', uk, ARGV[a + 1])
    if (cur and tonumber(ARGV[a + 2]) > tonumber(cur)) or (not cur and ARGV[a + 3] == '1') then
      redis.call('HSET', uk, ARGV[a + 1], ARGV[a + 2])
    end
  else
    bump(ukey('ug', ARGV[a]), ttl)
  end
end

local function invalidate(uid, ttl)
  redis.call('DEL', ukey('u', uid))
  bump(ukey('ug', uid), ttl)
end

-- The user's index: {'u', generation} when absent, else {'ok', fields}.
local function user_index(uid, ttl)
  local uk = ukey('u', uid)
  local flat = redis.call('HGETALL', uk)
  if #flat == 0 then
    return {'u', redis.call('GET', ukey('ug', uid)) or '0'}
  end
  redis.call('EXPIRE', uk, ttl)
  return {'ok', flat}
end

-- INSTALL: the user's index from SQL, unless an update voided its read.
local function install(uid, gen, ttl, from)
  local uk = ukey('u', uid)
  if redis.call('EXISTS', uk) == 1 then return 1 end
  if (redis.call('GET', ukey('ug', uid)) or '0') ~= gen then return 0 end
  redis.call('HSET', uk, '~', '1')
  for i = from, #ARGV, 2 do
    redis.call('HSET', uk, ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', uk, ttl)
  return 1
end

-- FILL's share for the conversation whose 7 values begin at ARGV[a].
local function fill(a, ttl)
  local cid = ARGV[a]
  local hk, xk, nk = ckey('h', cid), ckey('x', cid), ckey('n', cid)
  if redis.call('EXISTS', hk) == 0
      and (redis.call('GET', ckey('cg', cid)) or '0') == ARGV[a + 1] then
    redis.call('SET', hk, ARGV[a + 2], 'EX', ttl)
    if ARGV[a + 3] ~= '' then
      redis.call('SET', ckey('m', cid), ARGV[a + 3], 'EX', ttl)
    end
    redis.call('DEL', xk, nk)
    redis.call('ZADD', xk, present_at, '~')
    redis.call('ZADD', nk, present_at, '~')
    for seq in string.gmatch(ARGV[a + 4], '%d+') do
      redis.call('ZADD', xk, seq, seq)
    end
    for seq, user in string.gmatch(ARGV[a + 5], '(%d+):(%d+)') do
      redis.call('ZADD', nk, seq, seq .. ':' .. user)
    end
    redis.call('EXPIRE', xk, ttl)
    redis.call('EXPIRE', nk, ttl)
    if ARGV[a + 6] ~= '' then
      redis.call('SET', ckey('t', cid), ARGV[a + 6], 'EX', ttl)
    end
  end
end

-- A page entry's head, shown message and name, or false when one of them,
-- x or n was evicted without the head (dropped, as uncounted does).
local function shown_entry(cid, join, ttl)
  local head = redis.call('GET', ckey('h', cid))
  if not head then return false end
  local message = redis.call('GET', ckey('m', cid))
  local shown = tonumber(string.match(head, '^%d+|(%d+)'))
  local joined = tonumber(string.match(join, '^%d+') or '0')
  local named = ''
  if string.sub(cid, 1, 2) == 'g:' then named = redis.call('GET', ckey('t', cid)) end
  if (not message and shown > joined) or not named
      or redis.call('EXISTS', ckey('x', cid)) == 0 or redis.call('EXISTS', ckey('n', cid)) == 0 then
    redis.call('DEL', ckey('h', cid))
    bump(ckey('cg', cid), ttl)
    return false
  end
  return {head, message or '', named}
end
"""

# -- one slot (one Redis server) ---------------------------------------------

# The head of the one-slot scripts that write (ARGV: prefix, ttl, ...): they
# open a namespace when there is none.
_ONE_SLOT_WRITE = (
    _EPOCH
    + """
local p, ttl = ARGV[1], ARGV[2]
local base = p .. epoch(p) .. ':'
"""
    + _ONE_SLOT
    + _OPS
)

# ARGV: prefix, ttl, n, n x (conversation, last seq, shown seq, version, time,
# message, uncounted seqs "a,b", mentions "seq:user,...", name "seq|name" or ''
# when the batch does not name the group), then (user,
# conversation, read seq, create) until the end. shown seq 0: the batch has no
# candidate for the shown entry. ``create`` is "1" where the update may add the
# conversation to the user's index (the first message of a private chat);
# group membership goes through INVALIDATE.
APPLY = (
    _ONE_SLOT_WRITE
    + """
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  apply_head(i, ttl)
  i = i + 9
end
while i <= #ARGV do
  apply_read(i, ttl)
  i = i + 4
end
return 1
"""
)

# ARGV: prefix, ttl, user...
INVALIDATE = (
    _ONE_SLOT_WRITE
    + """
for i = 3, #ARGV do
  invalidate(ARGV[i], ttl)
end
return 1
"""
)

# ARGV: prefix, user, ttl. The user's whole index, for the node to sort:
#   {epoch, 'u', generation}: the index is absent;
#   {epoch, 'c', conversation, generation, ...}: these heads are absent;
#   {epoch, 'ok', {field, value, ...}, {head, ...}}: the index hash, and the
#   head of each conversation field in the order the hash gave them.
INDEX = (
    _EPOCH
    + """
local p, uid, ttl = ARGV[1], ARGV[2], ARGV[3]
local e = epoch(p)
local base = p .. e .. ':'
"""
    + _ONE_SLOT
    + _OPS
    + """
local got = user_index(uid, ttl)
if got[1] == 'u' then return {e, 'u', got[2]} end
local flat = got[2]
local keys, cids = {}, {}
for i = 1, #flat, 2 do
  local f = flat[i]
  if f ~= '~' and string.sub(f, 1, 2) ~= 'j:' then
    cids[#cids + 1] = f
    keys[#keys + 1] = ckey('h', f)
  end
end
local heads, out = {}, {e, 'c'}
for s = 1, #keys, 500 do
  local part = redis.call('MGET', unpack(keys, s, math.min(s + 499, #keys)))
  for j = 1, #part do
    local n = s + j - 1
    heads[n] = part[j]
    if not part[j] then
      out[#out + 1] = cids[n]
      out[#out + 1] = redis.call('GET', ckey('cg', cids[n])) or '0'
    end
  end
end
if #out > 2 then return out end
return {e, 'ok', flat, heads}
"""
)

# ARGV: prefix, epoch, user, ttl, conversation... The entries of one page, read
# together: 8 x (read seq, join, head, message, peer read, uncounted above the
# read seq, mentioned, group name), '' where there is none; 0 when the index
# changed since INDEX (read it again). A conversation whose visible message, x,
# n or t was evicted without its head drops the head, so the next INDEX refills
# them all.
PAGE = (
    _EPOCH
    + """
local p, e, uid, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('GET', p .. 'epoch') ~= e then return 0 end
local base = p .. e .. ':'
"""
    + _ONE_SLOT
    + _OPS
    + """
local uk = ukey('u', uid)
local out = {}
for i = 5, #ARGV do
  local cid = ARGV[i]
  local read = redis.call('HGET', uk, cid)
  if not read then return 0 end
  local join = redis.call('HGET', uk, 'j:' .. cid) or ''
  local entry = shown_entry(cid, join, ttl)
  if not entry then return 0 end
  local xk, nk = ckey('x', cid), ckey('n', cid)
  local peer_read = ''
  local a, b = string.match(cid, '^p:(%d+)%-(%d+)$')
  if a then
    local peer = a
    if a == uid then peer = b end
    peer_read = redis.call('HGET', ukey('u', peer), cid) or ''
  end
  local above = '(' .. read
  local mentioned = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', nk, above, '+inf')) do
    local seq, user = string.match(m, '^(%d+):(%d+)$')
    if seq and (user == uid or user == '0') and not redis.call('ZSCORE', xk, seq) then
      mentioned = mentioned + 1
    end
  end
  out[#out + 1] = read
  out[#out + 1] = join
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2]
  out[#out + 1] = peer_read
  out[#out + 1] = redis.call('ZCOUNT', xk, above, '+inf')
  out[#out + 1] = mentioned
  out[#out + 1] = entry[3]
end
return out
"""
)

# ARGV: prefix, epoch, ttl, (conversation, read seq)... For PROTOCOL-v2 §5's
# total_unread: how many seqs above each read seq do not count (ZCOUNT of x);
# 0 when the namespace changed, or an x was evicted without its head: that
# head is dropped, as PAGE does, so the next INDEX refills them both.
UNCOUNTED = (
    _EPOCH
    + """
local p, e, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', p .. 'epoch') ~= e then return 0 end
local base = p .. e .. ':'
"""
    + _ONE_SLOT
    + """
local sets = {}
for i = 4, #ARGV, 2 do
  sets[#sets + 1] = ckey('x', ARGV[i])
end
-- One EXISTS for them all (none evicted, the usual case); else find which.
local present = 0
for s = 1, #sets, 500 do
  present = present + redis.call('EXISTS', unpack(sets, s, math.min(s + 499, #sets)))
end
if present < #sets then
  for i = 4, #ARGV, 2 do
    local cid = ARGV[i]
    if redis.call('EXISTS', ckey('x', cid)) == 0 then
      redis.call('DEL', ckey('h', cid))
      bump(ckey('cg', cid), ttl)
      return 0
    end
  end
end
local out = {}
for n = 1, #sets do
  out[n] = redis.call('ZCOUNT', sets[n], '(' .. ARGV[3 + 2 * n], '+inf')  -- its read seq
end
return out
"""
)

# ARGV: prefix, epoch, user, generation, ttl, (field, value)...
INSTALL = (
    _EPOCH
    + """
local p, e, uid, gen, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('GET', p .. 'epoch') ~= e then return 0 end
local base = p .. e .. ':'
"""
    + _ONE_SLOT
    + _OPS
    + """
return install(uid, gen, ttl, 6)
"""
)

# ARGV: prefix, epoch, ttl, (conversation, generation, head, message,
# uncounted seqs "a,b", mentions "seq:user,...", name "seq|name" or '')...
FILL = (
    _EPOCH
    + """
local p, e, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', p .. 'epoch') ~= e then return 0 end
local base = p .. e .. ':'
"""
    + _ONE_SLOT
    + _OPS
    + """
for i = 4, #ARGV, 7 do
  fill(i, ttl)
end
return 1
"""
)

# -- spread (a Redis Cluster): one call per primary, for the keys it owns ------
#
# Every S_ script: KEYS[1] any key of the call's slots (it routes the call),
# ARGV[1] the plain namespace (``{prefix}cl2:{identity}.{generation}:``, no
# braces), ARGV[2] the epoch the caller read, ARGV[3] the key TTL, then as
# below. None reads the epoch: a call made with one since dropped writes keys
# nobody reads any more (docs/redis-cluster-plan.md section 6).

# The values of an index hash's fields given as one space-separated argument
# (a thousand cost the client more as arguments than as one string).
_READ_SEQS = """
local function read_seqs(uk, joined)
  local fields, out = {}, {}
  for cid in string.gmatch(joined, '%S+') do
    fields[#fields + 1] = cid
  end
  for s = 1, #fields, 500 do
    local part = redis.call('HMGET', uk, unpack(fields, s, math.min(s + 499, #fields)))
    for j = 1, #part do
      out[#out + 1] = part[j]
    end
  end
  return out
end
"""

_SPREAD_HEAD = (
    _CROSS_SLOT
    + _EPOCH
    + _READ_SEQS
    + """
local plain, e, ttl = ARGV[1], ARGV[2], ARGV[3]
"""
    + _SPREAD
    + _OPS
)


def _spread_each(call: str, step: int) -> str:
    """A spread script that runs ``call`` for each item of ``step`` values
    from ARGV[4] (``i`` its first)."""
    return _SPREAD_HEAD + f"\nfor i = 4, #ARGV, {step} do\n  {call}\nend\nreturn 1\n"


# Then 9 values per conversation, as APPLY's.
S_APPLY_HEADS = _spread_each("apply_head(i, ttl)", 9)

# Then (user, conversation, read seq, create)..., as APPLY's.
S_APPLY_READS = _spread_each("apply_read(i, ttl)", 4)

# Then user...
S_INVALIDATE = _spread_each("invalidate(ARGV[i], ttl)", 1)

# Then the user: {'u', generation} or {'ok', fields}.
S_USER_INDEX = (
    _SPREAD_HEAD
    + """
return user_index(ARGV[4], ttl)
"""
)

# Then user, generation, (field, value)...
S_INSTALL = (
    _SPREAD_HEAD
    + """
return install(ARGV[4], ARGV[5], ttl, 6)
"""
)

# Then the conversations, space-separated (one argument: a thousand cost the
# client more as arguments than as one string): {'ok', head...} in that
# order, or {'c', conversation, generation, ...} for those whose head is absent.
S_HEADS = (
    _SPREAD_HEAD
    + """
local heads, out = {'ok'}, {'c'}
for cid in string.gmatch(ARGV[4], '%S+') do
  local head = redis.call('GET', ckey('h', cid))
  heads[#heads + 1] = head
  if not head then
    out[#out + 1] = cid
    out[#out + 1] = redis.call('GET', ckey('cg', cid)) or '0'
  end
end
if #out > 1 then return out end
return heads
"""
)

# Then 7 values per conversation, as FILL's.
S_FILL = _spread_each("fill(i, ttl)", 7)

# Then the number of page entries n, n x (conversation, join, read seq),
# then "conversation read-seq ..." (one argument, space-separated) of the
# entries with seqs above their read seq (for total_unread), then optionally
# a user and conversations (space-separated) whose read seqs to read, when
# the user's slot is on this primary. Answers {page, above, reads}: per page
# entry {head, message, name, x above its read seq, n above it}, per pair x
# above its read seq, each with '~' (present_at), and the read seqs asked
# for (S_READ_SEQS); 0 as PAGE when something was evicted. The read seqs
# given are the caller's first read of the index; it counts these seqs
# against the ones read after the heads (they only move up), so that a head
# is never newer than the read seq it is counted against: seqs, not counts.
S_READ = (
    _SPREAD_HEAD
    + """
local function dropped(cid)
  redis.call('DEL', ckey('h', cid))
  bump(ckey('cg', cid), ttl)
  return 0
end
local n = tonumber(ARGV[4])
local page, above = {}, {}
for i = 5, 4 + 3 * n, 3 do
  local cid = ARGV[i]
  local head = redis.call('GET', ckey('h', cid))
  if not head then return 0 end
  local message = redis.call('GET', ckey('m', cid))
  local shown = tonumber(string.match(head, '^%d+|(%d+)'))
  local joined = tonumber(string.match(ARGV[i + 1], '^%d+') or '0')
  local named = ''
  if string.sub(cid, 1, 2) == 'g:' then named = redis.call('GET', ckey('t', cid)) end
  local over = '(' .. ARGV[i + 2]
  local xs = redis.call('ZRANGEBYSCORE', ckey('x', cid), over, '+inf')
  local ns = redis.call('ZRANGEBYSCORE', ckey('n', cid), over, '+inf')
  if (not message and shown > joined) or not named or #xs == 0 or #ns == 0 then
    return dropped(cid)
  end
  page[#page + 1] = {head, message or '', named, xs, ns}
end
for cid, read in string.gmatch(ARGV[5 + 3 * n], '(%S+) (%S+)') do
  local xs = redis.call('ZRANGEBYSCORE', ckey('x', cid), '(' .. read, '+inf')
  if #xs == 0 then return dropped(cid) end
  above[#above + 1] = xs
end
local reads = {}
if ARGV[6 + 3 * n] then
  reads = read_seqs(ukey('u', ARGV[6 + 3 * n]), ARGV[7 + 3 * n])
end
return {page, above, reads}
"""
)

# KEYS[1] a user's index, ARGV[1] conversations, space-separated: their read
# seqs, as S_READ gives them when the user's slot is on one of its primaries.
S_READ_SEQS = (
    _READ_SEQS
    + """
return read_seqs(KEYS[1], ARGV[1])
"""
)

# -- the namespace (either layout: the epoch's slot) ----------------------------

# ARGV: prefix. Drops the whole cache: a new namespace.
BUMP = (
    _EPOCH
    + """
return new_epoch(ARGV[1], redis.call('GET', ARGV[1] .. 'epoch') or '')
"""
)

# KEYS: the epoch. ARGV: prefix, node, its last report. A node that stopped
# reporting may have died between a commit and its update: drop the cache,
# once per death (the new namespace records the report it was dropped for;
# the caller then takes the report out of the registry, ``FORGET``).
REAP = (
    _EPOCH
    + """
local reaped = ARGV[1] .. epoch(ARGV[1]) .. ':reaped'
if redis.call('HGET', reaped, ARGV[2]) == ARGV[3] then return 0 end
reaped = ARGV[1] .. new_epoch(ARGV[1], redis.call('GET', KEYS[1]) or '') .. ':reaped'
redis.call('HSET', reaped, ARGV[2], ARGV[3])
redis.call('EXPIRE', reaped, 86400)
return 1
"""
)

# KEYS: the node registry. ARGV: node, its last report. Takes the report out
# unless the node reported again meanwhile. Apart from REAP because on a
# Cluster the registry is in the deployment's slot, the cache in its own.
FORGET = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
"""

# KEYS: the epoch. ARGV: prefix. Drops the cache when another primary holds it
# than the one that answered this last time: a replica that took over may
# lack the writes of the failed primary's last moments. Answers 1 if it did.
FOLLOW_PRIMARY = (
    _EPOCH
    + f"""
local id = {PRIMARY_ID}
local key = ARGV[1] .. 'primary'
local seen = redis.call('GET', key)
if seen == id then return 0 end
redis.call('SET', key, id)
if not seen then return 0 end
new_epoch(ARGV[1], redis.call('GET', KEYS[1]) or '')
return 1
"""
)


def epoch_key(prefix: str) -> str:
    """The key every script declares: the namespace's epoch (its slot on a Cluster)."""
    return f"{prefix}epoch"
