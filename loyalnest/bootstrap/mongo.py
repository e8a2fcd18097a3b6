"""Create the MongoDB collections and indexes listed in `connectors.store`; seed translations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database

from connectors.store import COLLECTIONS, RETIRED_INDEXES, TRANSLATIONS
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
