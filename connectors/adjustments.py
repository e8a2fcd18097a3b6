"""Manual adjustments as requests: accepted at the edge, decided by the points flow.

The API (`POST /v1/customers/{id}/adjustments`) and the CLI (`loyalnest points adjust`) both
record a pending document in `points_adjustments` under an id derived from the merchant and the
Idempotency-Key, then send a `points.adjust` command keyed merchant:customer; the customer
stage, the single writer of the balance, decides it and writes the outcome onto that document
(connectors/points_records.py). Repeating a request with the same key finds the same document,
and re-sends the command while it is pending (the customer stage applies an adjustment once).

What both sides share lives here: the bounds of a request, the document, the command record
and the view of a document. Each does its own IO (the API with async pymongo and its producer,
the CLI with the blocking clients).

Names: the merchant's free text is `reason` in the request (as the issue names it) but `memo`
in documents and answers, because `reason` there is the failure reason (`insufficient_points`,
`invalid_points`), as on redemptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.points_records import adjustment_facts
from connectors.store import ADJUSTMENTS
from loyalty import ids
from loyalty.commands import MAX_REASON, customer_key, encode_adjustment
from loyalty.customers import MAX_ADJUSTMENT, Adjustment, Status
from loyalty.times import iso_z

__all__ = ["ADJUSTMENTS"]  # the collection, for the API and the CLI

POINTS_RULE = (
    f"points must be a non-zero integer from -{MAX_ADJUSTMENT:,} to {MAX_ADJUSTMENT:,} "
    "(a JSON number without a fraction; not a string or a boolean)"
)
REASON_RULE = f"reason must be a string of 1 to {MAX_REASON} characters"


class BadAdjustmentError(ValueError):
    """A request value outside its rule; the message states the rule."""


def adjustment_points(value: object) -> int:
    # bool is an int in Python, and `true` is no number of points.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadAdjustmentError(POINTS_RULE)
    if value == 0 or abs(value) > MAX_ADJUSTMENT:
        raise BadAdjustmentError(POINTS_RULE)
    return value


def adjustment_memo(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REASON:
        raise BadAdjustmentError(REASON_RULE)
    return value


@dataclass(frozen=True)
class AdjustmentRequest:
    """What a merchant asks: add (points > 0) or deduct (points < 0), and why."""

    customer: int
    points: int
    memo: str

    @classmethod
    def from_body(cls, customer: int, body: object) -> AdjustmentRequest:
        """From a JSON body `{"points": int, "reason": str}`; BadAdjustmentError if it is not."""
        if not isinstance(body, dict):
            raise BadAdjustmentError("body must be a JSON object")
        return cls(
            customer, adjustment_points(body.get("points")), adjustment_memo(body.get("reason"))
        )


def new_adjustment(
    merchant_id: str,
    request: AdjustmentRequest,
    *,
    idempotency_key: str,
    locale: str,
    at: datetime,
    correlation_id: str | None,
) -> Adjustment:
    return Adjustment(
        adjustment_id=str(ids.adjustment_id(merchant_id, idempotency_key)),
        merchant_id=merchant_id,
        customer=request.customer,
        points=request.points,
        reason=request.memo,
        idempotency_key=idempotency_key,
        locale=locale,
        at=at,
        correlation_id=correlation_id,
    )


def pending_document(adjustment: Adjustment) -> dict[str, Any]:
    """The document recorded before the command is sent; the flow's outcome completes it."""
    return {
        "_id": adjustment.adjustment_id,
        "status": Status.PENDING.value,
        "reason": None,
        **adjustment_facts(adjustment),
    }


def asks_the_same(document: dict[str, Any], request: AdjustmentRequest) -> bool:
    """Whether a document made under an Idempotency-Key is for this very request (else the key
    is being reused for a different one)."""
    return (document["shopify_customer_id"], document["points"], document["memo"]) == (
        request.customer,
        request.points,
        request.memo,
    )


def is_pending(document: dict[str, Any]) -> bool:
    return bool(document["status"] == Status.PENDING.value)


def command_record(adjustment: Adjustment) -> tuple[bytes, bytes]:
    """The `points.commands` record: key merchant:customer, the `points.adjust` JSON value."""
    return customer_key(adjustment.merchant_id, adjustment.customer), encode_adjustment(adjustment)


def view(document: dict[str, Any]) -> dict[str, Any]:
    """An adjustment as the API answers it and the CLI prints it."""
    decided_at = document.get("decided_at")
    return {
        "adjustment_id": document["_id"],
        "status": document["status"],
        "reason": document.get("reason"),  # why it failed; null unless failed
        "customer_id": document["shopify_customer_id"],
        "points": document["points"],
        "memo": document["memo"],  # the merchant's reason text, as sent
        "balance_after": document.get("balance_after"),  # once completed
        "ledger_event_id": document.get("ledger_event_id"),  # once completed
        "created_at": iso_z(document["created_at"]),
        "decided_at": iso_z(decided_at) if decided_at else None,
    }
