"""Referrals in a real PostgreSQL: each change stored, the latest per referral winning, and a
change written again (a replay) never taking a referral back to an earlier status."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from connectors.referral_records import UPSERT, latest_per_referral, upsert_params
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalty import ids
from loyalty.referrals import Reason, Referral, Status, referral_id

pytestmark = pytest.mark.integration

MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
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
