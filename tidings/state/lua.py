"""The Lua scripts of the Redis chat list: each one atomic, none a read-modify-write from Python.

Keys, under ``{prefix}cl:``:

- ``epoch``: the namespace in use. Every other key lives under
  ``{epoch}:``. Changing it drops the whole cache at once (after a node
  died or lost Redis between a commit and its update); a FLUSHALL drops it
  too, and the first script to run after one opens a new namespace.
- ``{epoch}:c:{conversation}``: hash ``s`` last seq, ``t`` its time (ISO,
  so strings sort by time), ``m`` the last message (msgpack).
- ``{epoch}:u:{user}``: hash conversation -> the user's read seq, plus
  ``j:{conversation}`` -> ``joined_seq|joined_at`` for groups, plus ``~``
  so that a user in no conversation still has a (complete) hash. The set
  of fields is the user's conversation index.
- ``{epoch}:cg:{conversation}``, ``{epoch}:ug:{user}``: generations,
  bumped whenever an update finds the hash absent or drops it. A rebuild
  from SQL is installed only if the generation (and epoch) it read before
  its SQL query are unchanged, so a rebuild can never overwrite an update
  committed after its snapshot.

Updates only move positions forward (``s`` and read seqs are maxima), so
applies from several nodes may arrive in any order. Sequence numbers go
through Lua numbers (doubles): exact up to 2**53.
"""

from __future__ import annotations

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
"""

# ARGV: prefix, ttl, n, n x (conversation, seq, time, message), then
# (user, conversation, read seq, create) until the end. ``create`` is "1"
# where the update may add the conversation to the user's index (the first
# message of a private chat); group membership goes through INVALIDATE.
APPLY = (
    _EPOCH
    + """
local p, ttl = ARGV[1], ARGV[2]
local base = p .. epoch(p) .. ':'
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local ck = base .. 'c:' .. ARGV[i]
  local cur = redis.call('HGET', ck, 's')
  if cur then
    if tonumber(ARGV[i + 1]) > tonumber(cur) then
      redis.call('HSET', ck, 's', ARGV[i + 1], 't', ARGV[i + 2], 'm', ARGV[i + 3])
      redis.call('EXPIRE', ck, ttl)
    end
  else
    local g = base .. 'cg:' .. ARGV[i]
    redis.call('INCR', g)
    redis.call('EXPIRE', g, ttl)
  end
  i = i + 4
end
while i <= #ARGV do
  local uk = base .. 'u:' .. ARGV[i]
  if redis.call('EXISTS', uk) == 1 then
    local cur = redis.call('HGET', uk, ARGV[i + 1])
    if (cur and tonumber(ARGV[i + 2]) > tonumber(cur)) or (not cur and ARGV[i + 3] == '1') then
      redis.call('HSET', uk, ARGV[i + 1], ARGV[i + 2])
    end
  else
    local g = base .. 'ug:' .. ARGV[i]
    redis.call('INCR', g)
    redis.call('EXPIRE', g, ttl)
  end
  i = i + 4
end
return 1
"""
)

# ARGV: prefix, ttl, user...
INVALIDATE = (
    _EPOCH
    + """
local p, ttl = ARGV[1], ARGV[2]
local base = p .. epoch(p) .. ':'
for i = 3, #ARGV do
  redis.call('DEL', base .. 'u:' .. ARGV[i])
  local g = base .. 'ug:' .. ARGV[i]
  redis.call('INCR', g)
  redis.call('EXPIRE', g, ttl)
end
return 1
"""
)

# ARGV: prefix, user, limit, ttl. Answers one of
#   {epoch, 'u', generation}: the user's index is absent;
#   {epoch, 'c', conversation, generation, ...}: these conversations are absent;
#   {epoch, 'ok', 7 x (conversation, read seq, join, seq, time, message, peer read)}
# newest first (time, then conversation id); message and peer read are ''
# when not visible or not known.
READ = (
    _EPOCH
    + """
local p, uid, limit, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local e = epoch(p)
local base = p .. e .. ':'
local uk = base .. 'u:' .. uid
local flat = redis.call('HGETALL', uk)
if #flat == 0 then
  return {e, 'u', redis.call('GET', base .. 'ug:' .. uid) or '0'}
