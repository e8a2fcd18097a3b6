"""The documents the points flow writes for a customer's first earn, built by the flow's code."""

from __future__ import annotations

from datetime import datetime

from connectors.points_records import balance_write, entry_write
from loyalty.customers import BalanceSnapshot, LedgerEntry
from loyalty.i18n import BUILT_IN
from loyalty.ledger import Kind, Source
from sinks.mongo import MongoWrite


def first_earn_writes(
    event_id: str,
    merchant_id: str,
    customer: int,
    order_id: int,
    points: int,
    at: datetime,
    correlation_id: str,
) -> list[MongoWrite]:
    """A ledger entry and the balance document after it, as for one paid order."""
    entry = LedgerEntry(
        event_id=event_id,
        merchant_id=merchant_id,
        customer=customer,
        kind=Kind.EARN,
        points=points,
        balance=points,
        seq=1,
        text_key="points.earned.order",
        locale="en",
        at=at,
        source=Source.ORDER,
        source_id=str(order_id),
        spendable_delta=points,
        order_id=order_id,
        correlation_id=correlation_id,
    )
    snapshot = BalanceSnapshot(
        merchant_id=merchant_id,
        customer=customer,
        balance=points,
        pending=0,
        lifetime_earned=points,
        seq=1,
        version=1,
        updated_at=at,
        next_expiry=None,
        due_at=None,
    )
    return [entry_write(entry, BUILT_IN), balance_write(snapshot)]
