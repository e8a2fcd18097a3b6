"""Customers' personal data in a real PostgreSQL: the email encrypted and readable with the
key, a row rewritten only when a hash changes, and what an order does not say kept."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from connectors.customer_pii import PiiWriter, postgres_write
from connectors.merchants import upsert_merchant
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalty import ids
from loyalty.pii import Hasher, PersonalData, merchant_key

pytestmark = pytest.mark.integration

KEY = "test-secrets-key"
SHOP = "pii.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
HASHER = Hasher(merchant_key(KEY, MERCHANT))


def data(email: str | None, first: str = "Ann", address_hash: str | None = None) -> PersonalData:
    return PersonalData(
        customer=5,
        email=email,
        email_hash=HASHER.email(email) if email else None,
        name_hash=HASHER.name(first, "Lee"),
        address_hash=address_hash,
    )


@pytest.fixture
def database(pg_url: str) -> str:
    with psycopg.connect(pg_url) as conn:
        apply_migrations(conn, discover())
        upsert_merchant(conn, KEY, shop=SHOP, secret="s", points_per_unit=Decimal(1), locale="en")
    return pg_url


def save_all(url: str, saves: list[PersonalData]) -> None:
    """Each through a new writer (so none skips what an earlier one wrote: the SQL decides)."""

    async def run() -> None:
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
            for item in saves:
                writer = PiiWriter(postgres_write(pool, KEY))
                writer.keep(MERCHANT, item)
                await writer.close()

    asyncio.run(run())


def row(url: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT pgp_sym_decrypt(email, %s), email_hash, name_hash, address_hash, updated_at,"
            " id FROM customers WHERE merchant_id = %s AND shopify_customer_id = 5",
            (KEY, MERCHANT),
        ).fetchone()
    assert found is not None
    return tuple(found)


def test_the_email_is_stored_encrypted_and_reads_back_with_the_key(database: str) -> None:
    save_all(database, [data("ann@example.com")])

    email, email_hash, name_hash, address_hash, _, customer_id = row(database)
    assert (email, email_hash, name_hash, address_hash) == (
        "ann@example.com",
        HASHER.email("ann@example.com"),
        HASHER.name("Ann", "Lee"),
        None,
    )
    assert str(customer_id) == str(ids.customer_id(MERCHANT, 5))
    with psycopg.connect(database) as conn:
        (stored,) = conn.execute("SELECT email FROM customers").fetchone() or (None,)
    assert isinstance(stored, bytes)
    assert b"ann@example.com" not in stored


def test_the_same_data_again_leaves_the_row_and_new_data_changes_it(database: str) -> None:
    save_all(database, [data("ann@example.com")])
    first = row(database)
    save_all(database, [data("ann@example.com")])
    assert row(database)[4] == first[4]  # updated_at: not rewritten

    save_all(database, [data(None, first="Anna", address_hash="h1:" + "a" * 64)])

    email, _, name_hash, address_hash, updated_at, _ = row(database)
    assert email == "ann@example.com"  # an order without an email keeps the stored one
    assert name_hash == HASHER.name("Anna", "Lee")
    assert address_hash == "h1:" + "a" * 64
    assert updated_at != first[4]
