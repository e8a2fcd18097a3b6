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

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property

from loyalty import ids
from loyalty.errors import InvalidEventError
from loyalty.exact import EXACT, ZERO
from loyalty.limits import MAX_POINTS
from loyalty.orders import Facts, OrderFacts, RefundFacts
from loyalty.policy import DEFAULT_WARNING_DAYS, NO_EXPIRY, Expiry, Policy
from loyalty.rules import earn_basis, points_for, refund_basis, reversal_target


class Kind(StrEnum):
    """Ledger entry types: the seed's earn, spend, expire and bonus, and what else moves points."""

    EARN = "earn"  # an order's points (pending first when the merchant holds them)
    REVERSE = "reverse"  # points given back for a refund, a cancellation or a revoked reward
    SPEND = "spend"  # a redemption
    ADJUST = "adjust"  # a merchant's manual change, up or down
    BONUS = "bonus"  # a reward that is not an order's: referral, tier entry
    RELEASE = "release"  # pending points becoming spendable
    EXPIRE = "expire"


class Source(StrEnum):
    """Where a change comes from: with the source id, it answers "why did my points move?"."""

    ORDER = "order"
    REFUND = "refund"
    CANCEL = "cancel"
    REDEMPTION = "redemption"
    ADJUSTMENT = "adjustment"
    REFERRAL = "referral"
    TIER = "tier"
    PENDING = "pending"
    EXPIRY = "expiry"


# Sources whose changes come from the order stage, identified (for dedup) as they always were.
ORDER_SOURCES = frozenset({Source.ORDER, Source.REFUND, Source.CANCEL})
# What a points change may do to a balance; the customer stage's own entries are not commands.
CHANGE_KINDS = frozenset({Kind.EARN, Kind.REVERSE, Kind.BONUS})


class SkipReason(StrEnum):
    GUEST = "guest_order"
    TEST = "test_order"
    ZERO_BASIS = "zero_basis"


@dataclass(frozen=True)
class OrderUpdate:
    """An order or refund webhook, with when it was received and under which terms."""

    shop: str
    topic: str
    facts: Facts
    received_at: datetime
    policy: Policy = field(default_factory=Policy)
    correlation_id: str | None = None

    @property
    def order_id(self) -> int:
        return self.facts.order_id


@dataclass(frozen=True)
class Terms:
    """How the points of an earn are held: the merchant's terms when the order was received."""

    release_at: datetime | None = None  # pending until then; None: spendable at once
    expiry: Expiry = NO_EXPIRY
    warning_days: int = DEFAULT_WARNING_DAYS


@dataclass(frozen=True)
class PointsChange:
    """Points an order, a referral or a tier gives or takes back, for the customer stage."""

    shop: str
    customer: int
    source: Source
    source_id: str
    kind: Kind
    points: int
    text_key: str
    locale: str
    at: datetime
    # Order changes: the order, and the business key unique per order ("earn", "cancel",
    # "refund:<id>") from which their ids were always derived.
    order_id: int | None = None
    key: str | None = None
    refund_id: int | None = None
    correlation_id: str | None = None
    terms: Terms = Terms()
    # Order changes: the money behind the points (the earn basis, a refund's basis, what a
    # cancellation takes back), for the tiers' `amount_spent`. None on records written before.
    amount: Decimal | None = None

    # Cached: both are read several times per change on the flow's hot path (uuid5 each).
    @cached_property
    def event_id(self) -> str:
        if self.source in ORDER_SOURCES:
            return ids.event_key(ids.normalize_shop(self.shop), self.order_id, self.key)
        return ids.event_key(self.merchant_id, self.source.value, self.source_id, self.kind)

    @cached_property
    def merchant_id(self) -> str:
        return ids.merchant_key(self.shop)

    @property
    def origin(self) -> str:
        """What the points belong to: a reversal names the origin of the earn it reverses."""
        if self.source in ORDER_SOURCES:
            return f"order:{self.order_id}"
        return f"{self.source.value}:{self.source_id}"


@dataclass(frozen=True)
class Skipped:
    """An order that earns nothing, and why (counted and logged, not an error)."""

    shop: str
    order_id: int
    reason: SkipReason


