"""The two state machines behind the points ledger, as pure functions.

1. Per order (keyed by shop:order): turns order and refund webhooks, in any arrival order and
   with any number of duplicates, into at most one earn, one reversal per refund id and one
   cancellation reversal. This is the business-key dedup: (shop, order id, kind).
2. Per customer (keyed by merchant:customer): the single writer of a balance. Applies those
   changes and redemptions in sequence, numbering each ledger entry, and never lets a
   redemption take the balance below zero. (A reversal may: the points were already spent.)

Between the two, changes travel through the `points.commands` topic keyed by merchant:customer,
next to redemptions. That log fixes the order in which one customer's changes and redemptions
are applied, so a replay after a crash makes exactly the decisions the first run made.

Both are `(state | None, input) -> (state, outputs)`: Bytewax keeps the state, tests call them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any

from loyalty import ids
from loyalty.errors import InvalidEventError
from loyalty.exact import EXACT, ZERO
from loyalty.limits import MAX_INT64, MAX_POINTS, MIN_INT64
from loyalty.orders import Facts, OrderFacts, RefundFacts
from loyalty.rules import earn_basis, points_for, refund_basis, reversal_target


class Kind(StrEnum):
    EARN = "earn"
    REVERSE = "reverse"
    SPEND = "spend"


class SkipReason(StrEnum):
    GUEST = "guest_order"
    TEST = "test_order"
    ZERO_BASIS = "zero_basis"


@dataclass(frozen=True)
class Policy:
    """The merchant's earning terms, attached to each webhook when it was received."""

    points_per_unit: Decimal = Decimal(1)
    locale: str = "en"


@dataclass(frozen=True)
class OrderUpdate:
    """An order or refund webhook, with when it was received and under which terms."""

    shop: str
    topic: str
    facts: Facts
    received_at: datetime
    policy: Policy = Policy()
    correlation_id: str | None = None

    @property
    def order_id(self) -> int:
        return self.facts.order_id


@dataclass(frozen=True)
class PointsChange:
    """Points an order earns or gives back, for the customer stage to apply."""

    shop: str
    customer: int
    order_id: int
    kind: Kind
    points: int
    key: str  # "earn", "refund:<id>" or "cancel": unique per order
    text_key: str
    locale: str
    at: datetime
    refund_id: int | None = None
    correlation_id: str | None = None

    # Cached: both are read several times per change on the flow's hot path (uuid5 each).
    @cached_property
    def event_id(self) -> str:
        return str(ids.event_id(ids.normalize_shop(self.shop), self.order_id, self.key))

    @cached_property
    def merchant_id(self) -> str:
        return str(ids.merchant_id(self.shop))


@dataclass(frozen=True)
class Skipped:
    """An order that earns nothing, and why (counted and logged, not an error)."""

    shop: str
    order_id: int
    reason: SkipReason


@dataclass
class OrderState:
    customer: int | None = None
    taxes_included: bool = False
    basis: Decimal = ZERO
    earned: int = 0
    reversed: int = 0
    cancelled: bool = False
    skip_reason: SkipReason | None = None
    # refund id -> (subtotal, tax), in arrival order; reversed ones are in `accounted`.
    # (Plain tuples: the shape recovery snapshots of earlier versions hold.)
    refunds: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    accounted: set[int] = field(default_factory=set)
    refunded: Decimal = ZERO

    def __deepcopy__(self, memo: dict[int, Any]) -> OrderState:
        # Bytewax deep-copies every changed state at each snapshot. Everything but the two
        # containers is immutable, so copying those is a full copy, 6x cheaper than generic.
        return replace(self, refunds=dict(self.refunds), accounted=set(self.accounted))


OrderOutput = PointsChange | Skipped


def apply_order(
    state: OrderState | None, update: OrderUpdate
) -> tuple[OrderState, list[OrderOutput]]:
    order = state or OrderState()
    if isinstance(update.facts, RefundFacts):
        return order, _on_refund(order, update, update.facts)
    return order, _on_order(order, update, update.facts)


