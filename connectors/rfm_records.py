"""What the RFM flow writes: its MongoDB documents and its `rfm.updated` records.

Days are stored as midnight UTC (MongoDB has no date-only type), spend as Decimal128, so range
queries compare them exactly. Each document carries a version (`v`) and is replaced only by a
newer one, as the points balances are: a replayed write changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from pymongo import InsertOne, ReplaceOne

from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS
from loyalty import ids
from loyalty.rfm import Scale, Scales, day_date, day_number
from loyalty.rfm_commands import scales_from, scales_json
from loyalty.rfm_customers import RfmCustomer, RfmUpdate
from loyalty.rfm_merchants import MerchantPicture
from loyalty.times import as_utc
from sinks.mongo import MongoWrite, encoded

SCHEMA_VERSION = "1.0.0"


def midnight(day: int | None) -> datetime | None:
    return None if day is None else datetime.combine(day_date(day), time(), tzinfo=UTC)


def customer_doc_id(merchant_id: str, customer: int) -> str:
    return f"{merchant_id}:{customer}"


def customer_write(
    merchant_id: str, customer: int, state: RfmCustomer, lookback: int
) -> MongoWrite:
    values, scores = state.values(), state.scores
    document = {
        "merchant_id": merchant_id,
        "customer_id": ids.customer_key(merchant_id, customer),
        "shopify_customer_id": customer,
        "last_order_day": midnight(values.last_order_day),
        "frequency": values.frequency,
        "monetary": Decimal128(values.monetary),
        "r": None if scores is None else scores.r,
        "f": None if scores is None else scores.f,
        "m": None if scores is None else scores.m,
        "segment": None if state.segment is None else state.segment.value,
        "scales_version": state.version,
        "next_exit": midnight(state.next_exit(lookback)),
        "as_of": midnight(state.window.as_of),
        "v": state.seq,
    }
    return _versioned(RFM_CUSTOMERS, customer_doc_id(merchant_id, customer), document, state.seq)


def merchant_write(merchant_id: str, picture: MerchantPicture) -> MongoWrite:
    document = {
        "as_of": midnight(picture.as_of),
        "scales": scales_json(picture.scales),
        "counts": {segment.value: n for segment, n in picture.counts.items()},
        "total": picture.total,
        "lookback_days": picture.lookback,
        "v": picture.version,
    }
    return _versioned(RFM_MERCHANTS, merchant_id, document, picture.version)


def _versioned(collection: str, doc_id: str, document: dict[str, Any], version: int) -> MongoWrite:
    if version == 1:
        return collection, InsertOne(encoded({"_id": doc_id, **document}))
    return collection, ReplaceOne(
        encoded({"_id": doc_id, "v": {"$lt": version}}), encoded(document), upsert=True
    )


@dataclass(frozen=True)
class StoredPicture:
    """A merchant's picture as the readers use it, from its `rfm_merchants` document."""

    as_of: int
    total: int
    counts: dict[str, int]
    scales: Scales


def stored_picture(document: dict[str, Any]) -> StoredPicture:
    return StoredPicture(
        as_of=day_number(as_utc(document["as_of"])),
        total=int(document["total"]),
        counts={name: int(n) for name, n in document["counts"].items()},
        scales=scales_from(document["scales"]),
    )


def updated_event(merchant_id: str, customer: int, update: RfmUpdate) -> dict[str, Any]:
    """The `rfm.updated` record (schema avro/rfm_updated.avsc)."""
    scores, values = update.scores, update.values
    return {
        "event_id": ids.event_key("rfm.updated", merchant_id, customer, update.sequence),
        "merchant_id": merchant_id,
        "customer_id": ids.customer_key(merchant_id, customer),
        "shopify_customer_id": customer,
        "recency_days": values.recency_days(update.as_of),
        "frequency": values.frequency,
        "monetary": format(values.monetary, "f"),
        "r": None if scores is None else scores.r,
        "f": None if scores is None else scores.f,
        "m": None if scores is None else scores.m,
        "segment": update.segment.value,
        "previous_segment": None
        if update.previous_segment is None
        else update.previous_segment.value,
        "as_of": day_date(update.as_of),
        "sequence": update.sequence,
        "schema_version": SCHEMA_VERSION,
    }


# Earlier than any order: `last_order_day >= EARLIEST` is "has a last order day" as an index
# range (`$ne: None` is not one, and the store then reads every document).
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


def stale_customers(merchant_id: str, scales: Scales, as_of: int) -> list[dict[str, Any]]:
    """The queries for the customers `needs_tick` names (loyalty/rfm_customers.py), in the
    stored documents: an oldest day that has left the window, nothing announced yet, a
    prospect still holding scores, a customer with orders and no scores, or a stored score
    whose band no longer holds the value. A customer may match several.

    Each query is equalities and one range on a prefix of one RFM_CUSTOMERS index. One query
    OR-ing them all would be one question, but the store answers an `$or` (and `$ne`) by
    reading every document of the collection: 14-17 s for 100,000 customers against
    20-60 ms per range (measured on SecantusDB)."""
    merchant = {"merchant_id": merchant_id}
    queries: list[dict[str, Any]] = [
        {**merchant, "next_exit": {"$lte": midnight(as_of)}},
        {**merchant, "r": None, "last_order_day": None, "segment": None},
        {**merchant, "r": None, "last_order_day": {"$gte": EARLIEST}},
    ]
    queries += [{**merchant, "r": score, "last_order_day": None} for score in range(1, 6)]
    for score_field, value_field, scale, convert in (
        ("r", "last_order_day", scales.recency, midnight),
        ("f", "frequency", scales.frequency, _same),
        ("m", "monetary", scales.monetary, _decimal128),
    ):
        for score, (low, high) in enumerate(_bands(scale), start=1):
            if low is _UNREACHABLE:
                queries.append({**merchant, score_field: score})
                continue
            queries += [
                {**merchant, score_field: score, value_field: {operator: convert(bound)}}
                for operator, bound in (("$lt", low), ("$gte", high))
                if bound is not None
            ]
    return queries


_UNREACHABLE = object()


def _bands(scale: Scale[Any]) -> list[tuple[Any, Any]]:
    """Each score's values as [low, high), None for no bound; a score no value reaches has
    the low bound _UNREACHABLE."""
    b = scale.boundaries
    lows = (None, *b)
    highs = (*b, None)
    return [
        (_UNREACHABLE if score > 1 and low is None else low, high)
        for score, (low, high) in enumerate(zip(lows, highs, strict=True), start=1)
    ]


def _same(value: int) -> int:
    return value


def _decimal128(value: Decimal) -> Decimal128:
    return Decimal128(value)
