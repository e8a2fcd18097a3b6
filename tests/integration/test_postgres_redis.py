"""PostgreSQL migrations and a Redis round trip on the real servers."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
import redis

from loyalnest.bootstrap.migrations import MigrationError, apply_migrations, discover


def test_migrations_apply_in_order_once_and_are_recorded(pg_url: str) -> None:
    migrations = discover()
    with psycopg.connect(pg_url) as conn:
        applied = apply_migrations(conn, migrations)
        again = apply_migrations(conn, migrations)
        recorded = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }

    assert [m.version for m in applied] == [m.version for m in migrations]
    assert again == []
    assert [r[0] for r in recorded] == [m.version for m in migrations]
    assert {"merchants", "customers", "schema_migrations"} <= tables


def test_a_customers_updated_at_follows_every_change(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        apply_migrations(conn, discover())
        merchant = conn.execute(
            "INSERT INTO merchants (id, shop_domain, webhook_secret, points_per_unit, locale) "
            "VALUES (gen_random_uuid(), 'pii.myshopify.com', 'x', 1, 'en') RETURNING id"
        ).fetchone()
        assert merchant is not None
        conn.execute(
            "INSERT INTO customers (id, merchant_id, shopify_customer_id, updated_at) "
            "VALUES (gen_random_uuid(), %s, 7, '2000-01-01T00:00:00Z')",
            (merchant[0],),
        )
        conn.commit()
        conn.execute("UPDATE customers SET email_hash = 'h1:abc' WHERE shopify_customer_id = 7")
        row = conn.execute(
            "SELECT updated_at > '2000-01-02T00:00:00Z', email_hash FROM customers"
        ).fetchone()

    assert row == (True, "h1:abc")


def test_an_edited_applied_migration_is_refused(pg_url: str) -> None:
    migrations = discover()
    with psycopg.connect(pg_url) as conn:
        apply_migrations(conn, migrations)
        edited = [dataclasses.replace(migrations[0], sql=migrations[0].sql + "\n-- edit")]
        with pytest.raises(MigrationError, match="changed after it was applied"):
            apply_migrations(conn, edited)


def test_a_failing_migration_leaves_nothing_half_applied(pg_url: str) -> None:
    good, bad = (
        discover()[0],
        dataclasses.replace(
            discover()[0], version=99, name="broken", sql="CREATE TABLE t1 (id int); SELECT 1/0;"
        ),
    )
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(MigrationError, match="broken"):
            apply_migrations(conn, [good, bad])
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        t1 = conn.execute("SELECT to_regclass('t1')").fetchone()

    assert versions == [good.version]
    assert t1 == (None,)


def test_redis_round_trip_with_ttl(redis_client: redis.Redis, key_prefix: str) -> None:
    key = f"{key_prefix}balance"
    redis_client.set(key, b"125", ex=3600)

    assert redis_client.get(key) == b"125"
    assert 0 < redis_client.ttl(key) <= 3600
    assert redis_client.set(key, b"1", nx=True) is None  # SET NX: the dedup primitive
