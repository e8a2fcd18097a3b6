"""The tiers flow's states as rows: plain tuples of ints, strings and bytes.

As with the points flow's states (loyalty/state_rows.py), the row is what a key holds and what
its recovery snapshot is: pickling it is several times cheaper than pickling the dataclasses
(Decimals and datetimes each pickle as a call), and it names no class, so renaming one never
breaks a recovery store. A row of another version is refused with a clear error.
"""

from __future__ import annotations

import sys
from array import array
from decimal import Decimal
from typing import Any

from loyalty.dedup import RecentIds
from loyalty.state_rows import RowVersionError, micros_of, time_of
from loyalty.tier_counts import TierCounts
from loyalty.tier_customers import TierCustomer
from loyalty.tiers import CustomerMetric, OrderMetric

TIER_ROW_VERSION = 1
COUNTS_ROW_VERSION = 1

Row = tuple[Any, ...]


def tier_row(c: TierCustomer) -> Row:
    recent = c.recent
    return (
        TIER_ROW_VERSION,
        c.shop,
        c.locale,
        _metric_row(c.points),
        _metric_row(c.spent),
        c.tier,
        c.revision,
        tuple((name, micros_of(at)) for name, at in c.paid.items()),
        None if c.clock is None else micros_of(c.clock),
        None if c.due is None else micros_of(c.due),
        recent.keys.tobytes(),
        recent.days.tobytes(),
        recent.oldest_day,
        recent.horizon_day,
    )


def tier_from_row(row: object) -> TierCustomer:
    if not isinstance(row, tuple) or not row or row[0] != TIER_ROW_VERSION:
        raise RowVersionError(
            f"not a version-{TIER_ROW_VERSION} tier row: state saved by another version of "
            "LoyalNest (delete the tiers flow's recovery store and replay it)"
        )
    (_, shop, locale, points, spent, tier, revision, paid, clock, due) = row[:10]
    keys, days, oldest_day, horizon_day = row[10:]
    return TierCustomer(
        shop=sys.intern(shop),
        locale=sys.intern(locale),
        points=_metric(points),
        spent=_metric(spent),
        tier=tier,
        revision=revision,
        paid={name: time_of(at) for name, at in paid},
        clock=None if clock is None else time_of(clock),
        due=None if due is None else time_of(due),
        recent=RecentIds(_array("Q", keys), _array("l", days), oldest_day, horizon_day),
    )


def _metric_row(m: CustomerMetric) -> Row:
    orders = tuple((i, micros_of(o.at), str(o.amount)) for i, o in m.orders.items())
    return (str(m.settled), orders)


def _metric(row: Row) -> CustomerMetric:
    settled, orders = row
    return CustomerMetric(
        {i: OrderMetric(time_of(at), Decimal(amount)) for i, at, amount in orders},
        Decimal(settled),
    )


def _array(typecode: str, data: bytes) -> array[int]:
    values = array(typecode)
    values.frombytes(data)
    return values


def counts_row(c: TierCounts) -> Row:
    """A merchant's customers per tier name."""
    at = None if c.updated_at is None else micros_of(c.updated_at)
    return (COUNTS_ROW_VERSION, tuple(c.counts.items()), at)


def counts_from_row(row: object) -> TierCounts:
    if not isinstance(row, tuple) or not row or row[0] != COUNTS_ROW_VERSION:
        raise RowVersionError(
            f"not a version-{COUNTS_ROW_VERSION} tier counts row: state saved by another "
            "version of LoyalNest (delete the tiers flow's recovery store and replay it)"
        )
    _, counts, at = row
    return TierCounts(dict(counts), None if at is None else time_of(at))
