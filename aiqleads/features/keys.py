"""The online store's key layout and its Lua scripts, shared by every client (the
synchronous `online.OnlineStore` and the gateway's asynchronous reader).

```
aiqleads:fs:v1:row:<view>:<version>:<entity id>    hash: the features, _event_ts
aiqleads:fs:v1:state:user:<user id>                hash: s (the fold state, JSON), _event_ts
aiqleads:fs:v1:meta:<view>:<version>               hash: the last materialization
aiqleads:fs:v1:availability:unavailable            set: leads whose status takes them out
aiqleads:fs:v1:availability:seq                    counter: +1 per change of that set
aiqleads:fs:v1:availability:log                    sorted set: lead -> seq of its last change
```

Every row carries ``_event_ts``, the event time its values hold as of; a write older than the
stored row is skipped, so a late materialization never overwrites newer streamed values.
"""

from __future__ import annotations

PREFIX = "aiqleads:fs:v1"
EVENT_TS = "_event_ts"
STATE_FIELD = "s"
UNAVAILABLE = f"{PREFIX}:availability:unavailable"
AVAILABILITY_SEQ = f"{PREFIX}:availability:seq"
AVAILABILITY_LOG = f"{PREFIX}:availability:log"
META_MATERIALIZED_AT = "materialized_at"
META_AS_OF = "as_of"
META_ROWS = "rows"


def row(view: str, version: int, entity_id: str) -> str:
    return f"{PREFIX}:row:{view}:{version}:{entity_id}"


def state(user_id: str) -> str:
    return f"{PREFIX}:state:user:{user_id}"


def meta(view: str, version: int) -> str:
    return f"{PREFIX}:meta:{view}:{version}"


# Writes one entity's rows (every materialized version of its views, and its fold state)
# as of an event time, replacing them whole.
# KEYS[1..n]: the hashes (KEYS[1] guards); KEYS[n+1..n+3]: the availability set, counter
# and log. ARGV[1]: event time; ARGV[2]: the guard's expected _event_ts ('-': absent; '' for no
# compare-and-set: then a stored time later than ARGV[1] skips the write); ARGV[3]: '' or '1'/'0' (the lead is
# available or not); ARGV[4]: the entity id; ARGV[5]: n; then per hash a field count k and
# k field/value pairs. Returns 1 when written, 0 when skipped.
WRITE_ENTITY = """
local ts = ARGV[1]
local cur = redis.call('HGET', KEYS[1], '_event_ts')
if ARGV[2] ~= '' then
  local want = ARGV[2]
  if want == '-' then want = '' end
  if (cur or '') ~= want then return 0 end
elseif cur and tonumber(cur) > tonumber(ts) then
  return 0
end
local n = tonumber(ARGV[5])
local i = 6
for r = 1, n do
  local k = tonumber(ARGV[i]); i = i + 1
  redis.call('DEL', KEYS[r])
  local args = {'_event_ts', ts}
  for j = 1, 2 * k do args[#args + 1] = ARGV[i]; i = i + 1 end
  redis.call('HSET', KEYS[r], unpack(args))
end
if ARGV[3] ~= '' then
  local changed
  if ARGV[3] == '0' then
    changed = redis.call('SADD', KEYS[n + 1], ARGV[4])
  else
    changed = redis.call('SREM', KEYS[n + 1], ARGV[4])
  end
  if changed == 1 then
    local seq = redis.call('INCR', KEYS[n + 2])
    redis.call('ZADD', KEYS[n + 3], seq, ARGV[4])
  end
end
return 1
"""

# The availability changes after a sequence number, in one round trip.
# KEYS: the counter, the log, the set; ARGV[1]: the last sequence number seen.
# Returns {seq, lead, 1|0 (unavailable or not), lead, 1|0, ...}.
AVAILABILITY_DELTA = """
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {seq}
if seq <= tonumber(ARGV[1]) then return out end
local changed = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
for _, id in ipairs(changed) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('SISMEMBER', KEYS[3], id)
end
return out
"""
