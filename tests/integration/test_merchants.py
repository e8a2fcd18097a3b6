"""Merchants in the real PostgreSQL: encrypted secrets, rotation, idempotent updates."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import cast

import psycopg
import pytest

from connectors.merchants import merchant_by_shop, upsert_merchant
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalty import ids

KEY = "test-secrets-key"


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pg_url) as connection:
        apply_migrations(connection, discover())
        connection.autocommit = False
        yield connection


def test_merchant_is_created_with_a_deterministic_id_and_an_encrypted_secret(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    summary = upsert_merchant(
        conn,
        KEY,
        shop=" Shop-A.myshopify.com",
        secret="s1",
        points_per_unit=Decimal("1.5"),
        locale="he",
    )
    stored = conn.execute("SELECT webhook_secret FROM merchants").fetchone()
    merchant = merchant_by_shop(conn, KEY, "shop-a.myshopify.com")

    assert summary.merchant_id == str(ids.merchant_id("shop-a.myshopify.com"))
    assert stored is not None
    assert b"s1" not in cast(bytes, stored[0])
    assert merchant is not None
    assert (merchant.secret, merchant.previous_secret, merchant.locale) == ("s1", None, "he")
    assert merchant.points_per_unit == Decimal("1.5")


def test_rotating_the_secret_keeps_the_previous_one(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    upsert_merchant(
        conn, KEY, shop="b.myshopify.com", secret="old", points_per_unit=Decimal(1), locale="en"
    )
    upsert_merchant(
        conn, KEY, shop="b.myshopify.com", secret="new", points_per_unit=Decimal(2), locale="en"
    )
    # Same secret again: an update that is not a rotation keeps the previous secret as it is.
    upsert_merchant(
        conn, KEY, shop="b.myshopify.com", secret="new", points_per_unit=Decimal(2), locale="ar"
    )
    merchant = merchant_by_shop(conn, KEY, "b.myshopify.com")

    assert merchant is not None
    assert merchant.secrets == ["new", "old"]
    assert merchant.locale == "ar"
    assert conn.execute("SELECT count(*) FROM merchants").fetchone() == (1,)


def test_the_wrong_key_cannot_read_secrets(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    upsert_merchant(
        conn, KEY, shop="c.myshopify.com", secret="s", points_per_unit=Decimal(1), locale="en"
    )
    with pytest.raises(psycopg.Error):
        merchant_by_shop(conn, "not-the-key", "c.myshopify.com")


def test_unknown_shop_is_none(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    assert merchant_by_shop(conn, KEY, "nobody.myshopify.com") is None
