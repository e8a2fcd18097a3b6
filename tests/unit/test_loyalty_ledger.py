"""The two ledger state machines: per order (earn / reverse / skip) and per customer (balance)."""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from loyalty import ids
from loyalty.ledger import (
    CustomerInput,
    CustomerOutput,
    CustomerState,
    Kind,
    LedgerEntry,
    OrderOutput,
    OrderState,
    OrderUpdate,
    PointsChange,
    Policy,
    Redemption,
    RedemptionOutcome,
    RedemptionStatus,
    Skipped,
    SkipReason,
    apply_customer,
    apply_order,
)
from loyalty.orders import InvalidEventError, OrderFacts, read_facts, read_order, read_refund
from loyalty.rules import earn_basis, points_for, refund_basis, reversal_target

D = Decimal
SHOP = "demo.myshopify.com"
ORDER_ID = 450789469
CUSTOMER = 207119551
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MERCHANT = str(ids.merchant_id(SHOP))

# ---------------------------------------------------------------------------- helpers


def order_body(
    *,
    order_id: int = ORDER_ID,
    subtotal: str = "100.00",
    tax: str = "0.00",
    taxes_included: bool = False,
    status: str = "paid",
    customer: int | None = CUSTOMER,
    test: bool = False,
    cancelled_at: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": order_id,
        "subtotal_price": subtotal,
        "total_tax": tax,
        "taxes_included": taxes_included,
        "financial_status": status,
        "test": test,
        "cancelled_at": cancelled_at,
        "customer": None if customer is None else {"id": customer, "email": "c@example.com"},
    }
    return body


def refund_body(
    refund_id: int, *lines: str | tuple[str, str], order_id: int = ORDER_ID
) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for line in lines:
        subtotal, tax = (line, "0.00") if isinstance(line, str) else line
        items.append({"subtotal": subtotal, "total_tax": tax})
    return {"id": refund_id, "order_id": order_id, "refund_line_items": items}


def update(
    topic: str,
    body: dict[str, Any],
    *,
    ppu: str = "1",
    locale: str = "en",
    shop: str = SHOP,
    at: datetime = AT,
    correlation_id: str | None = None,
) -> OrderUpdate:
    return OrderUpdate(
        shop=shop,
        topic=topic,
        facts=read_facts(topic, body),
        received_at=at,
        policy=Policy(points_per_unit=D(ppu), locale=locale),
        correlation_id=correlation_id,
    )


def created(*, ppu: str = "1", **fields: Any) -> OrderUpdate:
    return update("orders/create", order_body(**fields), ppu=ppu)


def paid(*, ppu: str = "1", **fields: Any) -> OrderUpdate:
    return update("orders/paid", order_body(**fields), ppu=ppu)


def updated(*, ppu: str = "1", **fields: Any) -> OrderUpdate:
    return update("orders/updated", order_body(**fields), ppu=ppu)


def cancelled(**fields: Any) -> OrderUpdate:
    fields.setdefault("cancelled_at", "2024-05-02T10:00:00Z")
    fields.setdefault("status", "refunded")
    return update("orders/cancelled", order_body(**fields))


def refunded(refund_id: int, *lines: str | tuple[str, str]) -> OrderUpdate:
    return update("refunds/create", refund_body(refund_id, *lines))


def run(
    updates: Iterable[OrderUpdate], state: OrderState | None = None
) -> tuple[OrderState | None, list[OrderOutput]]:
    outputs: list[OrderOutput] = []
    for item in updates:
        state, out = apply_order(state, item)
        outputs.extend(out)
    return state, outputs


def changes(outputs: Iterable[OrderOutput]) -> list[PointsChange]:
    return [o for o in outputs if isinstance(o, PointsChange)]


def earns(outputs: Iterable[OrderOutput]) -> list[PointsChange]:
    return [o for o in changes(outputs) if o.kind == Kind.EARN]


def reversals(outputs: Iterable[OrderOutput]) -> list[PointsChange]:
    return [o for o in changes(outputs) if o.kind == Kind.REVERSE]


def skips(outputs: Iterable[OrderOutput]) -> list[Skipped]:
    return [o for o in outputs if isinstance(o, Skipped)]


def summary(outputs: Iterable[OrderOutput]) -> list[tuple[str, int, str]]:
    """(kind, points, key) for each change, for compact comparisons."""
    return [(c.kind.value, c.points, c.key) for c in changes(outputs)]


def net(outputs: Iterable[OrderOutput]) -> int:
    return sum(c.points if c.kind == Kind.EARN else -c.points for c in changes(outputs))


# ---------------------------------------------------------------------------- earning


def test_paid_create_then_paid_then_updated_earns_exactly_once() -> None:
    _, outputs = run([created(), paid(), updated()])

    assert summary(outputs) == [("earn", 100, "earn")]
    assert skips(outputs) == []


def test_earn_is_emitted_by_the_first_paid_event_whichever_topic() -> None:
    for first in (created, paid, updated):
        state, out = apply_order(None, first())
        assert summary(out) == [("earn", 100, "earn")]
        assert state.earned == 100