def _on_order(order: OrderState, update: OrderUpdate, facts: OrderFacts) -> list[OrderOutput]:
    # Once an order has earned, its points belong to that customer: a later edit that moves
    # the order to someone else must not charge them the reversals.
    if not order.earned and facts.customer is not None:
        order.customer = facts.customer
    order.taxes_included = facts.taxes_included
    if update.topic == "orders/cancelled" or facts.cancelled:
        return _on_cancel(order, update)
    if order.earned or order.cancelled or not facts.paid:
        return []  # already earned, cancelled, or not paid yet (pending orders earn when paid)
    basis = earn_basis(facts)
    points = points_for(basis, update.policy.points_per_unit)
    if points > MAX_POINTS:
        raise InvalidEventError(f"order earns {points} points, more than the {MAX_POINTS} limit")
    reason = _skip_reason(facts, order.customer, points)
    if reason is not None:
        if reason == order.skip_reason:
            return []
        order.skip_reason = reason
        return [Skipped(ids.normalize_shop(update.shop), update.order_id, reason)]
    order.basis, order.earned = basis, points
    earn = _change(order, update, Kind.EARN, points, "earn", "points.earned.order")
    return [earn, *_reverse_refunds(order, update)]


def _skip_reason(facts: OrderFacts, customer: int | None, points: int) -> SkipReason | None:
    if facts.test:
        return SkipReason.TEST
    if customer is None:
        return SkipReason.GUEST
    if points <= 0:
        return SkipReason.ZERO_BASIS
    return None


def _on_cancel(order: OrderState, update: OrderUpdate) -> list[OrderOutput]:
    if order.cancelled:
        return []
    order.cancelled = True
    remaining = order.earned - order.reversed
    if remaining <= 0:
        return []
    order.reversed += remaining
    return [_change(order, update, Kind.REVERSE, remaining, "cancel", "points.reversed.cancel")]


def _on_refund(order: OrderState, update: OrderUpdate, refund: RefundFacts) -> list[OrderOutput]:
    if refund.refund_id in order.refunds:
        return []  # the same refund again (a redelivery or a split record)
    order.refunds[refund.refund_id] = (refund.subtotal, refund.tax)
    return _reverse_refunds(order, update)


def _reverse_refunds(order: OrderState, update: OrderUpdate) -> list[OrderOutput]:
    """Reverse, cumulatively and once each, the refunds not yet accounted for."""
    if not order.earned or order.cancelled:
        return []
    changes: list[OrderOutput] = []
    for refund_id, (subtotal, tax) in order.refunds.items():
        if refund_id in order.accounted:
            continue
        order.accounted.add(refund_id)
        basis = refund_basis(subtotal, tax, taxes_included=order.taxes_included)
        order.refunded = EXACT.add(order.refunded, basis)
        delta = reversal_target(order.earned, order.basis, order.refunded) - order.reversed
        if delta > 0:
            order.reversed += delta
            changes.append(
                _change(
                    order,
                    update,
                    Kind.REVERSE,
                    delta,
                    f"refund:{refund_id}",
                    "points.reversed.refund",
                    refund_id=refund_id,
                )
            )
    return changes


def _change(
    order: OrderState,
    update: OrderUpdate,
    kind: Kind,
    points: int,
    key: str,
    text_key: str,
    refund_id: int | None = None,
) -> PointsChange:
    assert order.customer is not None  # only orders with a customer ever earn
    return PointsChange(
        shop=ids.normalize_shop(update.shop),
        customer=order.customer,
        order_id=update.order_id,
        kind=kind,
        points=points,
        key=key,
        text_key=text_key,
        locale=update.policy.locale,
        at=update.received_at,
        refund_id=refund_id,
        correlation_id=update.correlation_id,
    )


# ---------------------------------------------------------------------------- customers


class RedemptionStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class Redemption:
    """A request to spend points, travelling through Kafka to the customer's single writer."""

    redemption_id: str
    merchant_id: str
    customer: int
    points: int
    reward_id: str
    idempotency_key: str
    locale: str
    at: datetime
    correlation_id: str | None = None


