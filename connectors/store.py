"""The MongoDB store, below the flows and the API: collection names, their indexes, and the
loader of the stored translations.

The bootstrap creates what is listed here (`loyalnest.bootstrap.mongo`); the documents a
collection holds are built by the code that writes them (the points ledger's in
`connectors.points_records`, the order archive's in `flows.order_archive`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from loyalty.fields import is_locale
from loyalty.i18n import BUILT_IN

log = logging.getLogger(__name__)

# The ledger; `_id` = event_id, so a replayed write is rejected as a duplicate.
LEDGER = "points_transactions"
# One document per customer (_id = merchant:customer), holding an absolute balance and the
# sequence number that guards it against older, replayed writes.
BALANCES = "point_balances"
REDEMPTIONS = "reward_redemptions"
# Manual adjustments (_id = adjustment id, from merchant and Idempotency-Key).
ADJUSTMENTS = "points_adjustments"
PROCESSED_EVENTS = "processed_events"
# Transaction descriptions (seeded by the bootstrap; merchants may edit or add entries).
TRANSLATIONS = "translations"
# Every order event as received (redacted by the API), once (see flows/order_archive.py).
ORDER_EVENTS = "order_events"
# RFM (flows/rfm.py): one document per customer (_id = merchant:customer) with their values and
# the scores last announced, and one per merchant (_id = merchant) with its current picture.
RFM_CUSTOMERS = "rfm_customers"
RFM_MERCHANTS = "rfm_merchants"
# The bootstrap's data migrations that are done (_id = name), so that none scans twice.
SCHEMA_MIGRATIONS = "schema_migrations"

DAY_SECONDS = 24 * 3600

# The ledger's and the balances' `_id`s are deterministic (the event id; merchant:customer), so
# their unique `_id` index is the dedup constraint. A second unique index on the same value
# would only double the store's work on every write.
REQUEST_INDEXES = [
    IndexModel(
        [("merchant_id", ASCENDING), ("idempotency_key", ASCENDING)],
        name="idx_merchant_idempotency_key",
        unique=True,
    ),
    IndexModel(
        [("merchant_id", ASCENDING), ("customer_id", ASCENDING)], name="idx_merchant_customer"
    ),
]
COLLECTIONS: dict[str, list[IndexModel]] = {
    LEDGER: [
        IndexModel(
            [("customer_id", ASCENDING), ("merchant_id", ASCENDING), ("seq", DESCENDING)],
            name="idx_customer_id_merchant_id_seq",  # a customer's ledger page, newest first
        ),
        IndexModel([("created_at", ASCENDING)], name="idx_created_at"),
    ],
    BALANCES: [
        # The clock job's question every round: who is due (`due_at <= now`)?
        IndexModel([("due_at", ASCENDING)], name="idx_due_at"),
    ],
    # Requests made through the API (redemptions, adjustments): found again by their
    # Idempotency-Key, and listed per customer.
    REDEMPTIONS: REQUEST_INDEXES,
    ADJUSTMENTS: REQUEST_INDEXES,
    PROCESSED_EVENTS: [
        IndexModel([("event_id", ASCENDING)], name="idx_event_id", unique=True),
        IndexModel(
            [("created_at", ASCENDING)], name="idx_created_at_ttl", expireAfterSeconds=DAY_SECONDS
        ),
    ],
    TRANSLATIONS: [
        IndexModel([("key", ASCENDING), ("locale", ASCENDING)], name="idx_key_locale", unique=True),
    ],
    ORDER_EVENTS: [
        IndexModel(
            [("merchant_id", ASCENDING), ("order_id", ASCENDING)], name="idx_merchant_order"
        ),
    ],
    # The rescoring round's questions (loyalty/rfm_customers.needs_tick): whose stored score
    # in one dimension lies outside that score's band now, and whose oldest day has left the
    # window.
    RFM_CUSTOMERS: [
        IndexModel(
            [("merchant_id", ASCENDING), ("r", ASCENDING), ("last_order_day", ASCENDING)],
            name="idx_merchant_r_day",
        ),
        IndexModel(
            [("merchant_id", ASCENDING), ("f", ASCENDING), ("frequency", ASCENDING)],
            name="idx_merchant_f_frequency",
        ),
        IndexModel(
            [("merchant_id", ASCENDING), ("m", ASCENDING), ("monetary", ASCENDING)],
            name="idx_merchant_m_monetary",
        ),
        IndexModel(
            [("merchant_id", ASCENDING), ("next_exit", ASCENDING)], name="idx_merchant_exit"
        ),
    ],
    RFM_MERCHANTS: [],
    SCHEMA_MIGRATIONS: [],
}

# Indexes earlier versions created that no query needs any more (see COLLECTIONS).
RETIRED_INDEXES: dict[str, tuple[str, ...]] = {
    LEDGER: ("idx_event_id", "idx_merchant_customer_created"),
    BALANCES: ("idx_merchant_customer",),
}


def merged(stored: Iterable[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Built-in descriptions, overridden by the stored documents that are usable.

    A stored template that cannot be filled (a typo such as `{point}`, a value that is not
    text) is skipped with a warning: one bad edit must not make every ledger entry in that
    language a dead letter.
    """
    translations = dict(BUILT_IN)
    for doc in stored:
        key, locale, template = doc.get("key"), doc.get("locale"), doc.get("value")
        if isinstance(key, str) and isinstance(locale, str) and usable(locale, template):
            translations[(key, locale)] = str(template)
        else:
            log.warning("ignoring translation %r/%r: %r", key, locale, template)
    return translations


def usable(locale: str, template: object) -> bool:
    if not isinstance(template, str) or not is_locale(locale):
        return False
    try:
        template.format(points=0, balance=0)
    except (KeyError, IndexError, ValueError, AttributeError):
        return False
    return True


def load_translations(db: Database[Any]) -> dict[tuple[str, str], str]:
    """The translations the flows describe ledger entries with (the API loads the same
    collection through its asyncio client, then `merged`)."""
    return merged(db[TRANSLATIONS].find())