def test_earn_carries_the_order_customer_and_the_earn_text() -> None:
    _, outputs = run([paid(subtotal="199.99")])

    (earn,) = earns(outputs)
    assert earn.shop == SHOP
    assert earn.customer == CUSTOMER
    assert earn.order_id == ORDER_ID
    assert earn.points == 199
    assert earn.text_key == "points.earned.order"
    assert earn.at == AT
    assert earn.refund_id is None


def test_pending_create_earns_nothing_until_paid() -> None:
    state, first = apply_order(None, created(status="pending"))
    assert first == []

    state, second = apply_order(state, updated(status="pending"))
    assert second == []

    _, third = apply_order(state, paid())
    assert summary(third) == [("earn", 100, "earn")]


@pytest.mark.parametrize("status", ["partially_refunded", "refunded"])
def test_refund_statuses_count_as_proof_of_payment(status: str) -> None:
    _, outputs = run([created(status="pending"), updated(status=status)])

    assert summary(outputs) == [("earn", 100, "earn")]


@pytest.mark.parametrize(
    "status", ["pending", "authorized", "partially_paid", "voided", "expired", None]
)
def test_unpaid_statuses_do_not_earn(status: str | None) -> None:
    body = order_body()
    body["financial_status"] = status

    _, outputs = apply_order(None, update("orders/updated", body))

    assert outputs == []


@pytest.mark.parametrize("status", ["PAID", "Paid", "paid ", "captured", ["paid"], {"paid": 1}])
def test_a_status_shopify_does_not_send_is_refused_not_guessed(status: object) -> None:
    body = order_body()
    body["financial_status"] = status

    with pytest.raises(InvalidEventError, match="financial_status"):
        update("orders/updated", body)


def test_policy_points_per_unit_is_applied() -> None:
    _, outputs = apply_order(None, update("orders/paid", order_body(subtotal="10.05"), ppu="1.5"))

    assert summary(outputs) == [("earn", 15, "earn")]


def test_policy_points_per_unit_of_the_first_paid_event_wins() -> None:
    state, first = apply_order(None, update("orders/paid", order_body(), ppu="2"))
    _, second = apply_order(state, update("orders/updated", order_body(), ppu="1"))

    assert summary(first) == [("earn", 200, "earn")]
    assert second == []


def test_taxes_included_earns_on_the_subtotal_net_of_tax() -> None:
    _, outputs = run([paid(subtotal="120.00", tax="20.00", taxes_included=True)])

    assert summary(outputs) == [("earn", 100, "earn")]


def test_taxes_excluded_earns_on_the_whole_subtotal() -> None:
    _, outputs = run([paid(subtotal="120.00", tax="20.00", taxes_included=False)])

    assert summary(outputs) == [("earn", 120, "earn")]


def test_locale_and_correlation_id_are_passed_through() -> None:
    item = update("orders/paid", order_body(), locale="ar", correlation_id="corr-1")

    _, outputs = apply_order(None, item)

    (earn,) = earns(outputs)
    assert earn.locale == "ar"
    assert earn.correlation_id == "corr-1"


def test_locale_of_the_triggering_update_is_used_for_a_reversal() -> None:
    state, _ = apply_order(None, update("orders/paid", order_body(), locale="en"))
    item = update("refunds/create", refund_body(1, "50.00"), locale="he")

    _, outputs = apply_order(state, item)

    (reversal,) = reversals(outputs)
    assert reversal.locale == "he"


def test_shop_is_normalized_in_outputs() -> None:
    _, outputs = apply_order(None, update("orders/paid", order_body(), shop=" DEMO.MyShopify.com "))

    (earn,) = earns(outputs)
    assert earn.shop == SHOP
    assert earn.merchant_id == MERCHANT


# ---------------------------------------------------------------------------- skipping


def test_guest_order_is_skipped_once_even_if_delivered_three_times() -> None:
    state, outputs = run([created(customer=None), paid(customer=None), updated(customer=None)])

    assert outputs == [Skipped(SHOP, ORDER_ID, SkipReason.GUEST)]
    assert state is not None
    assert state.earned == 0


def test_guest_order_pending_then_paid_is_skipped_when_paid() -> None:
    state, first = apply_order(None, created(customer=None, status="pending"))
    _, second = apply_order(state, paid(customer=None))

    assert first == []
    assert second == [Skipped(SHOP, ORDER_ID, SkipReason.GUEST)]


def test_test_order_is_skipped_once() -> None:
    _, outputs = run([created(test=True), paid(test=True), updated(test=True)])

    assert outputs == [Skipped(SHOP, ORDER_ID, SkipReason.TEST)]


def test_test_guest_order_is_skipped_once_and_never_earns() -> None:
    _, outputs = run([created(test=True, customer=None), paid(test=True, customer=None)])

    assert changes(outputs) == []
    assert len(skips(outputs)) == 1


