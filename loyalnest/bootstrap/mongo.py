"""MongoDB collections and their indexes, unique ones included."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.database import Database

from loyalty.i18n import BUILT_IN

DAY_SECONDS = 24 * 3600

# The ledger's and the balances' `_id`s are deterministic (the event id; merchant:customer), so
# their unique `_id` index is the dedup constraint. A second unique index on the same value
# would only double the store's work on every write.
COLLECTIONS: dict[str, list[IndexModel]] = {
    # The ledger; `_id` = event_id, so a replayed write is rejected as a duplicate.
    "points_transactions": [
        IndexModel(
            [("customer_id", ASCENDING), ("merchant_id", ASCENDING), ("seq", DESCENDING)],
            name="idx_customer_id_merchant_id_seq",  # a customer's ledger page, newest first
        ),
        IndexModel([("created_at", ASCENDING)], name="idx_created_at"),
    ],
    # One document per customer (_id = merchant:customer), holding an absolute balance and
    # the version that guards it against older, replayed writes.
    "point_balances": [
        # The clock job's question every round: who is due (`due_at <= now`)?
        IndexModel([("due_at", ASCENDING)], name="idx_due_at"),
    ],
    "reward_redemptions": [
        IndexModel(
            [("merchant_id", ASCENDING), ("idempotency_key", ASCENDING)],
            name="idx_merchant_idempotency_key",
            unique=True,
        ),
        IndexModel(
            [("merchant_id", ASCENDING), ("customer_id", ASCENDING)], name="idx_merchant_customer"
        ),
    ],
    "processed_events": [
        IndexModel([("event_id", ASCENDING)], name="idx_event_id", unique=True),
        IndexModel(
            [("created_at", ASCENDING)], name="idx_created_at_ttl", expireAfterSeconds=DAY_SECONDS
        ),
    ],
    "translations": [
        IndexModel([("key", ASCENDING), ("locale", ASCENDING)], name="idx_key_locale", unique=True),
    ],
    # Every order event as received, once (see flows/order_archive.py).
    "order_events": [
        IndexModel(
            [("merchant_id", ASCENDING), ("order_id", ASCENDING)], name="idx_merchant_order"
        ),
    ],
    # The data migrations below that are done (_id = name), so that none scans twice.
    "schema_migrations": [],
}


def ensure_collections(db: Database[Any]) -> list[str]:
    """Create missing collections and indexes; return the names of collections created."""
    existing = set(db.list_collection_names())
    created = [name for name in COLLECTIONS if name not in existing]
    for name in created:
        db.create_collection(name)
    for name, indexes in COLLECTIONS.items():
        if indexes:
            db[name].create_indexes(indexes)
        drop_retired_indexes(db, name)
    return created


# Indexes earlier versions created that no query needs any more (see COLLECTIONS).
RETIRED_INDEXES: dict[str, tuple[str, ...]] = {
    "points_transactions": ("idx_event_id", "idx_merchant_customer_created"),
    "point_balances": ("idx_merchant_customer",),
}


def drop_retired_indexes(db: Database[Any], collection: str) -> None:
    present = set(db[collection].index_information())
    for index in RETIRED_INDEXES.get(collection, ()):
        if index in present:
            db[collection].drop_index(index)


def seed_translations(db: Database[Any]) -> int:
    """Insert the built-in descriptions that are missing; never overwrite edited ones."""
    now = datetime.now(UTC)
    ops = [
        UpdateOne(
            {"key": key, "locale": locale},
            {"$setOnInsert": {"value": value, "version": "1.0.0", "created_at": now}},
            upsert=True,
        )
        for (key, locale), value in BUILT_IN.items()
    ]
    return db.translations.bulk_write(ops, ordered=False).upserted_count


# Balance documents written before versions have `seq` but no `v`. The version guard
# (`v: {$lt: version}`) matches no document without `v`, so the points flow could never update
# them: they get `v = seq`. One update in the store (SecantusDB and MongoDB 4.2+ both take a
# pipeline update); documents that have `v` are left alone, so running it again changes nothing.
# It is recorded as done, so an older points flow must not be writing any more (upgrade with
# `make down`, then `make up`); to run it again, delete its record from `schema_migrations`.
BALANCE_VERSIONS = "point_balances_v_from_seq"


def migrate_balance_versions(db: Database[Any]) -> int:
    """Give every balance document without `v` the version `v = seq`; return how many."""
    result = db.point_balances.update_many(
        {"v": {"$exists": False}, "seq": {"$exists": True}}, [{"$set": {"v": "$seq"}}]
    )
    return result.modified_count


MIGRATIONS = {BALANCE_VERSIONS: migrate_balance_versions}


def apply_mongo_migrations(db: Database[Any]) -> dict[str, int]:
    """Run the migrations not yet recorded as done (each scans a whole collection: once is
    enough); return {name: documents changed} for those run now."""
    done = {doc["_id"] for doc in db.schema_migrations.find({}, {"_id": 1})}
    applied = {}
    for name, migrate in MIGRATIONS.items():
        if name in done:
            continue
        applied[name] = migrate(db)
        # Recorded only once it succeeded: a bootstrap that stopped halfway runs it again.
        db.schema_migrations.update_one(
            {"_id": name},
            {"$setOnInsert": {"applied_at": datetime.now(UTC), "documents": applied[name]}},
            upsert=True,
        )
    return applied
