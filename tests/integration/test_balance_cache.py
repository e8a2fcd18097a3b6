"""The balance cache's one client on the real Redis: what the flow's sink writes (blocking
client) is what the API reads and fills (asyncio client), guarded by the sequence number."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import redis
import redis.asyncio as aioredis

from connectors.balance_cache import BalanceCache, CachedBalance
from loyalnest.settings import Settings

T = TypeVar("T")
MERCHANT = "6a1f1d0e-0000-5000-8000-000000000001"
AT = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def on_api_client(settings: Settings, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    async def run() -> T:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_what_the_flow_writes_the_api_reads(
    settings: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    cache = BalanceCache(key_prefix, ttl_seconds=5)
    value = CachedBalance(120, 3, AT, pending=40, lifetime_earned=160, next_expiry=(90, AT))
    cache.put_many(redis_client, [(MERCHANT, 7, value)])

    read = on_api_client(settings, lambda client: cache.get(client, MERCHANT, 7))

    assert read == value
    assert redis_client.hgetall(f"{key_prefix}cache:{MERCHANT}:7:points") == {
        b"seq": b"3",
        b"balance": b"120",
        b"updated_at": b"2026-03-01T12:30:15.123456+00:00",
        b"pending": b"40",
        b"lifetime_earned": b"160",
        b"next_expiry": b"90@2026-03-01T12:30:15.123456+00:00",
    }
    assert 0 < redis_client.pttl(cache.key(MERCHANT, 7)) <= 5000


def test_a_miss_is_none(settings: Settings, key_prefix: str) -> None:
    cache = BalanceCache(key_prefix, ttl_seconds=5)

    assert on_api_client(settings, lambda client: cache.get(client, MERCHANT, 8)) is None


def test_neither_writer_puts_an_older_balance_over_a_newer_one(
    settings: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    cache = BalanceCache(key_prefix, ttl_seconds=5)
    cache.put_many(redis_client, [(MERCHANT, 9, CachedBalance(50, 4, AT))])

    async def stale_fill_then_read(client: aioredis.Redis) -> CachedBalance | None:
        await cache.fill(client, MERCHANT, 9, CachedBalance(10, 2, AT), ttl_ms=3000)
        return await cache.get(client, MERCHANT, 9)

    after_fill = on_api_client(settings, stale_fill_then_read)
    cache.put_many(redis_client, [(MERCHANT, 9, CachedBalance(30, 3, AT))])
    after_put = on_api_client(settings, lambda client: cache.get(client, MERCHANT, 9))

    assert after_fill == after_put == CachedBalance(50, 4, AT)


def test_an_entry_with_a_z_suffix_reads_the_same(
    settings: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    cache = BalanceCache(key_prefix, ttl_seconds=5)
    redis_client.hset(
        cache.key(MERCHANT, 10),
        mapping={
            "seq": 1,
            "balance": 5,
            "updated_at": "2026-03-01T12:30:15.123000Z",
            "pending": 0,
            "lifetime_earned": 5,
            "next_expiry": "",
        },
    )

    read = on_api_client(settings, lambda client: cache.get(client, MERCHANT, 10))

    assert read == CachedBalance(5, 1, AT.replace(microsecond=123000), lifetime_earned=5)


def test_an_entry_an_earlier_version_wrote_is_a_miss(
    settings: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    # Written before balances had pending points and expiry: the API reads MongoDB instead.
    cache = BalanceCache(key_prefix, ttl_seconds=5)
    redis_client.hset(
        cache.key(MERCHANT, 11),
        mapping={"seq": 1, "balance": 5, "updated_at": "2026-03-01T12:30:15.123000Z"},
    )

    assert on_api_client(settings, lambda client: cache.get(client, MERCHANT, 11)) is None
