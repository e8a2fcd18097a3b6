"""How the tiers flow's decisions are recorded: the `vip_tier.assigned` event
(avro/vip_tier_assigned.avsc) and the PostgreSQL `customer_tiers` row, whose `metric` document
is what the API computes a customer's status from.

The metric document, per metric (`points`, `spent`): the lifetime sum of orders no period
counts any more, and each recent order as [order id, ISO time it counts from, amount]; and
`paid`: when each tier's entry bonus was last paid, by the tier's name casefolded.

The merchant's counts: PostgreSQL `vip_tier_counts`, one row per merchant, newest first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from loyalty import ids
from loyalty.tier_counts import CountsSnapshot
from loyalty.tier_customers import TierMove, TierSnapshot, tier_id
from loyalty.tiers import CustomerMetric, OrderMetric

SCHEMA_VERSION = "1.0.0"


def tier_event(move: TierMove) -> dict[str, Any]:
    tier = move.tier
    previous = None if move.previous is None else tier_id(move.merchant_id, move.previous)
    return {
        "event_id": move.event_id,
        "customer_id": ids.customer_key(move.merchant_id, move.customer),
        "shopify_customer_id": move.customer,
        "merchant_id": move.merchant_id,
        "tier_id": None if tier is None else tier_id(move.merchant_id, tier.name),
        "tier_name": None if tier is None else tier.name,
        "previous_tier_id": previous,
        "multiplier": str(move.change().multiplier),
        "revision": move.revision,
        "assigned_at": move.at,
        "schema_version": SCHEMA_VERSION,
    }


def metric_document(
    points: CustomerMetric, spent: CustomerMetric, paid: Mapping[str, datetime]
) -> dict[str, Any]:
    return {
        "points": _metric(points),
        "spent": _metric(spent),
        "paid": {name: at.isoformat() for name, at in paid.items()},
    }


def _metric(metric: CustomerMetric) -> dict[str, Any]:
    return {
        "settled": format(metric.settled, "f"),
        "orders": [
            [order_id, o.at.isoformat(), format(o.amount, "f")]
            for order_id, o in metric.orders.items()
        ],
    }


def metrics_from_document(document: dict[str, Any]) -> tuple[CustomerMetric, CustomerMetric]:
    return _from(document["points"]), _from(document["spent"])


def paid_from_document(document: dict[str, Any]) -> dict[str, datetime]:
    return {name: datetime.fromisoformat(at) for name, at in document["paid"].items()}


def _from(document: dict[str, Any]) -> CustomerMetric:
    orders = {
        int(order_id): OrderMetric(datetime.fromisoformat(at), Decimal(amount))
        for order_id, at, amount in document["orders"]
    }
    return CustomerMetric(orders, Decimal(document["settled"]))


# Each snapshot replaces the row unless the row is newer: a snapshot written again after a
# crash (an older `updated_at`, or the same with a lower revision) leaves it as it is. The
# batch travels as one JSON document: one string to send, where arrays of JSON documents are
# escaped value by value in Python.
UPSERT_CUSTOMER_TIERS = """
INSERT INTO customer_tiers (merchant_id, customer_id, tier, revision, metric, updated_at, due_at)
SELECT r.merchant_id, r.customer_id, r.tier, r.revision, r.metric, r.updated_at, r.due_at
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    merchant_id uuid, customer_id bigint, tier text, revision int, metric jsonb,
    updated_at timestamptz, due_at timestamptz)
ON CONFLICT (merchant_id, customer_id) DO UPDATE SET
    tier = EXCLUDED.tier, revision = EXCLUDED.revision, metric = EXCLUDED.metric,
    updated_at = EXCLUDED.updated_at, due_at = EXCLUDED.due_at
WHERE (customer_tiers.updated_at, customer_tiers.revision)
    <= (EXCLUDED.updated_at, EXCLUDED.revision)
"""


# The customers time alone may move to another tier by now (served by idx_customer_tiers_due),
# in the clock's shape of a due document.
DUE_TIERS = """
SELECT merchant_id::text AS merchant_id, customer_id AS shopify_customer_id, due_at
FROM customer_tiers WHERE due_at <= %(now)s
"""


def latest_per_customer(snapshots: list[TierSnapshot]) -> list[TierSnapshot]:
    """Each customer's last snapshot in the batch (a statement may touch a row once)."""
    latest = {(s.merchant_id, s.customer): s for s in snapshots}
    return list(latest.values())


def upsert_params(snapshots: list[TierSnapshot]) -> dict[str, str]:
    rows = [
        {
            "merchant_id": s.merchant_id,
            "customer_id": s.customer,
            "tier": s.tier,
            "revision": s.revision,
            "metric": metric_document(s.points, s.spent, s.paid),
            "updated_at": s.updated_at.isoformat(),
            "due_at": None if s.due_at is None else s.due_at.isoformat(),
        }
        for s in snapshots
    ]
    return {"rows": json.dumps(rows, separators=(",", ":"))}


UPSERT_TIER_COUNTS = """
INSERT INTO vip_tier_counts (merchant_id, counts, customers, updated_at)
SELECT * FROM unnest(
    %(merchants)s::uuid[], %(counts)s::jsonb[], %(customers)s::int[], %(updated)s::timestamptz[])
ON CONFLICT (merchant_id) DO UPDATE SET
    counts = EXCLUDED.counts, customers = EXCLUDED.customers, updated_at = EXCLUDED.updated_at
WHERE vip_tier_counts.updated_at <= EXCLUDED.updated_at
"""


def counts_params(snapshots: list[CountsSnapshot]) -> dict[str, list[Any]]:
    latest = list({s.merchant_id: s for s in snapshots}.values())
    return {
        "merchants": [s.merchant_id for s in latest],
        "counts": [json.dumps(dict(s.counts)) for s in latest],
        "customers": [s.customers for s in latest],
        "updated": [s.updated_at for s in latest],
    }


def customer_tier_params(snapshots: list[TierSnapshot]) -> dict[str, str]:
    return upsert_params(latest_per_customer(snapshots))