@pytest.mark.parametrize(
    ("subtotal", "tax", "taxes_included", "ppu"),
    [
        ("0.00", "0.00", False, "1"),
        ("10.00", "10.00", True, "1"),
        ("5.00", "6.00", True, "1"),
        ("0.99", "0.00", False, "1"),  # less than one point
        ("3.99", "0.00", False, "0.25"),
        ("100.00", "0.00", False, "0"),
    ],
)
def test_order_that_earns_zero_points_is_skipped_as_zero_basis(
    subtotal: str, tax: str, taxes_included: bool, ppu: str
) -> None:
    body = order_body(subtotal=subtotal, tax=tax, taxes_included=taxes_included)

    _, outputs = run(
        [update("orders/paid", body, ppu=ppu), update("orders/updated", body, ppu=ppu)]
    )

    assert outputs == [Skipped(SHOP, ORDER_ID, SkipReason.ZERO_BASIS)]


def test_skipped_order_ignores_refunds_and_cancellation() -> None:
    _, outputs = run(
        [paid(customer=None), refunded(1, "100.00"), cancelled(customer=None), paid(customer=None)]
    )

    assert outputs == [Skipped(SHOP, ORDER_ID, SkipReason.GUEST)]


def test_skipped_order_uses_the_normalized_shop() -> None:
    _, outputs = apply_order(
        None, update("orders/paid", order_body(customer=None), shop="Demo.MyShopify.com")
    )

    assert outputs == [Skipped(SHOP, ORDER_ID, SkipReason.GUEST)]


# ---------------------------------------------------------------------------- refunds


def test_partial_refund_reverses_proportionally() -> None:
    _, outputs = run([paid(subtotal="200.00"), refunded(11, "50.00")])

    assert summary(outputs) == [("earn", 200, "earn"), ("reverse", 50, "refund:11")]
    reversal = reversals(outputs)[0]
    assert reversal.refund_id == 11
    assert reversal.text_key == "points.reversed.refund"
    assert reversal.customer == CUSTOMER


def test_partial_refund_floors_the_reversal() -> None:
    _, outputs = run([paid(subtotal="199.99"), refunded(11, "100.00")])

    # 199 * 100 / 199.99 = 99.50...
    assert summary(outputs) == [("earn", 199, "earn"), ("reverse", 99, "refund:11")]


def test_refund_sums_its_line_subtotals() -> None:
    _, outputs = run([paid(subtotal="100.00"), refunded(11, "10.00", "15.00", "0.50")])

    assert summary(reversals(outputs)) == [("reverse", 25, "refund:11")]


def test_refund_of_a_taxes_included_order_is_net_of_tax() -> None:
    order = paid(subtotal="120.00", tax="20.00", taxes_included=True)

    _, outputs = run([order, refunded(11, ("60.00", "10.00"))])

    assert summary(outputs) == [("earn", 100, "earn"), ("reverse", 50, "refund:11")]


def test_refund_of_a_taxes_excluded_order_ignores_line_tax() -> None:
    _, outputs = run([paid(subtotal="100.00"), refunded(11, ("50.00", "10.00"))])

    assert summary(reversals(outputs)) == [("reverse", 50, "refund:11")]


def test_two_partial_refunds_summing_to_the_subtotal_reverse_everything() -> None:
    _, outputs = run(
        [paid(subtotal="33.33", ppu="1.5"), refunded(1, "11.11"), refunded(2, "22.22")]
    )

    assert [e.points for e in earns(outputs)] == [49]
    # 49 * 11.11 / 33.33 = 16.33 -> 16; then everything: 49 - 16 = 33
    assert summary(reversals(outputs)) == [("reverse", 16, "refund:1"), ("reverse", 33, "refund:2")]
    assert net(outputs) == 0


def test_two_partial_refunds_in_either_order_reverse_exactly_the_earned_points() -> None:
    for first, second in (("0.01", "199.98"), ("199.98", "0.01"), ("99.99", "100.00")):
        _, outputs = run([paid(subtotal="199.99"), refunded(1, first), refunded(2, second)])
        assert sum(r.points for r in reversals(outputs)) == 199
        assert net(outputs) == 0


def test_three_thirds_reverse_everything_despite_flooring() -> None:
    _, outputs = run(
        [paid(subtotal="10.00"), refunded(1, "3.33"), refunded(2, "3.33"), refunded(3, "3.34")]
    )

    assert [r.points for r in reversals(outputs)] == [3, 3, 4]
    assert net(outputs) == 0


def test_over_refund_never_reverses_more_than_earned() -> None:
    _, outputs = run([paid(subtotal="50.00"), refunded(1, "40.00"), refunded(2, "40.00")])

    assert summary(reversals(outputs)) == [("reverse", 40, "refund:1"), ("reverse", 10, "refund:2")]


def test_refund_after_everything_was_reversed_emits_nothing() -> None:
    _, outputs = run([paid(subtotal="50.00"), refunded(1, "50.00"), refunded(2, "5.00")])

    assert summary(reversals(outputs)) == [("reverse", 50, "refund:1")]


