"""MongoDB collections and their indexes, unique ones included."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.database import Database

from loyalty.i18n import BUILT_IN

DAY_SECONDS = 24 * 3600

COLLECTIONS: dict[str, list[IndexModel]] = {
    # The ledger. event_id is deterministic, so a replayed write is rejected as a duplicate.
    "points_transactions": [
        IndexModel([("event_id", ASCENDING)], name="idx_event_id", unique=True),
        IndexModel(
            [("merchant_id", ASCENDING), ("customer_id", ASCENDING), ("created_at", DESCENDING)],
            name="idx_merchant_customer_created",
        ),
        IndexModel([("created_at", ASCENDING)], name="idx_created_at"),
    ],
    # One document per customer (_id = merchant:customer), holding an absolute balance and
    # the sequence number that guards it against older, replayed writes.
    "point_balances": [
        IndexModel(
            [("merchant_id", ASCENDING), ("customer_id", ASCENDING)],
            name="idx_merchant_customer",
            unique=True,
        ),
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
}


def ensure_collections(db: Database[Any]) -> list[str]:
    """Create missing collections and indexes; return the names of collections created."""
    existing = set(db.list_collection_names())
    created = [name for name in COLLECTIONS if name not in existing]
    for name in created:
        db.create_collection(name)
    for name, indexes in COLLECTIONS.items():
        db[name].create_indexes(indexes)
    return created


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


def load_translations(db: Database[Any]) -> dict[tuple[str, str], str]:
    """Built-in descriptions, overridden by whatever the collection holds."""
    stored = {(d["key"], d["locale"]): d["value"] for d in db.translations.find()}
    return {**BUILT_IN, **stored}
