"""Lua for the Redis store's read-modify-write operations.

Each script touches one key, or (PUT_FENCED) a record and its lock, which share a hash tag and
so a slot: it runs unchanged on a Cluster (no CROSSSLOT) and is atomic without WATCH/MULTI, as
a script runs to completion before any other command on its shard.
A record is a hash {v: value bytes, n: version}; a missing key reads as version 0.
"""

from __future__ import annotations

CONFLICT = -1
"""Returned by PUT and CAS_DELETE when the expected version does not match (versions are >= 0)."""
LOCK_LOST = -2
"""Returned by PUT_FENCED when the fencing lock is gone or has another owner."""

KEEP_TTL = "keep"
"""PUT's ttl argument meaning "leave the key's expiry as it is" (HSET never touches it)."""

# KEYS[1] record; ARGV[1] value; ARGV[2] expected version or '' (blind);
# ARGV[3] ttl in ms, '' (no ttl) or KEEP_TTL; ARGV[4] changes channel. Returns the new version
# or CONFLICT. Durable records (no ttl) are announced on the channel in the same atomic step, so
# no replica's read cache can miss a write; one-time state (ttl) is never cached or announced.
PUT = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'n')) or 0
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= cur then
  return -1
end
local n = cur + 1
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', n)
if ARGV[3] == 'keep' then
  if redis.call('PTTL', KEYS[1]) == -1 then
    redis.call('PUBLISH', ARGV[4], KEYS[1])
  end
elseif ARGV[3] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PUBLISH', ARGV[4], KEYS[1])
end
return n
"""

# KEYS[1] record, KEYS[2] its lock (same hash tag); ARGV[1..4] as PUT's; ARGV[5] the lock
# owner's token. PUT, done only while the token still owns the lock (an expired lock reads as
# nil). Returns the new version, LOCK_LOST (checked first) or CONFLICT.
PUT_FENCED = (
    """
if redis.call('GET', KEYS[2]) ~= ARGV[5] then
  return -2
end
"""
    + PUT
)

# KEYS[1] record; ARGV[1] expected version or '' (any); ARGV[2] changes channel.
# Returns 1 deleted, 0 absent, or CONFLICT.
CAS_DELETE = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'n')) or 0
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= cur then
  return -1
end
if cur == 0 then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], KEYS[1])
return 1
"""

# KEYS[1] record. Returns the value (or nil) and deletes the key in the same step, so of many
# concurrent callers exactly one sees the value.
TAKE = """
local v = redis.call('HGET', KEYS[1], 'v')
if v then
  redis.call('DEL', KEYS[1])
end
return v
"""

# KEYS[1] lock; ARGV[1] owner token. Deletes only while the token still owns the lock, so a
# holder whose lock expired and was re-acquired by someone else cannot release theirs.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1] ordered index (sorted set, every score 0: members order by their bytes); ARGV[1]
# member; ARGV[2] ttl in ms. The index expires ttl after its latest add, never sooner than an
# earlier add asked (PTTL is -1 on a fresh key, so that gets its expiry too).
INDEX_ADD = """
redis.call('ZADD', KEYS[1], 0, ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