def test_tiny_refunds_accumulate_until_they_reverse_a_point() -> None:
    state, first = run([paid(subtotal="100.00")])
    assert summary(first) == [("earn", 100, "earn")]
    small = [refunded(i, "0.40") for i in range(1, 6)]

    _, later = run(small, state)

    # 0.40, 0.80 -> 0 points; 1.20 -> 1; 1.60 -> 1; 2.00 -> 2
    assert summary(later) == [("reverse", 1, "refund:3"), ("reverse", 1, "refund:5")]


def test_refund_without_line_items_reverses_nothing() -> None:
    _, outputs = run([paid(), refunded(1)])

    assert reversals(outputs) == []


def test_same_refund_id_twice_reverses_once() -> None:
    _, outputs = run([paid(), refunded(7, "30.00"), refunded(7, "30.00")])

    assert summary(reversals(outputs)) == [("reverse", 30, "refund:7")]


def test_same_refund_id_with_a_different_body_is_still_ignored() -> None:
    _, outputs = run([paid(), refunded(7, "30.00"), refunded(7, "70.00")])

    assert summary(reversals(outputs)) == [("reverse", 30, "refund:7")]


def test_same_refund_id_before_earn_keeps_the_first_body() -> None:
    _, outputs = run([refunded(7, "30.00"), refunded(7, "70.00"), paid()])

    assert summary(reversals(outputs)) == [("reverse", 30, "refund:7")]


def test_refund_before_earn_is_reversed_right_after_the_earn() -> None:
    state, first = apply_order(None, refunded(5, "25.00"))
    assert first == []
    state, second = apply_order(state, created(status="pending"))
    assert second == []

    _, third = apply_order(state, paid())

    assert summary(third) == [("earn", 100, "earn"), ("reverse", 25, "refund:5")]
    assert third[1] == PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        order_id=ORDER_ID,
        kind=Kind.REVERSE,
        points=25,
        key="refund:5",
        text_key="points.reversed.refund",
        locale="en",
        at=AT,
        refund_id=5,
    )


def test_several_refunds_before_earn_are_reversed_cumulatively_in_arrival_order() -> None:
    _, outputs = run([refunded(9, "60.00"), refunded(3, "60.00"), paid(subtotal="100.00")])

    assert summary(outputs) == [
        ("earn", 100, "earn"),
        ("reverse", 60, "refund:9"),
        ("reverse", 40, "refund:3"),
    ]


def test_refund_before_earn_of_a_taxes_included_order_is_net_of_tax() -> None:
    _, outputs = run(
        [
            refunded(5, ("60.00", "10.00")),
            paid(subtotal="120.00", tax="20.00", taxes_included=True),
        ]
    )

    assert summary(outputs) == [("earn", 100, "earn"), ("reverse", 50, "refund:5")]


# ---------------------------------------------------------------------------- cancellation


def test_cancel_after_earn_reverses_everything() -> None:
    _, outputs = run([paid(), cancelled()])

    assert summary(outputs) == [("earn", 100, "earn"), ("reverse", 100, "cancel")]
    cancel = reversals(outputs)[0]
    assert cancel.text_key == "points.reversed.cancel"
    assert cancel.refund_id is None


def test_cancel_after_partial_refund_reverses_only_the_rest() -> None:
    _, outputs = run([paid(), refunded(1, "30.00"), cancelled()])

    assert summary(outputs) == [
        ("earn", 100, "earn"),
        ("reverse", 30, "refund:1"),
        ("reverse", 70, "cancel"),
    ]


def test_cancel_after_full_refund_emits_nothing() -> None:
    _, outputs = run([paid(), refunded(1, "100.00"), cancelled()])

    assert summary(reversals(outputs)) == [("reverse", 100, "refund:1")]


def test_cancel_twice_reverses_once() -> None:
    _, outputs = run(
        [paid(), cancelled(), cancelled(), updated(cancelled_at="2024-05-02T11:00:00+02:00")]
    )

    assert summary(reversals(outputs)) == [("reverse", 100, "cancel")]


def test_order_body_with_cancelled_at_cancels_whatever_its_topic() -> None:
    _, outputs = run([paid(), updated(cancelled_at="2024-05-02T10:00:00Z")])

    assert summary(outputs) == [("earn", 100, "earn"), ("reverse", 100, "cancel")]


def test_cancel_before_paid_never_earns_afterwards() -> None:
    _, outputs = run(
        [created(status="pending"), cancelled(status="voided"), paid(), updated(status="paid")]
    )

    assert outputs == []


def test_paid_and_cancelled_in_the_first_body_never_earns() -> None:
    _, outputs = run([created(cancelled_at="2024-05-02T10:00:00Z"), paid()])

    assert outputs == []


def test_refund_after_cancel_emits_nothing() -> None:
    _, outputs = run([paid(), cancelled(), refunded(1, "50.00")])

    assert summary(outputs) == [("earn", 100, "earn"), ("reverse", 100, "cancel")]


