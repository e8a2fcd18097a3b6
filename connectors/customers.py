"""Core's `customers` table as the RFM read model keeps it: `rfm_score`, from `rfm.updated`.

`rfm_score` is a JSONB document (GIN-indexed, so `rfm_score @> '{"segment": "at_risk"}'` is an
index scan) holding one `rfm.updated` event's figures:

    {"segment": "champions", "r": 5, "f": 4, "m": 5, "recency_days": 3, "frequency": 7,
     "monetary": "812.40", "as_of": "2026-06-30", "sequence": 12}

`r`, `f`, `m` and `recency_days` are null for a prospect. `rfm.updated` is
sent when scores or the segment change, so the figures are those of that day (`as_of`); the
API serves the day's exact values from the RFM flow's own documents.

Each row keeps the highest `sequence` it has seen: a write of an older or the same event
changes nothing, so duplicates, replays and out-of-order deliveries are safe to repeat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from loyalty.errors import InvalidEventError

# One statement per batch: arrays in, one row per customer (ON CONFLICT may not touch a row
# twice in one statement, hence latest_per_customer). A customer Core does not know yet is
# inserted; its merchant must exist (the caller checks, see KNOWN_MERCHANTS). `updated_at`
# is the table's trigger's (migration 0005).
UPSERT_RFM_SCORES = """
INSERT INTO customers AS c (id, merchant_id, shopify_customer_id, rfm_score)
SELECT * FROM unnest(%(ids)s::uuid[], %(merchants)s::uuid[], %(shopify_ids)s::bigint[],
                     %(scores)s::jsonb[])
ON CONFLICT (id) DO UPDATE SET rfm_score = EXCLUDED.rfm_score
WHERE c.rfm_score IS NULL
   OR (c.rfm_score ->> 'sequence')::bigint < (EXCLUDED.rfm_score ->> 'sequence')::bigint
"""

KNOWN_MERCHANTS = "SELECT id::text FROM merchants WHERE id = ANY(%(ids)s::uuid[])"

# The read side's query for one segment's customers (used by the tests and by operators).
SEGMENT_MEMBERS = """
SELECT shopify_customer_id FROM customers
WHERE merchant_id = %(merchant)s::uuid
  AND rfm_score @> jsonb_build_object('segment', %(segment)s::text)
"""


@dataclass(frozen=True)
class RfmScoreRow:
    """One customer's `rfm_score` to store."""

    customer_id: str
    merchant_id: str
    shopify_customer_id: int
    sequence: int
    score: str  # the JSON document, as text


def rfm_score_row(record: dict[str, Any]) -> RfmScoreRow:
    """The row of a decoded `rfm.updated` record (avro/rfm_updated.avsc)."""
    try:
        score = {
            "segment": record["segment"],
            "r": record["r"],
            "f": record["f"],
            "m": record["m"],
            "recency_days": record["recency_days"],
            "frequency": record["frequency"],
            "monetary": record["monetary"],
            "as_of": _day(record["as_of"]).isoformat(),
            "sequence": record["sequence"],
        }
        return RfmScoreRow(
            customer_id=str(record["customer_id"]),
            merchant_id=str(record["merchant_id"]),
            shopify_customer_id=int(record["shopify_customer_id"]),
            sequence=int(record["sequence"]),
            score=json.dumps(score, separators=(",", ":")),
        )
    except KeyError as exc:
        raise InvalidEventError(f"rfm.updated record has no field {exc}") from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidEventError(f"rfm.updated record unusable: {exc}") from exc


def latest_per_customer(rows: Iterable[RfmScoreRow]) -> list[RfmScoreRow]:
    """Each customer's row with the highest sequence, in order of first appearance."""
    latest: dict[str, RfmScoreRow] = {}
    for row in rows:
        held = latest.get(row.customer_id)
        if held is None or held.sequence < row.sequence:
            latest[row.customer_id] = row
    return list(latest.values())


def upsert_params(rows: list[RfmScoreRow]) -> dict[str, list[Any]]:
    """UPSERT_RFM_SCORES' arrays for `rows` (one per customer)."""
    return {
        "ids": [r.customer_id for r in rows],
        "merchants": [r.merchant_id for r in rows],
        "shopify_ids": [r.shopify_customer_id for r in rows],
        "scores": [r.score for r in rows],
    }


def _day(value: object) -> date:
    if isinstance(value, date):
        return value
    raise ValueError(f"as_of {value!r} is not a date")
