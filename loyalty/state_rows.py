"""The flow states as rows: plain tuples of ints, strings and bytes, for keeping and snapshots.

The points flow holds one state per order and one per customer, for millions of keys. Kept as
objects, a customer who has earned once is about twenty of them (the state, its datetimes,
lots, pending points, dedup arrays), 1.7 KB per customer with its order; as one row, pickled,
it is one bytes object of a few hundred bytes. The same bytes are the key's recovery snapshot,
so a snapshot costs nothing more and holds no class names: renaming a class never breaks a
recovery store. A row starts with its format version; a row of another version is refused
with a clear error instead of being misread.

Times are whole microseconds since the Unix epoch (exact both ways: states hold UTC times);
amounts are their Decimal text (exact, and the same digits back); terms are their text.
"""

from __future__ import annotations

import sys
from array import array
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from loyalty.customers import Boost, CustomerState, TierChange
from loyalty.dedup import RecentIds
from loyalty.ledger import OrderState, SkipReason
from loyalty.lots import Held, Lot, Lots
from loyalty.policy import Expiry

ORDER_ROW_VERSION = 1
CUSTOMER_ROW_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_ORDER_ROW_BEFORE_AMOUNTS = 9  # an order row's length before reversals carried amounts
_ROW_BEFORE_TIERS = 18  # a customer row's length before the tier and the boosts were added
# OrderState's two booleans, in one int.
_TAXES_INCLUDED = 1
_CANCELLED = 2

Row = tuple[Any, ...]


class RowVersionError(ValueError):
    """A row written by another version of the code (an old recovery store, for one)."""


def micros_of(at: datetime) -> int:
    """A UTC time as whole microseconds since the Unix epoch (exact both ways)."""
    return (at - _EPOCH) // _MICROSECOND


