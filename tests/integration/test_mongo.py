"""MongoDB (wire protocol): unique indexes and the batched sink on a real server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from connectors.points_records import balance_id, balance_write
from connectors.store import COLLECTIONS
from loyalnest.bootstrap.mongo import (
    BALANCE_VERSIONS,
    apply_mongo_migrations,
    ensure_collections,
    migrate_balance_versions,
)
from loyalty.customers import BalanceSnapshot
from sinks.mongo import MongoSinkError, MongoWriter

MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"


def test_unique_index_rejects_duplicate_inside_unordered_bulk_insert(
    mongo_db: Database[Any],
) -> None:
    ensure_collections(mongo_db)
    docs = [{"_id": f"e{i}", "event_id": f"e{i}", "points": i} for i in range(5)]
    docs.insert(3, {"_id": "e1", "event_id": "e1", "points": 99})  # duplicate in the middle

    with pytest.raises(BulkWriteError) as caught:
        mongo_db.points_transactions.insert_many(docs, ordered=False)

    errors = caught.value.details["writeErrors"]
    assert [e["code"] for e in errors] == [11000]
    assert errors[0]["index"] == 3
    stored = sorted(d["event_id"] for d in mongo_db.points_transactions.find())
    assert stored == ["e0", "e1", "e2", "e3", "e4"]


def test_bootstrap_creates_collections_and_indexes_idempotently(mongo_db: Database[Any]) -> None:
    assert sorted(ensure_collections(mongo_db)) == sorted(COLLECTIONS)
    assert ensure_collections(mongo_db) == []
    names = mongo_db.points_transactions.index_information()
    assert "idx_customer_id_merchant_id_seq" in names


def test_bootstrap_drops_retired_indexes(mongo_db: Database[Any]) -> None:
    ensure_collections(mongo_db)
    mongo_db.point_balances.create_index("merchant_id", name="idx_merchant_customer")
    mongo_db.points_transactions.create_index("event_id", name="idx_event_id", unique=True)

    ensure_collections(mongo_db)

    assert set(mongo_db.point_balances.index_information()) == {"_id_", "idx_due_at"}
    assert "idx_event_id" not in mongo_db.points_transactions.index_information()


def test_sink_ignores_duplicates_and_counts_them(mongo_db: Database[Any]) -> None:
    ensure_collections(mongo_db)
    writer = MongoWriter(mongo_db, max_batch=100)
    writes = [("points_transactions", InsertOne({"_id": f"e{i}"})) for i in range(250)]

    first = writer.write(writes)
    again = writer.write(writes)

    assert (first.applied, first.duplicates, first.batches) == (250, 0, 3)
    assert (again.applied, again.duplicates) == (0, 250)
    assert mongo_db.points_transactions.count_documents({}) == 250


def test_sequence_guarded_upsert_never_goes_back(mongo_db: Database[Any]) -> None:
    writer = MongoWriter(mongo_db)

    def balance(seq: int, value: int) -> tuple[str, UpdateOne]:
        return "point_balances", UpdateOne(
            {"_id": "m:c", "seq": {"$lt": seq}},
            {"$set": {"seq": seq, "balance": value}},
            upsert=True,
        )

    writer.write([balance(2, 200)])
    stats = writer.write([balance(1, 100)])  # a replayed, older write

    assert stats.duplicates == 1
    assert mongo_db.point_balances.find_one({"_id": "m:c"}) == {
        "_id": "m:c",
        "seq": 2,
        "balance": 200,
    }


def test_sink_raises_on_a_write_error_that_is_not_a_duplicate(mongo_db: Database[Any]) -> None:
    mongo_db.point_balances.insert_one({"_id": "x", "balance": "not a number"})
    writer = MongoWriter(mongo_db)

    with pytest.raises(MongoSinkError, match="write"):
        writer.write([("point_balances", UpdateOne({"_id": "x"}, {"$inc": {"balance": 1}}))])


def test_balances_are_indexed_by_due_at_for_the_clock(mongo_db: Database[Any]) -> None:
    ensure_collections(mongo_db)

    assert mongo_db.point_balances.index_information()["idx_due_at"]["key"] == [("due_at", 1)]


def test_the_migration_gives_legacy_balances_their_seq_as_version_once(
    mongo_db: Database[Any],
) -> None:
    ensure_collections(mongo_db)
    mongo_db.point_balances.insert_many(
        [
            {"_id": "m:1", "balance": 10, "seq": 3},  # written before versions
            {"_id": "m:2", "balance": 5, "seq": 7, "v": 9},  # current: left alone
            {"_id": "m:3", "balance": 0},  # no seq to take it from
        ]
    )

    assert apply_mongo_migrations(mongo_db) == {BALANCE_VERSIONS: 1}
    versions = {d["_id"]: d.get("v") for d in mongo_db.point_balances.find()}
    assert versions == {"m:1": 3, "m:2": 9, "m:3": None}

    # Recorded as done: a later bootstrap does not scan the balances again...
    mongo_db.point_balances.insert_one({"_id": "m:4", "seq": 2})
    assert apply_mongo_migrations(mongo_db) == {}
    assert "v" not in stored(mongo_db, "m:4")
    # ...and run anyway, it touches only what still lacks a version.
    assert migrate_balance_versions(mongo_db) == 1
    assert migrate_balance_versions(mongo_db) == 0
    assert stored(mongo_db, "m:4")["v"] == 2


def stored(db: Database[Any], key: str) -> dict[str, Any]:
    doc = db.point_balances.find_one({"_id": key})
    assert doc is not None, key
    return dict(doc)


def snapshot(version: int, balance: int) -> BalanceSnapshot:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    return BalanceSnapshot(
        merchant_id=MERCHANT,
        customer=7,
        balance=balance,
        pending=0,
        lifetime_earned=balance,
        seq=version,
        version=version,
        updated_at=at,
        next_expiry=None,
        due_at=at,
    )


def test_the_version_guard_updates_a_legacy_balance_only_after_the_migration(
    mongo_db: Database[Any],
) -> None:
    ensure_collections(mongo_db)
    key = balance_id(MERCHANT, 7)
    mongo_db.point_balances.insert_one({"_id": key, "balance": 30, "seq": 3})
    writer = MongoWriter(mongo_db)

    assert writer.write([balance_write(snapshot(4, 40))]).duplicates == 1  # no `v`: no match
    apply_mongo_migrations(mongo_db)
    assert writer.write([balance_write(snapshot(3, 35))]).duplicates == 1  # not newer than seq
    assert writer.write([balance_write(snapshot(4, 40))]).applied == 1

    doc = stored(mongo_db, key)
    assert (doc["balance"], doc["v"]) == (40, 4)
    assert doc["due_at"] == datetime(2026, 3, 1)  # noqa: DTZ001 - BSON dates read back naive


def test_a_first_balance_is_inserted_and_a_replayed_one_never_goes_back(
    mongo_db: Database[Any],
) -> None:
    # Version 1 is an insert (cheaper for the store); replayed after newer versions landed, it
    # is a duplicate key, and the newer balance stays. Version 2 and 3 in one unordered batch
    # with the first: the insert lands first, then the guarded updates in order.
    ensure_collections(mongo_db)
    writer = MongoWriter(mongo_db)

    first = writer.write([balance_write(snapshot(n, 10 * n)) for n in (1, 2, 3)])
    replayed = writer.write([balance_write(snapshot(1, 10)), balance_write(snapshot(2, 20))])

    assert (first.applied, first.duplicates) == (3, 0)
    assert (replayed.applied, replayed.duplicates) == (0, 2)
    doc = stored(mongo_db, balance_id(MERCHANT, 7))
    assert (doc["balance"], doc["v"], doc["shopify_customer_id"]) == (30, 3, 7)
