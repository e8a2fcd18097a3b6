"""The referrals flow's order stage, pure: what each order webhook tells the friend's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from loyalty.orders import OrderFacts, RefundFacts
from loyalty.pii import Hasher, redact_order
from loyalty.referral_orders import (
    Extras,
    ReferralOrder,
    ReferralUpdate,
    apply_referral_order,
    extras_of,
)
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import FriendOrder

SHOP = "ref.myshopify.com"
MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
PLACED = datetime(2026, 5, 1, 12, tzinfo=UTC)
EXTRAS = Extras(code="ABCD2345", email_hash="h1:e", ip_hash="h1:ip")
TERMS = ReferralTerms(500, 0, Decimal("20.00"), 0)


def facts(
    status: str = "paid",
    *,
    cancelled: bool = False,
    test: bool = False,
    customer: int | None = 9,
    subtotal: str = "50.00",
) -> OrderFacts:
    return OrderFacts(
        order_id=1,
        customer=customer,
        financial_status=status,
        cancelled=cancelled,
        test=test,
        taxes_included=False,
        subtotal=Decimal(subtotal),
        total_tax=None,
        placed_at=PLACED,
    )


def update(
    f: OrderFacts | RefundFacts,
    minutes: int = 1,
    extras: Extras = EXTRAS,
    terms: ReferralTerms = TERMS,
) -> ReferralUpdate:
    return ReferralUpdate(
        SHOP, MERCHANT, f, extras, PLACED + timedelta(minutes=minutes), terms, "he"
    )


def run(*updates: ReferralUpdate) -> tuple[ReferralOrder | None, list[FriendOrder]]:
    state: ReferralOrder | None = None
    told: list[FriendOrder] = []
    for u in updates:
        state, out = apply_referral_order(state, u)
        told += out
    return state, told


def test_each_change_of_an_order_is_told_once() -> None:
    _, told = run(
        update(facts("pending")),
        update(facts("paid"), 2),
        update(facts("paid"), 3),  # a repeat: nothing new
        update(RefundFacts(7, 1, Decimal("35.00"), Decimal(0)), 4),
        update(RefundFacts(7, 1, Decimal("35.00"), Decimal(0)), 5),  # the same refund again
        update(facts("refunded", cancelled=True), 6),
    )

    assert [(t.paid, t.cancelled, t.net_subtotal, t.fully_refunded) for t in told] == [
        (False, False, Decimal("50.00"), False),
        (True, False, Decimal("50.00"), False),
        (True, False, Decimal("15.00"), False),
        (True, True, Decimal("15.00"), False),
    ]
    first = told[0]
    assert (first.friend, first.order_id, first.placed_at, first.code, first.locale) == (
        9,
        1,
        PLACED,
        "ABCD2345",
        "he",
    )
    assert (first.identity.email_hash, first.ip_hash, first.terms) == ("h1:e", "h1:ip", TERMS)
    assert [t.at for t in told] == [PLACED + timedelta(minutes=m) for m in (1, 2, 4, 6)]


def test_a_refund_before_its_order_waits_for_it() -> None:
    _, told = run(
        update(RefundFacts(7, 1, Decimal("50.00"), Decimal(0))),
        update(facts("paid"), 2),
    )

    assert [(t.net_subtotal, t.fully_refunded) for t in told] == [(Decimal("0.00"), True)]


def test_the_first_webhooks_code_identity_and_terms_stay_the_orders() -> None:
    later_terms = ReferralTerms(900, 0, Decimal("0.00"), 5)
    _, told = run(
        update(facts("pending")),
        update(facts("paid"), 2, extras=Extras(code="ZZZZ2345"), terms=later_terms),
    )

    assert {(t.code, t.terms) for t in told} == {("ABCD2345", TERMS)}


def test_guest_and_test_orders_are_never_told() -> None:
    assert run(update(facts(customer=None)))[1] == []
    assert run(update(facts(test=True)))[1] == []


RAW_BODY = {
    "id": 1,
    "email": "ann@example.com",
    "browser_ip": "203.0.113.9",
    "discount_codes": [{"code": "abcd2345 "}],
    "customer": {
        "id": 9,
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "default_address": {"address1": "1 Main St", "city": "Town", "zip": "1"},
    },
    "shipping_address": {"address1": "2 Side St", "city": "Town", "zip": "2"},
}


def test_a_redacted_body_gives_its_code_and_hashes() -> None:
    hasher = Hasher(b"k" * 32)

    extras = extras_of(redact_order(RAW_BODY, hasher))

    assert extras.code == "ABCD2345"
    assert extras.email_hash == hasher.email("ann@example.com")
    assert extras.name_hash == hasher.name("Ann", "Lee")
    assert extras.address_hashes == {
        hasher.address(RAW_BODY["customer"]["default_address"]),  # type: ignore[index]
        hasher.address(RAW_BODY["shipping_address"]),  # type: ignore[arg-type]
    }
    assert extras.ip_hash == hasher.ip("203.0.113.9")


def test_a_body_with_raw_values_gives_no_personal_value() -> None:
    extras = extras_of(RAW_BODY)

    assert extras == Extras(code="ABCD2345")


def test_an_order_naming_no_code_keeps_no_hashes() -> None:
    body = {k: v for k, v in RAW_BODY.items() if k != "discount_codes"}

    assert extras_of(redact_order(body, Hasher(b"k" * 32))) == Extras()
