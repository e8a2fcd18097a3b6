"""The Redis referral cache, `referral:{merchant_id}:{referral_id}`: written by the referrals
flow (each batch's referrals as they stand once stored, connectors/referral_records.py), read
by the API.

An entry holds the referral's document as the API shows it (JSON, served as it is) and its
version; it is only ever replaced by a newer version (connectors/redis_guard.py). So a change
refreshes the entry (which invalidates the old one), and the API's fill of a miss from
PostgreSQL, if it lands after a change, is refused rather than bringing the old status back.

Every entry lives REFERRAL_CACHE_SECONDS: if a refresh fails (Redis stalled or down) the old
entry is gone within that time and reads fall back to PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis
import redis.asyncio as aioredis

from connectors.redis_guard import SET_IF_NEWER
from connectors.referral_records import ReferralRow

DOCUMENT = "document"


def cache_key(prefix: str, merchant_id: str, referral_id: str) -> str:
    return f"{prefix}referral:{merchant_id}:{referral_id}"


def entry_args(row: ReferralRow, ttl_ms: int) -> list[int | str]:
    """SET_IF_NEWER's arguments for the row."""
    return [row.version, ttl_ms, DOCUMENT, encode_document(row)]


def encode_document(row: ReferralRow) -> str:
    return json.dumps(row.document(), separators=(",", ":"))


class ReferralCache:
    """The one client of the cache. The flow's sink writes through a blocking client
    (`put_many`); the API reads and fills through an asyncio one (`get`, `fill`)."""

    def __init__(self, prefix: str, ttl_seconds: int) -> None:
        self.prefix = prefix
        self.ttl_ms = ttl_seconds * 1000

    def key(self, merchant_id: str, referral_id: str) -> str:
        return cache_key(self.prefix, merchant_id, referral_id)

    def put_many(self, client: redis.Redis, rows: Iterable[ReferralRow]) -> None:
        """Refresh the rows' entries in one round trip, each living the full TTL."""
        set_if_newer = client.register_script(SET_IF_NEWER)
        pipe = client.pipeline(transaction=False)
        for row in rows:
            set_if_newer(
                keys=[self.key(row.merchant_id, row.referral_id)],
                args=entry_args(row, self.ttl_ms),
                client=pipe,
            )
        pipe.execute()

    async def get(self, client: aioredis.Redis, merchant_id: str, referral_id: str) -> bytes | None:
        """The document's JSON, or None on a miss; a Redis failure raises redis.RedisError."""
        found = await client.hget(self.key(merchant_id, referral_id), DOCUMENT)
        return found.encode() if isinstance(found, str) else found

    async def fill(self, client: aioredis.Redis, row: ReferralRow) -> None:
        """Cache a row read from PostgreSQL, unless a newer version is there already."""
        key = self.key(row.merchant_id, row.referral_id)
        await client.eval(SET_IF_NEWER, 1, key, *entry_args(row, self.ttl_ms))
