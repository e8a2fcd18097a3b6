"""Customers' personal data in a real PostgreSQL: the email encrypted and readable with the
key, a row rewritten only when a hash changes, and what an order does not say kept."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from connectors.customer_pii import PiiWriter, postgres_write
from connectors.customer_records import CustomerRow, CustomerView, PooledCustomers, customer_event
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


def save_all(url: str, saves: list[PersonalData]) -> list[CustomerRow]:
    """Each through a new writer (so none skips what an earlier one wrote: the SQL decides);
    the rows the writes announced."""
    announced: list[CustomerRow] = []

    async def announce(rows: list[CustomerRow]) -> None:
        announced.extend(rows)

    async def run() -> None:
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
            for item in saves:
                writer = PiiWriter(postgres_write(pool, KEY, announce))
                writer.keep(MERCHANT, item)
                await writer.close()

    asyncio.run(run())
    return announced


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
    (created,) = save_all(database, [data("ann@example.com")])
    first = row(database)
    assert save_all(database, [data("ann@example.com")]) == []  # nothing changed: no event
    assert row(database)[4] == first[4]  # updated_at: not rewritten

    (updated,) = save_all(database, [data(None, first="Anna", address_hash="h1:" + "a" * 64)])
    assert (created.created, updated.created) == (True, False)
    assert created.customer_id == updated.customer_id == str(first[5])
    assert (created.shopify_id, updated.name_hash) == (5, HASHER.name("Anna", "Lee"))
    assert customer_event(created)[0] == "customer.created"
    assert customer_event(updated)[0] == "customer.updated"

    email, _, name_hash, address_hash, updated_at, _ = row(database)
    assert email == "ann@example.com"  # an order without an email keeps the stored one
    assert name_hash == HASHER.name("Anna", "Lee")
    assert address_hash == "h1:" + "a" * 64
    assert updated_at != first[4]


def test_a_customer_created_by_email_is_found_again_and_read_back_with_or_without_the_email(
    database: str,
) -> None:
    save_all(database, [data("ann@example.com")])  # Ann, who has ordered (Shopify id 5)

    async def run() -> list[object]:
        async with AsyncConnectionPool(database, min_size=1, max_size=2, open=False) as pool:
            customers = PooledCustomers(pool, KEY)
            ann = await customers.create_by_email(
                MERCHANT, "Ann@Example.com", HASHER.email("Ann@Example.com")
            )
            bo = await customers.create_by_email(MERCHANT, "bo@x.io", HASHER.email("bo@x.io"))
            bo_again = await customers.create_by_email(MERCHANT, "bo@x.io", HASHER.email("bo@x.io"))
            plain = await customers.get(MERCHANT, bo.customer_id, with_email=False)
            full = await customers.get(MERCHANT, bo.customer_id, with_email=True)
            elsewhere = await customers.get(
                str(ids.merchant_id("x.myshopify.com")), bo.customer_id, True
            )
            return [ann, bo, bo_again, plain, full, elsewhere]

    ann, bo, bo_again, plain, full, elsewhere = asyncio.run(run())
    assert isinstance(ann, CustomerRow)
    assert isinstance(bo, CustomerRow)
    assert isinstance(bo_again, CustomerRow)
    assert (ann.customer_id, ann.created) == (str(ids.customer_id(MERCHANT, 5)), False)
    assert (bo.created, bo_again.created, bo.shopify_id) == (True, False, None)
    assert bo_again.customer_id == bo.customer_id
    assert isinstance(plain, CustomerView)
    assert isinstance(full, CustomerView)
    assert (plain.email, full.email) == (None, "bo@x.io")
    assert elsewhere is None


def test_a_customer_created_by_email_who_then_orders_is_read_as_the_ordering_customer(
    database: str,
) -> None:
    async def create() -> CustomerRow:
        async with AsyncConnectionPool(database, min_size=1, max_size=2, open=False) as pool:
            return await PooledCustomers(pool, KEY).create_by_email(
                MERCHANT, "cy@example.com", HASHER.email("cy@example.com")
            )

    async def read(customer_id: str) -> CustomerView | None:
        async with AsyncConnectionPool(database, min_size=1, max_size=2, open=False) as pool:
            return await PooledCustomers(pool, KEY).get(MERCHANT, customer_id, with_email=True)

    imported = asyncio.run(create())
    before = asyncio.run(read(imported.customer_id))
    save_all(database, [data("CY@example.com")])  # Cy's first order (Shopify id 5)
    after = asyncio.run(read(imported.customer_id))
    elsewhere = asyncio.run(read(str(ids.customer_id(MERCHANT, 6))))

    assert before is not None
    assert (before.customer_id, before.shopify_id) == (imported.customer_id, None)
    assert after is not None
    assert (after.customer_id, after.shopify_id) == (str(ids.customer_id(MERCHANT, 5)), 5)
    assert (after.email, after.email_hash) == ("CY@example.com", imported.email_hash)
    assert elsewhere is None