@dataclass(slots=True)
class OrderState:
    """What an order must remember, and no more: there is one per order, kept for late refunds
    and cancellations, so its size is the flow's memory per order (slots, no empty containers).
    """

    customer: int | None = None
    taxes_included: bool = False
    basis: Decimal = ZERO
    earned: int = 0
    reversed: int = 0
    cancelled: bool = False
    skip_reason: SkipReason | None = None
    refunded: Decimal = ZERO
    # The money the reversals sent so far took back (their `amount`s): a refund too small to
    # reverse a point is carried by the next reversal, so the amounts add up exactly.
    amount_reversed: Decimal = ZERO
    # Refunds by id in arrival order: (subtotal, tax) until reversed, then None, kept only to
    # recognize a redelivery. None until the first refund: most orders never get one.
    refunds: dict[int, tuple[Decimal, Decimal] | None] | None = None


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
    earn = _change(order, update, Kind.EARN, points, "earn", "points.earned.order", basis)
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
    amount = _amount_reversed(order, order.basis)
    return [
        _change(order, update, Kind.REVERSE, remaining, "cancel", "points.reversed.cancel", amount)
    ]


def _on_refund(order: OrderState, update: OrderUpdate, refund: RefundFacts) -> list[OrderOutput]:
    if order.refunds is None:
        order.refunds = {}
    if refund.refund_id in order.refunds:
        return []  # the same refund again (a redelivery or a split record)
    order.refunds[refund.refund_id] = (refund.subtotal, refund.tax)
    return _reverse_refunds(order, update)


def _reverse_refunds(order: OrderState, update: OrderUpdate) -> list[OrderOutput]:
    """Reverse, cumulatively and once each, the refunds not yet accounted for."""
    if not order.earned or order.cancelled:
        return []
    changes: list[OrderOutput] = []
    refunds = order.refunds or {}
    for refund_id, amounts in refunds.items():
        if amounts is None:
            continue
        subtotal, tax = amounts
        refunds[refund_id] = None  # accounted for: only the id is still needed
        basis = refund_basis(subtotal, tax, taxes_included=order.taxes_included)
        order.refunded = EXACT.add(order.refunded, basis)
        delta = reversal_target(order.earned, order.basis, order.refunded) - order.reversed
        if delta > 0:
            order.reversed += delta
            amount = _amount_reversed(order, min(order.refunded, order.basis))
            changes.append(
                _change(
                    order,
                    update,
                    Kind.REVERSE,
                    delta,
                    f"refund:{refund_id}",
                    "points.reversed.refund",
                    amount,
                    refund_id=refund_id,
                )
            )
    return changes


def _amount_reversed(order: OrderState, total: Decimal) -> Decimal:
    """The money a reversal takes back: what `total` (all reversed so far, with it) adds."""
    amount = max(EXACT.subtract(total, order.amount_reversed), ZERO)
    order.amount_reversed = EXACT.add(order.amount_reversed, amount)
    return amount


def _change(
    order: OrderState,
    update: OrderUpdate,
    kind: Kind,
    points: int,
    key: str,
    text_key: str,
    amount: Decimal,
    refund_id: int | None = None,
) -> PointsChange:
    assert order.customer is not None  # only orders with a customer ever earn
    if key == "earn":
        source, source_id = Source.ORDER, str(update.order_id)
    elif refund_id is not None:
        source, source_id = Source.REFUND, str(refund_id)
    else:
        source, source_id = Source.CANCEL, str(update.order_id)
    return PointsChange(
        shop=ids.normalize_shop(update.shop),
        customer=order.customer,
        source=source,
        source_id=source_id,
        kind=kind,
        points=points,
        text_key=text_key,
        locale=update.policy.locale,
        at=update.received_at,
        order_id=update.order_id,
        key=key,
        refund_id=refund_id,
        correlation_id=update.correlation_id,
        terms=_terms(update) if kind == Kind.EARN else Terms(),
        amount=amount,
    )


def _terms(update: OrderUpdate) -> Terms:
    policy = update.policy
    release_at = update.received_at + timedelta(days=policy.pending_days)
    return Terms(
        release_at=release_at if policy.pending_days else None,
        expiry=policy.expiry,
        warning_days=policy.warning_days,
    )