def test_refund_pending_at_cancel_before_earn_is_never_reversed() -> None:
    _, outputs = run([refunded(1, "50.00"), cancelled(), paid()])

    assert outputs == []


def test_reversals_go_to_the_customer_who_earned_even_if_the_order_changes_hands() -> None:
    _, outputs = run(
        [paid(customer=1), updated(customer=2), refunded(1, "50.00"), cancelled(customer=2)]
    )

    assert {c.customer for c in changes(outputs)} == {1}


# ---------------------------------------------------------------------------- event ids


def test_event_id_is_the_deterministic_id_of_the_business_key() -> None:
    _, outputs = run([paid(), refunded(8, "10.00"), cancelled()])

    by_key = {c.key: c.event_id for c in changes(outputs)}
    assert by_key == {
        "earn": str(ids.event_id(SHOP, ORDER_ID, "earn")),
        "refund:8": str(ids.event_id(SHOP, ORDER_ID, "refund:8")),
        "cancel": str(ids.event_id(SHOP, ORDER_ID, "cancel")),
    }
    assert len(set(by_key.values())) == 3


def test_event_id_is_the_same_on_replay_and_across_shop_spellings() -> None:
    _, first = run([paid(), refunded(8, "10.00")])
    _, second = run(
        [
            update("orders/paid", order_body(), shop="DEMO.myshopify.com "),
            update("refunds/create", refund_body(8, "10.00"), shop="Demo.MyShopify.com"),
        ]
    )

    assert [c.event_id for c in changes(first)] == [c.event_id for c in changes(second)]
    assert len(changes(first)) == 2


def test_event_id_differs_per_order_and_per_shop() -> None:
    base = changes(run([paid()])[1])[0].event_id
    other_order = changes(run([paid(order_id=ORDER_ID + 1)])[1])[0].event_id
    other_shop = changes(run([update("orders/paid", order_body(), shop="other.myshopify.com")])[1])[
        0
    ].event_id

    assert len({base, other_order, other_shop}) == 3


def test_event_id_does_not_depend_on_arrival_time_or_points() -> None:
    late = update("orders/paid", order_body(subtotal="5.00"), at=AT + timedelta(days=3), ppu="2")

    _, early_out = apply_order(None, paid())
    _, late_out = apply_order(None, late)

    assert changes(early_out)[0].event_id == changes(late_out)[0].event_id


# ---------------------------------------------------------------------------- order property


