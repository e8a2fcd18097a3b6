"""The one guarded write of the Redis caches: an entry is only ever replaced by a newer one.

A cache entry is a hash holding a `seq` (anything that grows with every change of what it
shows) and its fields. The writer that knows a change refreshes the entry; a reader filling a
miss from the database goes through the same guard, so a slow reader can never put an older
value back over a newer one. A Lua script compares and sets atomically.
"""

from __future__ import annotations

# KEYS[1] = entry; ARGV = seq, time to live in ms, then field, value pairs. Returns 1 if written.
SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'seq')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