end
redis.call('EXPIRE', uk, ttl)
local reads, joins, cids = {}, {}, {}
for i = 1, #flat, 2 do
  local f = flat[i]
  if string.sub(f, 1, 2) == 'j:' then
    joins[string.sub(f, 3)] = flat[i + 1]
  elseif f ~= '~' then
    reads[f] = flat[i + 1]
    cids[#cids + 1] = f
  end
end
local rows, missing = {}, {}
for _, cid in ipairs(cids) do
  local h = redis.call('HMGET', base .. 'c:' .. cid, 's', 't')
  if not h[1] then
    missing[#missing + 1] = cid
    missing[#missing + 1] = redis.call('GET', base .. 'cg:' .. cid) or '0'
  elseif #missing == 0 then
    local js, ja = 0, ''
    local jv = joins[cid]
    if jv then
      local bar = string.find(jv, '|', 1, true)
      js = tonumber(string.sub(jv, 1, bar - 1))
      ja = string.sub(jv, bar + 1)
    end
    if tonumber(h[1]) > js then
      rows[#rows + 1] = {cid, h[2], true, h[1]}
    else
      rows[#rows + 1] = {cid, ja, false, h[1]}
    end
  end
end
if #missing > 0 then
  local out = {e, 'c'}
  for _, v in ipairs(missing) do out[#out + 1] = v end
  return out
end
table.sort(rows, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] < b[1]
end)
local out = {e, 'ok'}
for i = 1, math.min(limit, #rows) do
  local cid = rows[i][1]
  local m = ''
  if rows[i][3] then m = redis.call('HGET', base .. 'c:' .. cid, 'm') or '' end
  local peer_read = ''
  local a, b = string.match(cid, '^p:(%d+)%-(%d+)$')
  if a then
    local peer = a
    if a == uid then peer = b end
    peer_read = redis.call('HGET', base .. 'u:' .. peer, cid) or ''
  end
  out[#out + 1] = cid
  out[#out + 1] = reads[cid]
  out[#out + 1] = joins[cid] or ''
  out[#out + 1] = rows[i][4]
  out[#out + 1] = rows[i][2]
  out[#out + 1] = m
  out[#out + 1] = peer_read
end
return out
"""
)

# ARGV: prefix, epoch, user, generation, ttl, (field, value)...
INSTALL = """
local p, e, uid, gen, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('GET', p .. 'epoch') ~= e then return 0 end
local base = p .. e .. ':'
local uk = base .. 'u:' .. uid
if redis.call('EXISTS', uk) == 1 then return 1 end
if (redis.call('GET', base .. 'ug:' .. uid) or '0') ~= gen then return 0 end
redis.call('HSET', uk, '~', '1')
for i = 6, #ARGV, 2 do
  redis.call('HSET', uk, ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', uk, ttl)
return 1
"""

# ARGV: prefix, epoch, ttl, (conversation, generation, seq, time, message)...
FILL = """
local p, e, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', p .. 'epoch') ~= e then return 0 end
local base = p .. e .. ':'
for i = 4, #ARGV, 5 do
  local ck = base .. 'c:' .. ARGV[i]
  if redis.call('EXISTS', ck) == 0
      and (redis.call('GET', base .. 'cg:' .. ARGV[i]) or '0') == ARGV[i + 1] then
    redis.call('HSET', ck, 's', ARGV[i + 2], 't', ARGV[i + 3], 'm', ARGV[i + 4])
    redis.call('EXPIRE', ck, ttl)
  end
end
return 1
"""

# ARGV: prefix. Drops the whole cache: a new namespace.
BUMP = (
    _EPOCH
    + """
return new_epoch(ARGV[1], redis.call('GET', ARGV[1] .. 'epoch') or '')
"""
)

# ARGV: prefix, nodes hash, node, its last report. A node that stopped
# reporting may have died between a commit and its update: drop the cache,
# once (the report still being the one seen makes this run once per death).
REAP = (
    _EPOCH
    + """
if redis.call('HGET', ARGV[2], ARGV[3]) ~= ARGV[4] then return 0 end
new_epoch(ARGV[1], redis.call('GET', ARGV[1] .. 'epoch') or '')
redis.call('HDEL', ARGV[2], ARGV[3])
return 1
"""
)
