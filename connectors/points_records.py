"""What the points flow writes: MongoDB operations, Avro event records, cache updates.

Every write is safe to repeat. Ledger documents are inserted under their deterministic event id;
balances are upserted only over an older sequence number; a redemption leaves `pending` once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import InsertOne, UpdateOne

from connectors.balance_cache import CachedBalance
from connectors.store import BALANCES, LEDGER, REDEMPTIONS
from loyalty import ids
from loyalty.i18n import describe
from loyalty.ledger import LedgerEntry, Redemption, RedemptionOutcome, RedemptionStatus
from sinks.mongo import MongoWrite, encoded
from sinks.redis_cache import CacheUpdate

SCHEMA_VERSION = "1.0.0"

Translations = Mapping[tuple[str, str], str]


def balance_id(merchant_id: str, customer: int) -> str:
    return f"{merchant_id}:{customer}"


def ledger_document(entry: LedgerEntry, translations: Translations) -> dict[str, Any]:
    return {
        "_id": entry.event_id,
        "event_id": entry.event_id,
        "merchant_id": entry.merchant_id,
        "customer_id": str(ids.customer_id(entry.merchant_id, entry.customer)),
        "shopify_customer_id": entry.customer,
        "points": entry.points,
        "type": entry.kind.value,
        "balance_after": entry.balance,
        "seq": entry.seq,
        "locale": entry.locale,
        "description": describe(translations, entry.text_key, entry.locale, points=entry.points),
        "order_id": entry.order_id,
        "refund_id": entry.refund_id,
        "redemption_id": entry.redemption_id,
        "schema_version": SCHEMA_VERSION,
        "created_at": entry.at,
        "correlation_id": entry.correlation_id,
    }


def entry_writes(entry: LedgerEntry, translations: Translations) -> list[MongoWrite]:
    balance = UpdateOne(
        # The sequence guard: a replayed (older) write matches nothing, its upsert then hits
        # the _id and ends as a duplicate-key error, which the sink ignores.
        encoded({"_id": balance_id(entry.merchant_id, entry.customer), "seq": {"$lt": entry.seq}}),
        encoded(
            {
                "$set": {
                    "merchant_id": entry.merchant_id,
                    "customer_id": str(ids.customer_id(entry.merchant_id, entry.customer)),
                    "shopify_customer_id": entry.customer,
                    "balance": entry.balance,
                    "seq": entry.seq,
                    "updated_at": entry.at,
                }
            }
        ),
        upsert=True,
    )
    return [(LEDGER, InsertOne(encoded(ledger_document(entry, translations)))), (BALANCES, balance)]


def redemption_facts(r: Redemption) -> dict[str, Any]:
    """What a redemption document says about the request, whoever writes it first."""
    return {
        "merchant_id": r.merchant_id,
        "shopify_customer_id": r.customer,
        "customer_id": str(ids.customer_id(r.merchant_id, r.customer)),
        "points": r.points,
        "reward_id": r.reward_id,
        "idempotency_key": r.idempotency_key,
        "locale": r.locale,
        "schema_version": SCHEMA_VERSION,
        "created_at": r.at,
        "correlation_id": r.correlation_id,
    }


def outcome_write(outcome: RedemptionOutcome) -> MongoWrite:
    r = outcome.redemption
    decided: dict[str, Any] = {
        "status": outcome.status.value,
        "reason": outcome.reason,
        "decided_at": r.at,
    }
    if outcome.entry is not None:
        decided["ledger_event_id"] = outcome.entry.event_id
        decided["balance_after"] = outcome.entry.balance
    return REDEMPTIONS, UpdateOne(
        encoded({"_id": r.redemption_id, "status": RedemptionStatus.PENDING.value}),
        encoded({"$set": decided, "$setOnInsert": redemption_facts(r)}),
        upsert=True,
    )


def points_event(entry: LedgerEntry, translations: Translations) -> dict[str, Any]:
    """The `points.earned` record (schema avro/points_earned.avsc)."""
    return {
        "event_id": entry.event_id,
        "merchant_id": entry.merchant_id,
        "customer_id": str(ids.customer_id(entry.merchant_id, entry.customer)),
        "shopify_customer_id": entry.customer,
        "points": entry.points,
        "balance": entry.balance,
        "type": entry.kind.value,
        "locale": entry.locale,
        "description": describe(translations, entry.text_key, entry.locale, points=entry.points),
        "order_id": entry.order_id,
        "refund_id": entry.refund_id,
        "schema_version": SCHEMA_VERSION,
        "created_at": entry.at,
        "correlation_id": entry.correlation_id,
    }


def redemption_event(outcome: RedemptionOutcome) -> dict[str, Any]:
    """The `reward.redemption` record (schema avro/reward_redemption.avsc)."""
    r = outcome.redemption
    return {
        "event_id": str(ids.event_id("reward.redemption", r.redemption_id)),
        "redemption_id": r.redemption_id,
        "merchant_id": r.merchant_id,
        "customer_id": str(ids.customer_id(r.merchant_id, r.customer)),
        "reward_id": r.reward_id,
        "idempotency_key": r.idempotency_key,
        "points": r.points,
        "locale": r.locale,
        "schema_version": SCHEMA_VERSION,
        "created_at": r.at,
        "correlation_id": r.correlation_id,
    }


def cache_update(entry: LedgerEntry) -> CacheUpdate:
    return entry.merchant_id, entry.customer, CachedBalance(entry.balance, entry.seq, entry.at)
