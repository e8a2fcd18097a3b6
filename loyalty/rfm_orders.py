"""The RFM order stage, pure: what each order contributes to its customer's window.

Keyed by shop and order id. It keeps what decides the order's contribution (customer, day,
subtotal, paid, cancelled, test, refunded subtotal and the refunds already counted) and tells
the customer stage every change of it as an `OrderChange`. Webhooks may come twice or out of
order: paid and cancelled are sticky, a refund counts once by its id, and a refund that comes
before its order waits in the state for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from loyalty.errors import InvalidEventError
from loyalty.exact import ZERO
from loyalty.orders import Facts, OrderFacts, RefundFacts, counted_refund
from loyalty.rfm import day_number
from loyalty.rfm_window import NOTHING, Contribution


@dataclass(frozen=True, slots=True)
class OrderChange:
    """One order's contribution to `customer`'s `day` went from `before` to `after`.

    A change from NOTHING to NOTHING says only that the customer is known (a prospect until a
    paid order counts)."""

    customer: int
    day: int
    before: Contribution
    after: Contribution


@dataclass(frozen=True, slots=True)
class RfmOrder:
    customer: int | None = None  # None: a guest checkout, or no order webhook yet
    day: int | None = None
    subtotal: Decimal | None = None  # None until an order webhook arrives
    paid: bool = False
    cancelled: bool = False
    test: bool = False
    refunded: Decimal = ZERO
    refund_ids: tuple[int, ...] = ()

    @property
    def scored(self) -> bool:
        """Whether the order belongs to a customer's window at all (not a guest, not a test)."""
        return self.customer is not None and self.day is not None and not self.test

    def contribution(self) -> Contribution:
        if not self.scored or self.subtotal is None:
            return NOTHING
        return Contribution.of(
            paid=self.paid,
            test=self.test,
            cancelled=self.cancelled,
            subtotal=self.subtotal,
            refunded=self.refunded,
        )


def apply_order_facts(state: RfmOrder | None, facts: Facts) -> tuple[RfmOrder, list[OrderChange]]:
    """The order's next state and the changes to tell customers (none for a repeat)."""
    before = state or RfmOrder()
    after = (
        _with_refund(before, facts)
        if isinstance(facts, RefundFacts)
        else _with_order(before, facts)
    )
    return after, changes(before, after)


def _with_order(state: RfmOrder, facts: OrderFacts) -> RfmOrder:
    if facts.placed_at is not None:
        day = day_number(facts.placed_at)
    elif state.day is not None:
        day = state.day
    else:
        raise InvalidEventError("order has neither processed_at nor created_at: RFM cannot date it")
    return replace(
        state,
        customer=facts.customer if facts.customer is not None else state.customer,
        day=day,
        subtotal=facts.subtotal,
        paid=state.paid or facts.paid,
        cancelled=state.cancelled or facts.cancelled,
        test=facts.test,
    )


def _with_refund(state: RfmOrder, facts: RefundFacts) -> RfmOrder:
    refunded, refund_ids = counted_refund(state.refunded, state.refund_ids, facts)
    return replace(state, refunded=refunded, refund_ids=refund_ids)


def changes(before: RfmOrder, after: RfmOrder) -> list[OrderChange]:
    """What moved between two states of one order, for the customers concerned."""
    old, new = before.contribution(), after.contribution()
    same_place = (before.customer, before.day) == (after.customer, after.day)
    if same_place and before.scored:
        return [] if old == new else [_change(after, old, new)]
    moved = [_change(before, old, NOTHING)] if before.scored and old != NOTHING else []
    return moved + ([_change(after, NOTHING, new)] if after.scored else [])


def _change(order: RfmOrder, before: Contribution, after: Contribution) -> OrderChange:
    if order.customer is None or order.day is None:
        raise ValueError("an order with no customer or day changes no window")
    return OrderChange(order.customer, order.day, before, after)
