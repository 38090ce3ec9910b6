"""Token buckets on Redis (`Store.rate_limit`): one Lua script per take, on one key.

The script reads Redis's own clock (`TIME`), so every replica refills a bucket by the same
clock whatever their own clocks say; Redis 7 replicates a script's effects, not the script,
which is what makes `TIME` allowed in a script that writes. A refused take writes nothing.
Numbers cross the Lua boundary as strings: Redis would truncate a Lua float reply to an
integer.
"""

from __future__ import annotations

# KEYS[1] bucket; ARGV[1] rate (tokens/s), ARGV[2] burst, ARGV[3] cost.
# Returns '0' when taken, else the seconds until `cost` tokens will be there.
TAKE_TOKENS = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then
  tokens, at = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if tokens < cost then
  return tostring((cost - tokens) / rate)
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(now))
-- gone once it would be full again: a missing bucket reads as full
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return '0'
"""


def wait_seconds(reply: bytes | str) -> float:
    """The script's reply as seconds to wait (0.0: taken)."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    return max(0.0, float(text))
