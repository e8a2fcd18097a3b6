"""Create the MongoDB collections and indexes listed in `connectors.store`; seed translations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database

from connectors.store import BALANCES, COLLECTIONS, RETIRED_INDEXES, SCHEMA_MIGRATIONS, TRANSLATIONS
from loyalty.i18n import BUILT_IN


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
    return db[TRANSLATIONS].bulk_write(ops, ordered=False).upserted_count


# Balance documents written before versions have `seq` but no `v`. The version guard
# (`v: {$lt: version}`) matches no document without `v`, so the points flow could never update
# them: they get `v = seq`. One update in the store (SecantusDB and MongoDB 4.2+ both take a
# pipeline update); documents that have `v` are left alone, so running it again changes nothing.
# It is recorded as done, so an older points flow must not be writing any more (upgrade with
# `make down`, then `make up`); to run it again, delete its record from `schema_migrations`.
BALANCE_VERSIONS = "point_balances_v_from_seq"


def migrate_balance_versions(db: Database[Any]) -> int:
    """Give every balance document without `v` the version `v = seq`; return how many."""
    result = db[BALANCES].update_many(
        {"v": {"$exists": False}, "seq": {"$exists": True}}, [{"$set": {"v": "$seq"}}]
    )
    return result.modified_count


MIGRATIONS = {BALANCE_VERSIONS: migrate_balance_versions}


def apply_mongo_migrations(db: Database[Any]) -> dict[str, int]:
    """Run the migrations not yet recorded as done (each scans a whole collection: once is
    enough); return {name: documents changed} for those run now."""
    done = {doc["_id"] for doc in db[SCHEMA_MIGRATIONS].find({}, {"_id": 1})}
    applied = {}
    for name, migrate in MIGRATIONS.items():
        if name in done:
            continue
        applied[name] = migrate(db)
        # Recorded only once it succeeded: a bootstrap that stopped halfway runs it again.
        db[SCHEMA_MIGRATIONS].update_one(
            {"_id": name},
            {"$setOnInsert": {"applied_at": datetime.now(UTC), "documents": applied[name]}},
            upsert=True,
        )
    return applied
