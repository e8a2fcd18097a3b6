"""The referrals flow's order stage, pure: one order's story, told to its friend's state.

Keyed by shop and order id, like the other flows' order stages: webhooks come twice, out of
order, and a refund names its order but not its customer. The state keeps what decides the
order's part in a referral (its customer, when it was placed, its subtotal after discounts,
paid, cancelled, the refunded subtotal, the code it names and who placed it, as hashes) and
sends the friend's state a `FriendOrder` whenever that changes. Paid and cancelled are sticky,
a refund counts once by its id, and a refund arriving before its order waits for it. Guest and
test orders are never referrals, and say nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from loyalty.exact import EXACT, ZERO
from loyalty.orders import Facts, OrderFacts, RefundFacts, counted_refund
from loyalty.pii import ADDRESS_HASH, ADDRESS_OBJECTS, NAME_HASH, is_hash
from loyalty.referral_codes import attribution
from loyalty.referral_fraud import Identity
from loyalty.referral_terms import DEFAULT_REFERRAL_TERMS, ReferralTerms
from loyalty.referrals import FriendOrder


@dataclass(frozen=True)
class Extras:
    """What an order webhook says for referrals beyond its facts (loyalty/referral_codes.py,
    loyalty/pii.py): the code it names, its customer's hashes, its browser IP's hash."""

    code: str | None = None
    email_hash: str | None = None
    name_hash: str | None = None
    address_hashes: frozenset[str] = frozenset()
    ip_hash: str | None = None


NO_EXTRAS = Extras()


@dataclass(frozen=True)
class ReferralUpdate:
    """One order webhook for the order stage, with the terms the API attached to it."""

    shop: str
    merchant_id: str
    facts: Facts
    extras: Extras
    received_at: datetime
    terms: ReferralTerms
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class ReferralOrder:
    friend: int | None = None
    placed_at: datetime | None = None
    subtotal: Decimal | None = None  # None until an order webhook arrives
    paid: bool = False
    cancelled: bool = False
    test: bool = False
    refunded: Decimal = ZERO
    refund_ids: tuple[int, ...] = ()
    extras: Extras = NO_EXTRAS
    terms: ReferralTerms = DEFAULT_REFERRAL_TERMS
    locale: str = "en"

    @property
    def net_subtotal(self) -> Decimal:
        return max(ZERO, EXACT.subtract(self.subtotal or ZERO, self.refunded))


def apply_referral_order(
    state: ReferralOrder | None, update: ReferralUpdate
) -> tuple[ReferralOrder, list[FriendOrder]]:
    before = state or ReferralOrder()
    facts = update.facts
    after = (
        _with_refund(before, facts)
        if isinstance(facts, RefundFacts)
        else _with_order(before, facts, update)
    )
    if after == before or not _tells(after):
        return after, []
    return after, [_friend_order(after, update, facts.order_id)]


def _with_order(state: ReferralOrder, facts: OrderFacts, update: ReferralUpdate) -> ReferralOrder:
    return replace(
        state,
        friend=facts.customer if facts.customer is not None else state.friend,
        placed_at=facts.placed_at or state.placed_at,
        subtotal=facts.subtotal,
        paid=state.paid or facts.paid,
        cancelled=state.cancelled or facts.cancelled,
        test=facts.test,
        # The first webhook's code, identity and terms stay the order's: the referral is
        # decided under what held when the order came.
        extras=state.extras if state.subtotal is not None else update.extras,
        terms=state.terms if state.subtotal is not None else update.terms,
        locale=state.locale if state.subtotal is not None else update.locale,
    )


def _with_refund(state: ReferralOrder, facts: RefundFacts) -> ReferralOrder:
    refunded, refund_ids = counted_refund(state.refunded, state.refund_ids, facts)
    return replace(state, refunded=refunded, refund_ids=refund_ids)


def _tells(order: ReferralOrder) -> bool:
    """Whether the friend's state hears of this order at all."""
    known = order.friend is not None and order.placed_at is not None
    return known and order.subtotal is not None and not order.test


def _friend_order(order: ReferralOrder, update: ReferralUpdate, order_id: int) -> FriendOrder:
    assert order.friend is not None
    assert order.placed_at is not None
    assert order.subtotal is not None
    extras = order.extras
    return FriendOrder(
        shop=update.shop,
        merchant_id=update.merchant_id,
        friend=order.friend,
        order_id=order_id,
        placed_at=order.placed_at,
        at=update.received_at,
        paid=order.paid,
        cancelled=order.cancelled,
        net_subtotal=order.net_subtotal,
        fully_refunded=order.subtotal > ZERO and order.refunded >= order.subtotal,
        code=extras.code,
        identity=Identity(order.friend, extras.email_hash, extras.name_hash, extras.address_hashes),
        ip_hash=extras.ip_hash,
        terms=order.terms,
        locale=order.locale,
    )


def extras_of(body: dict[str, Any]) -> Extras:
    """What a redacted order body says for referrals: the code it names, and its customer's
    and browser's hashes. Only hashes are taken: a body that somehow still holds a raw value
    (one produced before the API redacted) gives nothing, so no raw PII reaches flow state.
    An order naming no code can never be a referral, so its hashes are not kept at all (most
    orders: their state stays small)."""
    found = attribution(body)
    if found is None:
        return NO_EXTRAS
    customer = body.get("customer") if isinstance(body.get("customer"), dict) else {}
    assert isinstance(customer, dict)
    addresses = [customer.get("default_address"), *(body.get(n) for n in ADDRESS_OBJECTS)]
    details = body.get("client_details") if isinstance(body.get("client_details"), dict) else {}
    assert isinstance(details, dict)
    return Extras(
        code=found.code,
        email_hash=_hash(customer.get("email")) or _hash(body.get("email")),
        name_hash=_hash(customer.get(NAME_HASH)),
        address_hashes=frozenset(
            h for a in addresses if isinstance(a, dict) if (h := _hash(a.get(ADDRESS_HASH)))
        ),
        ip_hash=_hash(body.get("browser_ip")) or _hash(details.get("browser_ip")),
    )


def _hash(value: object) -> str | None:
    return value if isinstance(value, str) and is_hash(value) else None