def time_of(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _optional_micros(at: datetime | None) -> int | None:
    return None if at is None else micros_of(at)


def _optional_time(micros: int | None) -> datetime | None:
    return None if micros is None else time_of(micros)


def _check(row: object, version: int, what: str) -> Row:
    if not isinstance(row, tuple) or not row or row[0] != version:
        raise RowVersionError(
            f"not a version-{version} {what} row: state saved by another version of LoyalNest "
            "(delete the flow's recovery store and replay, as the README's upgrade notes say)"
        )
    return row


# ------------------------------------------------------------------------------- orders


def order_row(state: OrderState) -> Row:
    flags = (_TAXES_INCLUDED if state.taxes_included else 0) | (
        _CANCELLED if state.cancelled else 0
    )
    refunds = None
    if state.refunds is not None:
        refunds = tuple(
            (refund_id, None) if amounts is None else (refund_id, str(amounts[0]), str(amounts[1]))
            for refund_id, amounts in state.refunds.items()
        )
    skip = None if state.skip_reason is None else state.skip_reason.value
    return (
        ORDER_ROW_VERSION,
        state.customer,
        flags,
        str(state.basis),
        state.earned,
        state.reversed,
        skip,
        str(state.refunded),
        refunds,
        str(state.amount_reversed),
    )


def order_from_row(row: object) -> OrderState:
    checked = _check(row, ORDER_ROW_VERSION, "order")
    # Rows kept before reversals carried amounts end at the refunds: nothing was sent then.
    _, customer, flags, basis, earned, reversed_, skip, refunded, refunds, amount_reversed = (
        (*checked, "0") if len(checked) == _ORDER_ROW_BEFORE_AMOUNTS else checked
    )
    return OrderState(
        customer=customer,
        taxes_included=bool(flags & _TAXES_INCLUDED),
        basis=Decimal(basis),
        earned=earned,
        reversed=reversed_,
        cancelled=bool(flags & _CANCELLED),
        skip_reason=None if skip is None else SkipReason(skip),
        refunded=Decimal(refunded),
        refunds=None if refunds is None else {r[0]: _refund_amounts(r) for r in refunds},
        amount_reversed=Decimal(amount_reversed),
    )


def _refund_amounts(row: Row) -> tuple[Decimal, Decimal] | None:
    return None if row[1] is None else (Decimal(row[1]), Decimal(row[2]))


# ---------------------------------------------------------------------------- customers


def customer_row(state: CustomerState) -> Row:
    held = None
    if state.held is not None:
        held = tuple(
            (origin, h.points, micros_of(h.release_at), micros_of(h.earned_at), str(h.expiry))
            for origin, h in state.held.items()
        )
    lots = tuple((micros_of(lot.expires_at), lot.points, lot.warned) for lot in state.lots.dated)
    recent = state.recent
    return (
        CUSTOMER_ROW_VERSION,
        state.balance,
        state.pending,
        state.lifetime_earned,
        state.seq,
        state.version,
        _optional_micros(state.clock),
        _optional_micros(state.last_activity),
        _optional_micros(state.warned_due),
        str(state.expiry),
        state.warning_days,
        state.locale,
        held,
        lots,
        recent.keys.tobytes(),
        recent.days.tobytes(),
        recent.oldest_day,
        recent.horizon_day,
        _tier_row(state.tier),
        _boosts_row(state.boosts),
    )


def _tier_row(tier: TierChange | None) -> Row | None:
    if tier is None:
        return None
    return (
        tier.merchant_id,
        tier.customer,
        tier.revision,
        tier.tier,
        str(tier.multiplier),
        micros_of(tier.at),
    )


def _boosts_row(boosts: dict[int, Boost] | None) -> Row | None:
    if boosts is None:
        return None
    return tuple((i, str(b.multiplier), b.base, micros_of(b.at)) for i, b in boosts.items())


def customer_from_row(row: object) -> CustomerState:
    (
        _,
        balance,
        pending,
        lifetime_earned,
        seq,
        version,
        clock,
        last_activity,
        warned_due,
        expiry,
        warning_days,
        locale,
        held,
        lots,
        keys,
        days,
        oldest_day,
        horizon_day,
        tier,
        boosts,
    ) = _with_tiers(_check(row, CUSTOMER_ROW_VERSION, "customer"))
    return CustomerState(
        balance=balance,
        pending=pending,
        lifetime_earned=lifetime_earned,
        seq=seq,
        version=version,
        clock=_optional_time(clock),
        last_activity=_optional_time(last_activity),
        warned_due=_optional_time(warned_due),
        expiry=Expiry.parse(expiry),
        warning_days=warning_days,
        # Shared, as the live states share it: one string per language, not one per customer.
        locale=sys.intern(locale),
        held=None if held is None else {h[0]: _held(h) for h in held},
        lots=Lots([Lot(time_of(at), points, warned) for at, points, warned in lots]),
        recent=RecentIds(_array("Q", keys), _array("l", days), oldest_day, horizon_day),
        tier=None if tier is None else _tier(tier),
        boosts=None if boosts is None else {b[0]: _boost(b) for b in boosts},
    )


def _with_tiers(row: Row) -> Row:
    """Rows kept before tiers existed end without the tier and the boosts: they had none."""
    return (*row, None, None) if len(row) == _ROW_BEFORE_TIERS else row


def _tier(row: Row) -> TierChange:
    merchant_id, customer, revision, name, multiplier, at = row
    return TierChange(merchant_id, customer, revision, name, Decimal(multiplier), time_of(at))


def _boost(row: Row) -> Boost:
    _, multiplier, base, at = row
    return Boost(Decimal(multiplier), base, time_of(at))


def _held(row: Row) -> Held:
    _, points, release_at, earned_at, expiry = row
    return Held(points, time_of(release_at), time_of(earned_at), Expiry.parse(expiry))


def _array(typecode: str, data: bytes) -> array[int]:
    values = array(typecode)
    values.frombytes(data)
    return values
