"""Advocates' referral codes in a real PostgreSQL: one per advocate, the same one however many
ask at once, the next attempt's code when another advocate holds the first, and the table
refusing what the API would never write."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from connectors.merchants import upsert_merchant
from connectors.referral_links import PooledLinks, ReferralLink, advocate_link
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalty import ids
from loyalty.pii import merchant_key
from loyalty.referral_codes import advocate_code
from loyalty.referral_fraud import Identity

pytestmark = pytest.mark.integration

SECRETS_KEY = "test-secrets-key"
SHOP = "links.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
KEY = merchant_key(SECRETS_KEY, MERCHANT)


@pytest.fixture
def database(pg_url: str) -> str:
    with psycopg.connect(pg_url) as conn:
        apply_migrations(conn, discover())
        upsert_merchant(
            conn, SECRETS_KEY, shop=SHOP, secret="s", points_per_unit=Decimal(1), locale="en"
        )
    return pg_url


T = TypeVar("T")


async def with_links(url: str, work: Callable[[PooledLinks], Awaitable[T]]) -> T:
    async with AsyncConnectionPool(url, min_size=1, max_size=8, open=False) as pool:
        return await work(PooledLinks(pool))


def test_an_advocate_gets_one_code_however_many_ask_at_once(database: str) -> None:
    async def work(links: PooledLinks) -> list[tuple[str, bool]]:
        replies = await asyncio.gather(*(advocate_link(links, KEY, MERCHANT, 42) for _ in range(8)))
        return [(link.code, created) for link, created in replies]

    replies = asyncio.run(with_links(database, work))

    assert {code for code, _ in replies} == {advocate_code(KEY, 42, 0)}
    assert sum(created for _, created in replies) == 1
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT advocate_id, customer_id::text FROM referral_links").fetchall()
    assert rows == [(42, str(ids.customer_id(MERCHANT, 42)))]


def test_a_code_another_advocate_holds_gives_the_next_attempts_code(database: str) -> None:
    taken = advocate_code(KEY, 7, 0)
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO referral_links (merchant_id, code, advocate_id, customer_id) "
            "VALUES (%s, %s, 9, %s)",
            (MERCHANT, taken, ids.customer_id(MERCHANT, 9)),
        )

    async def work(links: PooledLinks) -> tuple[str, bool, str | None]:
        link, created = await advocate_link(links, KEY, MERCHANT, 7)
        holder = await links.by_code(MERCHANT, taken)
        return link.code, created, None if holder is None else str(holder.advocate)

    code, created, holder = asyncio.run(with_links(database, work))

    assert (code, created, holder) == (advocate_code(KEY, 7, 1), True, "9")


@pytest.mark.parametrize(
    ("code", "advocate"),
    [("ABCDEFGI", 1), ("abcdefgh", 1), ("ABCDEFG", 1), ("ABCDEFGH", 0)],
)
def test_the_table_refuses_codes_and_advocates_the_api_never_writes(
    database: str, code: str, advocate: int
) -> None:
    with psycopg.connect(database) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO referral_links (merchant_id, code, advocate_id, customer_id) "
            "VALUES (%s, %s, %s, gen_random_uuid())",
            (MERCHANT, code, advocate),
        )


def test_the_advocates_identity_is_their_customers_rows_hashes(database: str) -> None:
    email_hash, address_hash = "h1:" + "e" * 64, "h1:" + "a" * 64
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO customers (id, merchant_id, shopify_customer_id, email_hash, address_hash)"
            " VALUES (%s, %s, 42, %s, %s)",
            (ids.customer_id(MERCHANT, 42), MERCHANT, email_hash, address_hash),
        )

    async def work(links: PooledLinks) -> tuple[Identity, Identity, Identity]:
        created, _ = await advocate_link(links, KEY, MERCHANT, 42)
        again, _ = await advocate_link(links, KEY, MERCHANT, 42)
        stranger, _ = await advocate_link(links, KEY, MERCHANT, 43)
        assert again.identity == created.identity  # read back, as when it was inserted
        return created.identity, again.identity, stranger.identity

    known, _, unknown = asyncio.run(with_links(database, work))

    assert known == Identity(42, email_hash, None, frozenset({address_hash}))
    assert unknown == Identity(43)


def test_a_codes_referrals_are_counted_by_status(database: str) -> None:
    with psycopg.connect(database) as conn:
        for n, status in enumerate(["completed", "completed", "blocked", "pending"]):
            conn.execute(
                "INSERT INTO referrals (id, merchant_id, customer_id, friend_id, code, order_id,"
                " status, decided_at, status_rank) VALUES (gen_random_uuid(), %s,"
                " gen_random_uuid(), %s, %s, %s, %s, now(), 1)",
                (MERCHANT, 100 + n, "ABCD2345", n + 1, status),
            )
        conn.execute(  # another code's referral is not counted
            "INSERT INTO referrals (id, merchant_id, customer_id, friend_id, code, order_id,"
            " status, decided_at, status_rank) VALUES (gen_random_uuid(), %s, gen_random_uuid(),"
            " 200, 'ZZZZ2345', 9, 'completed', now(), 1)",
            (MERCHANT,),
        )

    async def work(links: PooledLinks) -> tuple[ReferralLink | None, ReferralLink | None]:
        await links.claim(MERCHANT, 7, "ABCD2345")
        await links.claim(MERCHANT, 8, "EFGH2345")
        return await links.by_code(MERCHANT, "ABCD2345"), await links.by_code(MERCHANT, "EFGH2345")

    counted, none_yet = asyncio.run(with_links(database, work))
    assert counted is not None
    assert none_yet is not None
    assert counted.referrals == {"completed": 2, "blocked": 1, "pending": 1}
    assert none_yet.referrals == {}
