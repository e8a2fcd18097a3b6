"""Merchants in the real PostgreSQL: encrypted secrets, rotation, idempotent updates, and
their program settings (read in the same query; defaults without a row)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import cast

import psycopg
import pytest
from psycopg import sql

from connectors.merchants import MerchantSummary, SettingsUpdate, merchant_by_shop, upsert_merchant
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalty import ids
from loyalty.policy import Expiry, ExpiryMode, Policy
from loyalty.referral_terms import ReferralTerms

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


# ------------------------------------------------------------------------ program settings


def add(
    conn: psycopg.Connection[tuple[object, ...]], shop: str, settings: SettingsUpdate | None = None
) -> MerchantSummary:
    return upsert_merchant(
        conn,
        KEY,
        shop=shop,
        secret="s",
        points_per_unit=Decimal(2),
        locale="he",
        settings=settings,
    )


def test_a_merchant_without_a_settings_row_has_the_default_terms(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    add(conn, "d.myshopify.com")
    conn.execute("DELETE FROM program_settings")
    conn.commit()

    merchant = merchant_by_shop(conn, KEY, "d.myshopify.com")

    assert merchant is not None
    assert merchant.policy == Policy(points_per_unit=Decimal(2), locale="he")
    assert (merchant.policy.pending_days, str(merchant.policy.expiry)) == (0, "none")
    assert merchant.policy.warning_days == 14


def test_settings_are_stored_and_read_with_the_merchant(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    lot_30 = Expiry(ExpiryMode.LOT, 30)
    summary = add(conn, "e.myshopify.com", SettingsUpdate(7, lot_30, 3))

    merchant = merchant_by_shop(conn, KEY, "e.myshopify.com")

    assert (summary.pending_days, summary.expiry, summary.warning_days) == (7, lot_30, 3)
    assert merchant is not None
    assert merchant.policy == Policy(Decimal(2), "he", 7, lot_30, 3)
    assert conn.execute("SELECT count(*) FROM program_settings").fetchone() == (1,)


def test_settings_not_given_keep_their_stored_value(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    add(conn, "f.myshopify.com", SettingsUpdate(7, Expiry(ExpiryMode.LOT, 30), 3))
    # A secret rotation without settings flags, then one setting changed.
    add(conn, "f.myshopify.com")
    summary = add(conn, "f.myshopify.com", SettingsUpdate(expiry=Expiry(ExpiryMode.INACTIVITY, 90)))

    merchant = merchant_by_shop(conn, KEY, "f.myshopify.com")

    assert merchant is not None
    assert merchant.policy == Policy(Decimal(2), "he", 7, Expiry(ExpiryMode.INACTIVITY, 90), 3)
    assert (summary.pending_days, str(summary.expiry), summary.warning_days) == (
        7,
        "inactivity:90",
        3,
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("pending_days", -1),
        ("pending_days", 366),
        ("expiry_warning_days", 366),
        ("expiry", "lot:0"),
        ("expiry", "lot:3651"),
        ("expiry", "lot:abc"),
        ("expiry", "lot:30 "),
        ("expiry", "forever"),
        ("rfm_lookback_days", 0),
        ("rfm_lookback_days", 3651),
        ("referral_advocate_points", -1),
        ("referral_advocate_points", 1_000_001),
        ("referral_friend_points", -1),
        ("referral_min_subtotal", Decimal("-0.01")),
        ("referral_review_days", 366),
    ],
)
def test_the_table_refuses_settings_the_flow_would_refuse(
    conn: psycopg.Connection[tuple[object, ...]], column: str, value: object
) -> None:
    summary = add(conn, "g.myshopify.com")
    statement = sql.SQL("UPDATE program_settings SET {} = %s WHERE merchant_id = %s").format(
        sql.Identifier(column)
    )

    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(statement, (value, summary.merchant_id))
    conn.rollback()


@pytest.mark.parametrize(
    ("terms", "said"),
    [
        (SettingsUpdate(30, Expiry(ExpiryMode.LOT, 30), 3), "pending days (30)"),
        (SettingsUpdate(0, Expiry(ExpiryMode.LOT, 10), 14), "expiry warning days (14)"),
        (SettingsUpdate(expiry=Expiry(ExpiryMode.INACTIVITY, 7)), "expiry warning days (7)"),
    ],
)
def test_terms_that_cannot_work_together_are_refused_and_nothing_changes(
    conn: psycopg.Connection[tuple[object, ...]], terms: SettingsUpdate, said: str
) -> None:
    add(conn, "h.myshopify.com", SettingsUpdate(2, Expiry(ExpiryMode.LOT, 60), 7))

    with pytest.raises(ValueError, match=re.escape(said)):
        add(conn, "h.myshopify.com", terms)

    merchant = merchant_by_shop(conn, KEY, "h.myshopify.com")
    assert merchant is not None
    assert merchant.policy == Policy(Decimal(2), "he", 2, Expiry(ExpiryMode.LOT, 60), 7)


def test_the_rfm_lookback_is_stored_kept_and_attached_to_the_terms(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    first = add(conn, "h.myshopify.com")
    chosen = add(conn, "h.myshopify.com", SettingsUpdate(rfm_lookback_days=90))
    add(conn, "h.myshopify.com", SettingsUpdate(pending_days=2))  # other settings: kept

    merchant = merchant_by_shop(conn, KEY, "h.myshopify.com")

    assert (first.rfm_lookback_days, chosen.rfm_lookback_days) == (365, 90)
    assert merchant is not None
    assert merchant.policy.rfm_lookback_days == 90


def test_referral_terms_default_are_stored_kept_and_read_with_the_merchant(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    first = add(conn, "r.myshopify.com")
    chosen = add(
        conn,
        "r.myshopify.com",
        SettingsUpdate(
            referral_advocate_points=750,
            referral_friend_points=100,
            referral_min_subtotal=Decimal("25.00"),
            referral_review_days=14,
        ),
    )
    add(conn, "r.myshopify.com", SettingsUpdate(referral_friend_points=0))  # the others: kept

    merchant = merchant_by_shop(conn, KEY, "r.myshopify.com")

    assert first.referral == ReferralTerms(500, 0, Decimal("0.00"), 0)
    assert chosen.referral == ReferralTerms(750, 100, Decimal("25.00"), 14)
    assert merchant is not None
    assert merchant.referral == ReferralTerms(750, 0, Decimal("25.00"), 14)


def test_a_merchant_without_a_settings_row_has_the_default_referral_terms(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    summary = add(conn, "s.myshopify.com")
    conn.execute("DELETE FROM program_settings WHERE merchant_id = %s", (summary.merchant_id,))
    conn.commit()

    merchant = merchant_by_shop(conn, KEY, "s.myshopify.com")

    assert merchant is not None
    assert merchant.referral == ReferralTerms()
