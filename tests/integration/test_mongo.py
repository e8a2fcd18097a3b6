"""MongoDB (wire protocol): unique indexes and the batched sink on a real server."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from connectors.store import COLLECTIONS
from loyalnest.bootstrap.mongo import ensure_collections
from sinks.mongo import MongoSinkError, MongoWriter


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

    assert set(mongo_db.point_balances.index_information()) == {"_id_"}
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