@dataclass(frozen=True)
class LedgerEntry:
    """One applied change: what moved, the balance after it, and its place in the sequence."""

    event_id: str
    merchant_id: str
    customer: int
    kind: Kind
    points: int
    balance: int
    seq: int
    text_key: str
    locale: str
    at: datetime
    order_id: int | None = None
    refund_id: int | None = None
    redemption_id: str | None = None
    correlation_id: str | None = None

    @property
    def delta(self) -> int:
        return self.points if self.kind == Kind.EARN else -self.points


@dataclass(frozen=True)
class RedemptionOutcome:
    redemption: Redemption
    status: RedemptionStatus
    reason: str | None = None
    entry: LedgerEntry | None = None


@dataclass
class CustomerState:
    balance: int = 0
    seq: int = 0
    # Ids of changes and redemptions already applied: a command delivered twice (at-least-once
    # output of the order stage, or a retried API request) is applied once.
    applied: set[str] = field(default_factory=set)

    def __deepcopy__(self, memo: dict[int, Any]) -> CustomerState:
        return replace(self, applied=set(self.applied))  # see OrderState.__deepcopy__


CustomerInput = PointsChange | Redemption
CustomerOutput = LedgerEntry | RedemptionOutcome


def apply_customer(
    state: CustomerState | None, item: CustomerInput
) -> tuple[CustomerState, list[CustomerOutput]]:
    customer = state or CustomerState()
    if isinstance(item, Redemption):
        return customer, _redeem(customer, item)
    if item.event_id in customer.applied:
        return customer, []
    _check_balance(customer.balance, item.points if item.kind == Kind.EARN else -item.points)
    customer.applied.add(item.event_id)
    return customer, [
        _post(
            customer,
            item.event_id,
            item.merchant_id,
            item.customer,
            item.kind,
            item.points,
            item.text_key,
            item.locale,
            item.at,
            order_id=item.order_id,
            refund_id=item.refund_id,
            correlation_id=item.correlation_id,
        )
    ]


def _check_balance(balance: int, delta: int) -> None:
    """Balances are stored as signed 64-bit integers: a change that would leave that range is
    refused with its reason before anything changes."""
    if not MIN_INT64 <= balance + delta <= MAX_INT64:
        raise InvalidEventError(
            f"balance {balance} changed by {delta:+} would leave the 64-bit integer range"
        )


def _redeem(customer: CustomerState, redemption: Redemption) -> list[CustomerOutput]:
    if redemption.redemption_id in customer.applied:
        return []
    customer.applied.add(redemption.redemption_id)
    if not 0 < redemption.points <= MAX_POINTS:
        return [RedemptionOutcome(redemption, RedemptionStatus.FAILED, "invalid_points")]
    if customer.balance < redemption.points:
        return [RedemptionOutcome(redemption, RedemptionStatus.FAILED, "insufficient_points")]
    entry = _post(
        customer,
        str(ids.event_id("redemption", redemption.redemption_id)),
        redemption.merchant_id,
        redemption.customer,
        Kind.SPEND,
        redemption.points,
        "points.spent.redemption",
        redemption.locale,
        redemption.at,
        redemption_id=redemption.redemption_id,
        correlation_id=redemption.correlation_id,
    )
    return [entry, RedemptionOutcome(redemption, RedemptionStatus.COMPLETED, entry=entry)]


def _post(
    customer: CustomerState,
    event_id: str,
    merchant_id: str,
    customer_id: int,
    kind: Kind,
    points: int,
    text_key: str,
    locale: str,
    at: datetime,
    **refs: Any,
) -> LedgerEntry:
    customer.seq += 1
    customer.balance += points if kind == Kind.EARN else -points
    return LedgerEntry(
        event_id=event_id,
        merchant_id=merchant_id,
        customer=customer_id,
        kind=kind,
        points=points,
        balance=customer.balance,
        seq=customer.seq,
        text_key=text_key,
        locale=locale,
        at=at,
        **refs,
    )
