"""The RFM flow's states as compact rows (plain tuples), as loyalty/state_rows.py does for points.

An order's and a customer's rows are what their keys hold and snapshot; amounts travel as
their Decimal text, so they come back with the same digits. The merchant's state is one per
shop and bounded, so its row is the state object itself.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from loyalty.rfm import SCORES, Scores, Segment, segment_for
from loyalty.rfm_customers import RfmCustomer
from loyalty.rfm_merchants import RfmMerchant
from loyalty.rfm_orders import RfmOrder
from loyalty.rfm_window import CustomerWindow, DayTotal
from loyalty.state_rows import RowVersionError

VERSION = 1
_PAID, _CANCELLED, _TEST = 1, 2, 4
_SEGMENTS = tuple(Segment)


def order_row(order: RfmOrder) -> tuple[Any, ...]:
    flags = (_PAID if order.paid else 0) | (_CANCELLED if order.cancelled else 0)
    flags |= _TEST if order.test else 0
    subtotal = None if order.subtotal is None else str(order.subtotal)
    return (
        VERSION,
        order.customer,
        order.day,
        subtotal,
        flags,
        str(order.refunded),
        order.refund_ids,
    )


def order_from_row(row: object) -> RfmOrder:
    _v, customer, day, subtotal, flags, refunded, refund_ids = _checked(row, "order", 7)
    return RfmOrder(
        customer=customer,
        day=day,
        subtotal=None if subtotal is None else Decimal(subtotal),
        paid=bool(flags & _PAID),
        cancelled=bool(flags & _CANCELLED),
        test=bool(flags & _TEST),
        refunded=Decimal(refunded),
        refund_ids=tuple(refund_ids),
    )


def customer_row(customer: RfmCustomer) -> tuple[Any, ...]:
    days = tuple(
        part
        for day in sorted(customer.window.days)
        for part in (day, customer.window.days[day].orders, str(customer.window.days[day].net))
    )
    scores = customer.scores
    packed = 0 if scores is None else scores.r * 100 + scores.f * 10 + scores.m
    segment = -1 if customer.segment is None else _SEGMENTS.index(customer.segment)
    return (
        VERSION,
        customer.window.as_of,
        days,
        packed,
        segment,
        customer.version,
        customer.updates,
        customer.seq,
    )


def customer_from_row(row: object) -> RfmCustomer:
    _v, as_of, days, packed, segment, scales_version, updates, seq = _checked(row, "customer", 8)
    window = CustomerWindow(
        {days[i]: DayTotal(days[i + 1], Decimal(days[i + 2])) for i in range(0, len(days), 3)},
        as_of,
    )
    return RfmCustomer(
        window=window,
        scores=_unpacked(packed),
        segment=None if segment < 0 else _SEGMENTS[segment],
        version=scales_version,
        updates=updates,
        seq=seq,
    )


def _unpacked(packed: int) -> Scores | None:
    if packed == 0:
        return None
    r, f, m = packed // 100, packed // 10 % 10, packed % 10
    if not {r, f, m} <= set(SCORES):
        raise RowVersionError(f"not a scores value: {packed}")
    return Scores(r, f, m, segment_for(r, f))


def merchant_row(merchant: RfmMerchant) -> tuple[Any, ...]:
    return (VERSION, merchant)


def merchant_from_row(row: object) -> RfmMerchant:
    _version, merchant = _checked(row, "merchant", 2)
    if not isinstance(merchant, RfmMerchant):
        raise RowVersionError("not an RFM merchant row")
    return merchant


def _checked(row: object, kind: str, size: int) -> tuple[Any, ...]:
    if not isinstance(row, tuple) or len(row) != size or row[0] != VERSION:
        raise RowVersionError(
            f"not a version-{VERSION} RFM {kind} row: delete the RFM flow's recovery store "
            "and replay"
        )
    return row
