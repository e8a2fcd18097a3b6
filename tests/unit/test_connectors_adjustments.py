"""What the API and the CLI share about adjustments, and the document the flow completes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bson
import pytest

from connectors.adjustments import (
    AdjustmentRequest,
    BadAdjustmentError,
    asks_the_same,
    command_record,
    new_adjustment,
    pending_document,
    view,
)
from connectors.points_records import outcome_write
from connectors.store import ADJUSTMENTS, REDEMPTIONS
from loyalty import ids
from loyalty.commands import decode_command
from loyalty.customers import (
    AdjustmentOutcome,
    Redemption,
    RedemptionOutcome,
    Status,
)

MERCHANT = str(ids.merchant_id("shop-a.myshopify.com"))
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REQUEST = AdjustmentRequest(customer=42, points=-20, memo="Damaged return")


def adjustment() -> Any:
    return new_adjustment(
        MERCHANT, REQUEST, idempotency_key="k-1", locale="he", at=AT, correlation_id="c-1"
    )


def update_paths(update: Any) -> tuple[set[str], set[str]]:
    document = bson.decode(update.raw)
    return set(document.get("$set", {})), set(document.get("$setOnInsert", {}))


def test_the_pending_document_keeps_the_merchants_text_apart_from_the_failure_reason() -> None:
    document = pending_document(adjustment())

    assert document["_id"] == str(ids.adjustment_id(MERCHANT, "k-1"))
    assert (document["status"], document["reason"], document["memo"]) == (
        "pending",
        None,
        "Damaged return",
    )
    assert (document["points"], document["shopify_customer_id"]) == (-20, 42)
    assert asks_the_same(document, REQUEST)
    assert not asks_the_same(document, AdjustmentRequest(42, -20, "Damaged return."))


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED])
def test_an_outcome_write_never_sets_and_inserts_the_same_path(status: Status) -> None:
    # MongoDB refuses an update naming one path in both $set and $setOnInsert: the flow would
    # stop on every adjustment (this is how `reason` once collided with the merchant's text).
    reason = None if status == Status.COMPLETED else "insufficient_points"
    collection, write = outcome_write(AdjustmentOutcome(adjustment(), status, reason))
    decided, facts = update_paths(write._doc)

    assert collection == ADJUSTMENTS
    assert decided & facts == set()
    assert "reason" in decided
    assert "memo" in facts


def test_a_redemption_outcome_write_never_sets_and_inserts_the_same_path_either() -> None:
    redemption = Redemption("r-1", MERCHANT, 42, 10, "reward", "k", "en", AT)
    collection, write = outcome_write(RedemptionOutcome(redemption, Status.COMPLETED))
    decided, facts = update_paths(write._doc)

    assert collection == REDEMPTIONS
    assert decided & facts == set()


def test_the_command_record_is_keyed_by_customer_and_decodes_to_the_adjustment() -> None:
    key, value = command_record(adjustment())

    assert key == f"{MERCHANT}:42".encode()
    assert decode_command(value) == adjustment()


def test_the_view_names_the_failure_reason_reason_and_the_merchants_text_memo() -> None:
    document = {
        **pending_document(adjustment()),
        "status": "failed",
        "reason": "insufficient_points",
        # naive, as MongoDB returns it (UTC)
        "decided_at": datetime(2025, 3, 1, 12, 0, 1, tzinfo=UTC).replace(tzinfo=None),
    }

    shown = view(document)

    assert shown == {
        "adjustment_id": document["_id"],
        "status": "failed",
        "reason": "insufficient_points",
        "customer_id": 42,
        "points": -20,
        "memo": "Damaged return",
        "balance_after": None,
        "ledger_event_id": None,
        "created_at": "2025-03-01T12:00:00Z",
        "decided_at": "2025-03-01T12:00:01Z",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"points": True, "reason": "r"},
        {"points": 0, "reason": "r"},
        {"points": 10**6 + 1, "reason": "r"},
        {"points": 2.0, "reason": "r"},
        {"points": 1, "reason": ""},
        {"points": 1, "reason": "r" * 201},
        {"points": 1, "reason": None},
        None,
    ],
)
def test_a_request_outside_the_rules_is_refused(body: Any) -> None:
    with pytest.raises(BadAdjustmentError):
        AdjustmentRequest.from_body(42, body)
