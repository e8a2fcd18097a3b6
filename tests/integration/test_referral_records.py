"""Referrals in a real PostgreSQL: each change stored, the latest per referral winning, and a
change written again (a replay) never taking a referral back to an earlier status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from connectors.referral_cache import ReferralCache
from connectors.referral_records import (
    NEWEST,
    UPSERT,
    PooledReferrals,
    ReferralRow,
    latest_per_referral,
    upsert_params,
)
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalnest.settings import Settings
from loyalty import ids
from loyalty.referrals import Reason, Referral, Status, referral_id
from sinks.postgres import CacheTarget, ReferralsSink

pytestmark = pytest.mark.integration

MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
OTHER = "0b7c6a1e-1111-4222-8333-444455550000"
AT = datetime(2026, 5, 1, 12, tzinfo=UTC)
PENDING = Referral(referral_id(MERCHANT, 9, 1), MERCHANT, "ABCD2345", 9, 1, Status.PENDING, AT)
COMPLETED = replace(
    PENDING, status=Status.COMPLETED, advocate=7, advocate_points=500, friend_points=50
)
REVOKED = replace(COMPLETED, status=Status.REVOKED, reason=Reason.CANCELLED, at=AT + timedelta(1))


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        apply_migrations(connection, discover())
        yield connection


def write(conn: psycopg.Connection[tuple[object, ...]], *records: Referral) -> int:
    return conn.execute(UPSERT, upsert_params(latest_per_referral(list(records)))).rowcount


def stored(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    row = conn.execute(
        "SELECT status, reason, advocate_id, advocate_points, friend_points, customer_id::text"
        " FROM referrals"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_each_change_replaces_the_one_before_and_a_replay_changes_nothing(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert write(conn, PENDING) == 1
    assert write(conn, COMPLETED) == 1
    assert stored(conn)[:5] == ("completed", None, 7, 500, 50)
    assert stored(conn)[5] == str(ids.customer_id(MERCHANT, 9))

    assert write(conn, PENDING, COMPLETED) == 0  # replayed: nothing goes back
    assert write(conn, REVOKED) == 1
    assert write(conn, PENDING) == 0
    assert write(conn, COMPLETED) == 0

    assert stored(conn)[:2] == ("revoked", "cancelled")


def test_one_batch_stores_each_referrals_latest_change(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    other = replace(PENDING, referral_id=referral_id(MERCHANT, 10, 2), friend=10, order_id=2)

    assert write(conn, PENDING, COMPLETED, other, REVOKED) == 2

    statuses = conn.execute("SELECT friend_id, status FROM referrals ORDER BY friend_id").fetchall()
    assert statuses == [(9, "revoked"), (10, "pending")]


def test_the_table_refuses_an_unknown_status(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    params = upsert_params([PENDING])
    params["statuses"] = ["approved"]

    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(UPSERT, params)


def test_the_sink_caches_what_it_changed_and_the_api_reads_the_same(
    conn: psycopg.Connection[tuple[object, ...]],
    pg_url: str,
    settings: Settings,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    sink = ReferralsSink(pg_url, CacheTarget(settings.redis_url, key_prefix, 60))
    partition = sink.build("referrals-out", 0, 1)
    cache = ReferralCache(key_prefix, 60)
    key = cache.key(MERCHANT, PENDING.referral_id)
    try:
        partition.write_batch([PENDING, COMPLETED])
        completed = cached(redis_client, key)
        partition.write_batch([PENDING])  # a replay: PostgreSQL and the cache stay as they are
        assert cached(redis_client, key) == completed
        partition.write_batch([REVOKED])
    finally:
        partition.close()

    revoked = cached(redis_client, key)
    assert (completed["status"], revoked["status"]) == ("completed", "revoked")
    assert revoked["rewards"]["reversed"] is True
    assert 0 < redis_client.pttl(key) <= 60_000

    async def read() -> tuple[ReferralRow | None, list[ReferralRow]]:
        async with AsyncConnectionPool(pg_url, min_size=1, max_size=2, open=False) as pool:
            reads = PooledReferrals(pool)
            row = await reads.by_id(MERCHANT, PENDING.referral_id)
            assert row is not None
            page = await reads.by_advocate(MERCHANT, 7, NEWEST, 10)
            return await reads.by_id(OTHER, PENDING.referral_id), [row, *page]

    async def fill(row: ReferralRow) -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await cache.fill(client, row)
        finally:
            await client.aclose()

    elsewhere, (row, *page) = asyncio.run(read())
    asyncio.run(fill(replace(row, status_rank=0)))  # as an API that read before the revocation
    assert row.document() == revoked  # PostgreSQL and the cache tell the same
    assert cached(redis_client, key) == revoked  # an older fill did not replace it
    assert [r.referral_id for r in page] == [PENDING.referral_id]
    assert elsewhere is None  # another merchant's


def test_an_advocates_pages_follow_creation_then_id(
    conn: psycopg.Connection[tuple[object, ...]], pg_url: str
) -> None:
    friends = [
        replace(COMPLETED, referral_id=referral_id(MERCHANT, f, f), friend=f, order_id=f)
        for f in range(20, 25)
    ]
    write(conn, *friends[:2])
    write(conn, *friends[2:])  # a later statement: created later

    async def pages() -> list[list[int]]:
        async with AsyncConnectionPool(pg_url, min_size=1, max_size=2, open=False) as pool:
            reads, before, found = PooledReferrals(pool), NEWEST, []
            while page := await reads.by_advocate(MERCHANT, 7, before, 2):
                found.append([r.friend for r in page])
                before = (page[-1].created_at, page[-1].referral_id)
            return found

    found = asyncio.run(pages())
    assert sorted(f for page in found for f in page) == list(range(20, 25))
    assert [len(page) for page in found] == [2, 2, 1]
    # the last statement's three rows come before the first's two
    assert set(found[0]) | {found[1][0]} == {22, 23, 24}


def cached(client: redis.Redis, key: str) -> dict[str, Any]:
    raw = client.hget(key, "document")
    assert isinstance(raw, bytes)
    document: dict[str, Any] = json.loads(raw)
    return document
