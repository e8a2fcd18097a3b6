"""The Redis balance cache, shared by the points flow (writer) and the API (reader).

Entries carry the balance's sequence number and are only ever replaced by a newer one (a Lua
script compares and sets atomically). The flow refreshes an entry whenever the balance
changes, which invalidates the old value; the API fills misses from MongoDB through the same
guard (connectors/redis_guard.py), so a slow reader never puts an older balance back.

Every entry lives at most BALANCE_CACHE_SECONDS (the settings): if a refresh fails (Redis
stalled or down), the old value expires within that time and reads fall back to MongoDB, so a
balance read is never staler than that, whatever fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import redis
import redis.asyncio as aioredis

from connectors.redis_guard import SET_IF_NEWER

# Entries without these fields (written by an earlier version) are read as misses.
FIELDS = ("balance", "updated_at", "pending", "lifetime_earned", "next_expiry")


@dataclass(frozen=True)
class CachedBalance:
    balance: int
    seq: int
    updated_at: datetime
    pending: int = 0
    lifetime_earned: int = 0
    next_expiry: tuple[int, datetime] | None = None  # (points, at)

    def script_args(self, ttl_ms: int) -> list[int | str]:
        """SET_IF_NEWER's arguments for this value."""
        expiry = (
            f"{self.next_expiry[0]}@{self.next_expiry[1].isoformat()}" if self.next_expiry else ""
        )
        values: tuple[int | str, ...] = (
            self.balance,
            self.updated_at.isoformat(),
            self.pending,
            self.lifetime_earned,
            expiry,
        )
        pairs: list[int | str] = [x for pair in zip(FIELDS, values, strict=True) for x in pair]
        return [self.seq, ttl_ms, *pairs]

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> CachedBalance | None:
        if any(name not in raw for name in FIELDS) or "seq" not in raw:
            return None
        points, _, at = raw["next_expiry"].partition("@")
        return cls(
            balance=int(raw["balance"]),
            seq=int(raw["seq"]),
            updated_at=datetime.fromisoformat(raw["updated_at"]),
            pending=int(raw["pending"]),
            lifetime_earned=int(raw["lifetime_earned"]),
            next_expiry=(int(points), datetime.fromisoformat(at)) if at else None,
        )


def cache_key(prefix: str, merchant_id: str, customer: int) -> str:
    return f"{prefix}cache:{merchant_id}:{customer}:points"


class BalanceCache:
    """The one client of the cache: its keys, its entries' encoding and the guarded write.

    The flow's sink writes through a blocking client (`put_many`); the API reads and fills
    through an asyncio one (`get`, `fill`). An entry is a hash of `seq` and FIELDS
    (times ISO-8601, read with or without a `Z`)."""

    def __init__(self, prefix: str, ttl_seconds: int) -> None:
        self.prefix = prefix
        self.ttl_ms = ttl_seconds * 1000

    def key(self, merchant_id: str, customer: int) -> str:
        return cache_key(self.prefix, merchant_id, customer)

    def put_many(self, client: redis.Redis, entries: list[tuple[str, int, CachedBalance]]) -> None:
        """Write (merchant_id, customer, balance) entries in one round trip, each living the
        full TTL."""
        set_if_newer = client.register_script(SET_IF_NEWER)
        pipe = client.pipeline(transaction=False)
        for merchant_id, customer, value in entries:
            set_if_newer(
                keys=[self.key(merchant_id, customer)],
                args=value.script_args(self.ttl_ms),
                client=pipe,
            )
        pipe.execute()

    async def get(
        self, client: aioredis.Redis, merchant_id: str, customer: int
    ) -> CachedBalance | None:
        """The entry, or None on a miss; a Redis failure raises redis.RedisError."""
        return decoded(await client.hgetall(self.key(merchant_id, customer)))

    async def fill(
        self,
        client: aioredis.Redis,
        merchant_id: str,
        customer: int,
        value: CachedBalance,
        ttl_ms: int,
    ) -> None:
        """Write an entry unless a newer one is there, living `ttl_ms` (what is left of the
        TTL for a value read some time ago)."""
        await client.eval(
            SET_IF_NEWER, 1, self.key(merchant_id, customer), *value.script_args(ttl_ms)
        )


def decoded(raw: Mapping[bytes | str, bytes | str]) -> CachedBalance | None:
    """The entry, or None on a miss (or an entry an earlier version wrote)."""
    if not raw:
        return None
    return CachedBalance.from_hash({_text(k): _text(v) for k, v in raw.items()})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