def _cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def _scenario(rng: random.Random) -> tuple[list[OrderUpdate], dict[str, Any]]:
    """One order's distinct events (all paid bodies alike) and the facts the oracle needs."""
    roll = rng.random()
    subtotal_cents = 0 if roll < 0.1 else rng.randint(1, 300 if roll < 0.25 else 100_000)
    tax_cents = rng.randint(0, max(subtotal_cents // 4, 1)) if rng.random() < 0.8 else 0
    taxes_included = rng.random() < 0.5
    ppu = rng.choice(["1", "1.5", "0.25", "2"])
    customer = None if rng.random() < 0.1 else CUSTOMER
    test = rng.random() < 0.05
    base: dict[str, Any] = {
        "subtotal": _cents(subtotal_cents),
        "tax": _cents(tax_cents),
        "taxes_included": taxes_included,
        "customer": customer,
        "test": test,
    }

    def event(topic: str, body: dict[str, Any]) -> OrderUpdate:
        return update(topic, body, ppu=ppu)

    events = [event("orders/create", order_body(status=rng.choice(["pending", "paid"]), **base))]
    if rng.random() < 0.7:
        events.append(event("orders/paid", order_body(status="paid", **base)))
    if rng.random() < 0.6:
        status = rng.choice(["pending", "paid", "partially_refunded"])
        events.append(event("orders/updated", order_body(status=status, **base)))
    refunds: list[dict[str, Any]] = []
    for refund_id in rng.sample(range(1, 1000), rng.randint(0, 3)):
        lines: list[tuple[str, str]] = []
        for _ in range(rng.randint(1, 2)):
            line_cents = rng.randint(0, max(subtotal_cents // rng.choice([1, 2, 4]), 1))
            lines.append((_cents(line_cents), _cents(rng.randint(0, line_cents // 5))))
        body = refund_body(refund_id, *lines)
        refunds.append(body)
        events.append(event("refunds/create", body))
    is_cancelled = rng.random() < 0.3
    if is_cancelled:
        body = order_body(status="refunded", cancelled_at="2024-05-02T10:00:00Z", **base)
        topic = rng.choice(["orders/cancelled", "orders/updated"])
        events.append(event(topic, body))
    facts = {
        "body": order_body(**base),
        "ppu": D(ppu),
        "customer": customer,
        "test": test,
        "refunds": refunds,
        "taxes_included": taxes_included,
    }
    return events, facts


def _arrival(rng: random.Random, events: Sequence[OrderUpdate]) -> list[OrderUpdate]:
    """The same events shuffled, with some delivered more than once."""
    arrival = list(events)
    rng.shuffle(arrival)
    for _ in range(rng.randint(0, 4)):
        arrival.insert(rng.randint(0, len(arrival)), rng.choice(events))
    return arrival


def _is_cancel(item: OrderUpdate) -> bool:
    facts = item.facts
    return item.topic == "orders/cancelled" or (isinstance(facts, OrderFacts) and facts.cancelled)


def _is_paid(item: OrderUpdate) -> bool:
    return isinstance(item.facts, OrderFacts) and item.facts.paid


def _refunded(body: dict[str, Any], *, taxes_included: bool) -> Decimal:
    refund = read_refund(body)
    return refund_basis(refund.subtotal, refund.tax, taxes_included=taxes_included)


@pytest.mark.parametrize("seed", range(300))
def test_any_arrival_order_with_duplicates_keeps_the_ledger_consistent(seed: int) -> None:
    rng = random.Random(seed)
    events, facts = _scenario(rng)
    basis = earn_basis(read_order(facts["body"]))
    points = points_for(basis, facts["ppu"])
    refund_total = sum(
        (_refunded(r, taxes_included=facts["taxes_included"]) for r in facts["refunds"]), D(0)
    )
    has_cancel = any(_is_cancel(e) for e in events)
    eligible = facts["customer"] is not None and not facts["test"] and points > 0
    nets: list[int] = []

    for _ in range(2):
        arrival = _arrival(rng, events)
        _, outputs = run(arrival)

        # The oracle: the order earns iff a paid body arrives before any cancellation.
        first_paid = next((i for i, e in enumerate(arrival) if _is_paid(e)), None)
        first_cancel = next((i for i, e in enumerate(arrival) if _is_cancel(e)), len(arrival))
        earns_now = first_paid is not None and first_paid < first_cancel
        expected_earned = points if eligible and earns_now else 0

        earned = sum(e.points for e in earns(outputs))
        reversed_total = sum(r.points for r in reversals(outputs))
        keys = Counter(c.key for c in changes(outputs))

        assert len(earns(outputs)) <= 1
        assert earned == expected_earned
        assert all(c.points > 0 for c in changes(outputs))
        assert all(c.customer == CUSTOMER for c in changes(outputs))
        assert max(keys.values(), default=1) == 1  # one change per business key
        assert reversed_total <= earned
        assert all(r.key.startswith("refund:") or r.key == "cancel" for r in reversals(outputs))
        assert all(r.key == f"refund:{r.refund_id}" for r in reversals(outputs) if r.refund_id)
        if earned and has_cancel:
            assert reversed_total == earned
        elif earned:
            assert reversed_total == reversal_target(earned, basis, refund_total)
        else:
            assert changes(outputs) == []
        skip_reasons = [s.reason for s in skips(outputs)]
        assert len(skip_reasons) == len(set(skip_reasons))
        if skip_reasons:
            assert earned == 0

        # Feeding the changes (redelivered) to the customer stage gives the same balance.
        stream: list[CustomerInput] = [*changes(outputs), *changes(outputs)]
        customer, _ = feed(stream)
        assert customer.balance == earned - reversed_total
        nets.append(earned - reversed_total)

    assert nets[0] == nets[1]
    if has_cancel:
        assert nets[0] == 0


# ---------------------------------------------------------------------------- customer stage


def change(kind: Kind, points: int, key: str = "earn", *, order_id: int = ORDER_ID) -> PointsChange:
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        order_id=order_id,
        kind=kind,
        points=points,
        key=key,
        text_key="points.earned.order" if kind == Kind.EARN else "points.reversed.refund",
        locale="en",
        at=AT,
    )


def earned(points: int, *, order_id: int = ORDER_ID) -> PointsChange:
    return change(Kind.EARN, points, order_id=order_id)


def reversed_(points: int, key: str = "cancel", *, order_id: int = ORDER_ID) -> PointsChange:
    return change(Kind.REVERSE, points, key, order_id=order_id)


def redemption(redemption_id: str, points: int) -> Redemption:
    return Redemption(
        redemption_id=redemption_id,
        merchant_id=MERCHANT,
        customer=CUSTOMER,
        points=points,
        reward_id="reward-1",
        idempotency_key=f"idem-{redemption_id}",
        locale="en",
        at=AT,
    )


def feed(
    items: Iterable[CustomerInput], state: CustomerState | None = None
) -> tuple[CustomerState, list[CustomerOutput]]:
    customer = state or CustomerState()
    outputs: list[CustomerOutput] = []
    for item in items:
        customer, out = apply_customer(customer, item)
        outputs.extend(out)
    return customer, outputs


def entries(outputs: Iterable[CustomerOutput]) -> list[LedgerEntry]:
    return [o for o in outputs if isinstance(o, LedgerEntry)]


def outcomes(outputs: Iterable[CustomerOutput]) -> list[RedemptionOutcome]:
    return [o for o in outputs if isinstance(o, RedemptionOutcome)]


def test_first_change_starts_a_customer_at_seq_one() -> None:
    state, outputs = apply_customer(None, earned(100))

    assert outputs == [
        LedgerEntry(
            event_id=str(ids.event_id(SHOP, ORDER_ID, "earn")),
            merchant_id=MERCHANT,
            customer=CUSTOMER,
            kind=Kind.EARN,
            points=100,
            balance=100,
            seq=1,
            text_key="points.earned.order",
            locale="en",
            at=AT,
            order_id=ORDER_ID,
        )
    ]
    assert (state.balance, state.seq) == (100, 1)


def test_reversal_subtracts_and_carries_its_refund_id() -> None:
    refund = PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        order_id=ORDER_ID,
        kind=Kind.REVERSE,
        points=30,
        key="refund:4",
        text_key="points.reversed.refund",
        locale="he",
        at=AT,
        refund_id=4,
        correlation_id="corr-9",
    )

    state, outputs = feed([earned(100), refund])

    last = entries(outputs)[-1]
    assert (last.kind, last.points, last.balance, last.seq) == (Kind.REVERSE, 30, 70, 2)
    assert (last.refund_id, last.locale, last.correlation_id) == (4, "he", "corr-9")
    assert last.delta == -30
    assert state.balance == 70


def test_earn_then_redeem_within_balance_completes() -> None:
    state, outputs = feed([earned(100), redemption("r1", 40)])

    spend = entries(outputs)[-1]
    assert outputs[-2:] == [
        spend,
        RedemptionOutcome(redemption("r1", 40), RedemptionStatus.COMPLETED, entry=spend),
    ]
    assert (spend.kind, spend.points, spend.balance, spend.seq) == (Kind.SPEND, 40, 60, 2)
    assert spend.delta == -40
    assert spend.event_id == str(ids.event_id("redemption", "r1"))
    assert spend.redemption_id == "r1"
    assert spend.text_key == "points.spent.redemption"
    assert spend.order_id is None
    assert state.balance == 60


def test_redeeming_the_exact_balance_completes_at_zero() -> None:
    state, outputs = feed([earned(100), redemption("r1", 100)])

    assert outcomes(outputs)[0].status == RedemptionStatus.COMPLETED
    assert state.balance == 0


def test_redeeming_more_than_the_balance_fails_and_leaves_it_unchanged() -> None:
    state, outputs = feed([earned(100), redemption("r1", 101)])

    assert outputs[1:] == [
        RedemptionOutcome(redemption("r1", 101), RedemptionStatus.FAILED, "insufficient_points")
    ]
    assert (state.balance, state.seq) == (100, 1)


def test_redeeming_with_no_history_fails() -> None:
    state, outputs = apply_customer(None, redemption("r1", 1))

    assert outputs == [
        RedemptionOutcome(redemption("r1", 1), RedemptionStatus.FAILED, "insufficient_points")
    ]
    assert (state.balance, state.seq) == (0, 0)


@pytest.mark.parametrize("points", [0, -5])
def test_redeeming_non_positive_points_fails_as_invalid(points: int) -> None:
    state, outputs = feed([earned(100), redemption("r1", points)])

    assert outputs[1:] == [
        RedemptionOutcome(redemption("r1", points), RedemptionStatus.FAILED, "invalid_points")
    ]
    assert (state.balance, state.seq) == (100, 1)


def test_concurrent_redemptions_only_the_first_that_fits_completes() -> None:
    state, outputs = feed([earned(100), redemption("a", 60), redemption("b", 60)])

    statuses = [(o.redemption.redemption_id, o.status, o.reason) for o in outcomes(outputs)]
    assert statuses == [
        ("a", RedemptionStatus.COMPLETED, None),
        ("b", RedemptionStatus.FAILED, "insufficient_points"),
    ]
    assert state.balance == 40


def test_reversal_after_spending_can_go_negative_and_blocks_redemptions() -> None:
    state, outputs = feed([earned(100), redemption("a", 80), reversed_(100), redemption("b", 1)])

    assert [e.balance for e in entries(outputs)] == [100, 20, -80]
    assert outcomes(outputs)[-1].status == RedemptionStatus.FAILED
    assert outcomes(outputs)[-1].reason == "insufficient_points"
    assert state.balance == -80

    state, later = feed([earned(100, order_id=ORDER_ID + 1), redemption("c", 20)], state)
    assert [e.balance for e in entries(later)] == [20, 0]
    assert outcomes(later)[0].status == RedemptionStatus.COMPLETED


def test_duplicate_points_change_is_applied_once() -> None:
    state, outputs = feed([earned(100), earned(100), reversed_(10), reversed_(10)])

    assert [(e.kind, e.balance, e.seq) for e in entries(outputs)] == [
        (Kind.EARN, 100, 1),
        (Kind.REVERSE, 90, 2),
    ]
    assert state.balance == 90


def test_duplicate_with_different_points_but_same_key_is_still_ignored() -> None:
    state, _ = feed([earned(100), earned(999)])

    assert state.balance == 100


def test_same_key_on_different_orders_are_different_changes() -> None:
    state, outputs = feed([earned(10, order_id=1), earned(20, order_id=2)])

    assert len(entries(outputs)) == 2
    assert state.balance == 30


def test_duplicate_redemption_is_applied_once() -> None:
    state, outputs = feed([earned(100), redemption("r1", 30), redemption("r1", 30)])

    assert len(outcomes(outputs)) == 1
    assert [e.kind for e in entries(outputs)] == [Kind.EARN, Kind.SPEND]
    assert state.balance == 70


def test_failed_redemption_is_not_retried_under_the_same_id() -> None:
    state, outputs = feed([redemption("r1", 30), earned(100), redemption("r1", 30)])

    assert [o.status for o in outcomes(outputs)] == [RedemptionStatus.FAILED]
    assert state.balance == 100


def test_seq_increases_by_one_per_entry_and_balance_follows_the_deltas() -> None:
    items: list[CustomerInput] = [
        earned(50, order_id=1),
        redemption("a", 20),
        redemption("b", 500),  # fails: no entry, no seq
        earned(30, order_id=2),
        reversed_(50, order_id=1),
        redemption("c", 0),  # invalid: no entry
        reversed_(5, "refund:1", order_id=2),
        redemption("d", 5),
    ]

    state, outputs = feed(items)

    ledger = entries(outputs)
    assert [e.seq for e in ledger] == list(range(1, len(ledger) + 1))
    assert [e.balance for e in ledger] == [50, 30, 60, 10, 5, 0]
    running = 0
    for entry in ledger:
        running += entry.delta
        assert entry.balance == running
    assert state.balance == running == 0
    assert state.seq == len(ledger)


def test_state_is_carried_between_calls() -> None:
    state, _ = apply_customer(None, earned(10, order_id=1))
    state, outputs = apply_customer(state, earned(5, order_id=2))

    assert entries(outputs)[0].seq == 2
    assert state.balance == 15


@pytest.mark.parametrize("seed", range(200))
def test_random_interleavings_never_complete_a_redemption_into_debt(seed: int) -> None:
    rng = random.Random(seed)
    items: list[CustomerInput] = []
    for n in range(rng.randint(1, 30)):
        roll = rng.random()
        if roll < 0.35:
            items.append(earned(rng.randint(1, 200), order_id=n))
        elif roll < 0.5:
            items.append(reversed_(rng.randint(1, 200), order_id=n))
        else:
            items.append(redemption(f"r{n}", rng.randint(-5, 150)))
    items += [rng.choice(items) for _ in range(rng.randint(0, 5))]  # redeliveries
    rng.shuffle(items)

    state = CustomerState()
    seen: set[str] = set()
    running = 0
    last_seq = 0
    for item in items:
        before = state.balance
        key = item.redemption_id if isinstance(item, Redemption) else item.event_id
        duplicate = key in seen
        seen.add(key)
        state, outputs = apply_customer(state, item)
        if duplicate:
            assert outputs == []
            assert state.balance == before
            continue
        for entry in entries(outputs):
            last_seq += 1
            running += entry.delta
            assert entry.seq == last_seq
            assert entry.balance == running
        for outcome in outcomes(outputs):
            if outcome.status == RedemptionStatus.COMPLETED:
                assert outcome.entry is not None
                assert outcome.entry.kind == Kind.SPEND
                assert before >= outcome.redemption.points > 0
                assert outcome.entry.balance == before - outcome.redemption.points >= 0
            else:
                assert outcome.status == RedemptionStatus.FAILED
                assert outcome.entry is None
                assert state.balance == before
                expected = "invalid_points" if outcome.redemption.points <= 0 else None
                assert outcome.reason == (expected or "insufficient_points")
                if outcome.reason == "insufficient_points":
                    assert before < outcome.redemption.points
        if isinstance(item, Redemption):
            assert len(outcomes(outputs)) == 1
        else:
            assert len(entries(outputs)) == 1
    assert state.balance == running
    assert state.seq == last_seq


# --- snapshots: Bytewax deep-copies state at every epoch ----------------------------------------


def test_order_state_deep_copy_is_equal_and_shares_no_container() -> None:
    state = OrderState(customer=7, basis=Decimal("12.50"), earned=12)
    state.refunds[1] = (Decimal("2.00"), Decimal("0.00"))
    state.accounted.add(1)

    copied = copy.deepcopy(state)
    copied.refunds[2] = (Decimal("1.00"), Decimal("0.00"))
    copied.accounted.add(2)

    assert copy.deepcopy(state) == state
    assert list(state.refunds) == [1]
    assert state.accounted == {1}


def test_customer_state_deep_copy_is_equal_and_shares_no_container() -> None:
    state = CustomerState(balance=40, seq=3, applied={"a", "b"})

    copied = copy.deepcopy(state)
    copied.applied.add("c")

    assert copy.deepcopy(state) == state
    assert state.applied == {"a", "b"}
