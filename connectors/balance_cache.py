"""The Redis balance cache, shared by the points flow (writer) and the API (reader).

Entries carry the balance's sequence number and are only ever replaced by a newer one (a Lua
script compares and sets atomically). The flow refreshes an entry whenever the balance
changes, which invalidates the old value; the API fills misses from MongoDB through the same
guard, so a slow reader can never put an older balance back over a newer one.

Every entry lives at most BALANCE_CACHE_SECONDS (the settings): if a refresh fails (Redis
stalled or down), the old value expires within that time and reads fall back to MongoDB, so a
balance read is never staler than that, whatever fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis

# KEYS[1] = entry; ARGV = seq, balance, updated_at, time to live in ms. Returns 1 if written.
SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'seq')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'balance', ARGV[2], 'updated_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


@dataclass(frozen=True)
class CachedBalance:
    balance: int
    seq: int
    updated_at: datetime


def cache_key(prefix: str, merchant_id: str, customer: int) -> str:
    return f"{prefix}cache:{merchant_id}:{customer}:points"


class BalanceCache:
    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = ttl_seconds * 1000
        self._set_if_newer = client.register_script(SET_IF_NEWER)

    def put_many(self, entries: list[tuple[str, int, CachedBalance]]) -> None:
        """Write (merchant_id, customer, balance) entries in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for merchant_id, customer, value in entries:
            self._set_if_newer(
                keys=[cache_key(self._prefix, merchant_id, customer)],
                args=[value.seq, value.balance, value.updated_at.isoformat(), self._ttl_ms],
                client=pipe,
            )
        pipe.execute()

    def get(self, merchant_id: str, customer: int) -> CachedBalance | None:
        raw = self._client.hgetall(cache_key(self._prefix, merchant_id, customer))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return CachedBalance(
            balance=int(fields["balance"]),
            seq=int(fields["seq"]),
            updated_at=datetime.fromisoformat(fields["updated_at"]),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
