from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.rfm import (
    PROSPECT,
    Segment,
    Values,
    midpoint_scale,
    monetary_bucket,
    segment_for,
)
from loyalty.rfm_histograms import MerchantHistograms
from loyalty.rfm_window import NOTHING, Contribution, CustomerWindow

LOOKBACK = 30


def paid(subtotal: str, refunded: str = "0", **flags: bool) -> Contribution:
    return Contribution.of(
        paid=flags.get("paid", True),
        test=flags.get("test", False),
        cancelled=flags.get("cancelled", False),
        subtotal=Decimal(subtotal),
        refunded=Decimal(refunded),
    )


def test_a_paid_order_counts_once_with_its_net_spend() -> None:
    assert paid("100.00", "30.50") == Contribution(1, Decimal("69.50"))


@pytest.mark.parametrize(
    "contribution",
    [
        paid("100", "100"),
        paid("100", "120"),
        paid("100", cancelled=True),
        paid("100", test=True),
        paid("100", paid=False),
        paid("0", "5"),
    ],
    ids=["fully refunded", "over-refunded", "cancelled", "test", "unpaid", "refund of nothing"],
)
def test_orders_that_do_not_count(contribution: Contribution) -> None:
    assert contribution == NOTHING


def test_a_free_paid_order_counts_with_no_spend() -> None:
    assert paid("0") == Contribution(1, Decimal(0))


def test_a_window_adds_up_its_days() -> None:
    window = CustomerWindow()
    window.change(100, NOTHING, paid("10"), LOOKBACK)
    window.change(100, NOTHING, paid("5.25"), LOOKBACK)
    window.change(90, NOTHING, paid("1"), LOOKBACK)

    assert window.values() == Values(100, 3, Decimal("16.25"))
    assert window.next_exit(LOOKBACK) == 90 + LOOKBACK


def test_a_refund_shrinks_and_a_cancellation_removes_an_order() -> None:
    window = CustomerWindow()
    window.change(100, NOTHING, paid("10"), LOOKBACK)
    window.change(101, NOTHING, paid("20"), LOOKBACK)
    window.change(100, paid("10"), paid("10", "4"), LOOKBACK)
    window.change(101, paid("20"), paid("20", cancelled=True), LOOKBACK)

    assert window.values() == Values(100, 1, Decimal("6"))


def test_the_last_order_cancelled_makes_a_prospect() -> None:
    window = CustomerWindow()
    window.change(100, NOTHING, paid("10"), LOOKBACK)
    window.change(100, paid("10"), NOTHING, LOOKBACK)

    assert window.values() == PROSPECT
    assert window.days == {}
    assert window.next_exit(LOOKBACK) is None


def test_days_leave_the_window_as_the_as_of_day_advances() -> None:
    window = CustomerWindow()
    window.change(100, NOTHING, paid("10"), LOOKBACK)
    window.change(110, NOTHING, paid("20"), LOOKBACK)

    window.advance(100 + LOOKBACK - 1, LOOKBACK)
    assert window.values().frequency == 2
    window.advance(100 + LOOKBACK, LOOKBACK)
    assert window.values() == Values(110, 1, Decimal(20))
    window.advance(100, LOOKBACK)  # time never goes back
    assert window.as_of == 100 + LOOKBACK


def test_a_late_order_outside_the_window_and_its_refund_change_nothing() -> None:
    window = CustomerWindow()
    window.change(200, NOTHING, paid("10"), LOOKBACK)
    window.change(200 - LOOKBACK, NOTHING, paid("99"), LOOKBACK)
    window.change(200 - LOOKBACK, paid("99"), paid("99", "50"), LOOKBACK)

    assert window.values() == Values(200, 1, Decimal(10))


def test_a_late_order_inside_the_window_counts_at_its_own_day() -> None:
    window = CustomerWindow()
    window.change(200, NOTHING, paid("10"), LOOKBACK)
    window.change(200 - LOOKBACK + 1, NOTHING, paid("99"), LOOKBACK)

    assert window.values() == Values(200, 2, Decimal(109))
    assert window.next_exit(LOOKBACK) == 201


def test_taking_back_more_than_was_counted_is_refused() -> None:
    window = CustomerWindow()
    with pytest.raises(ValueError, match="would count -1 orders"):
        window.change(100, paid("10"), NOTHING, LOOKBACK)


# --- The merchant's histograms against a plain recomputation over all orders. ---


@dataclass(frozen=True)
class Order:
    customer: int
    day: int
    history: tuple[Contribution, ...]  # its contributions, in the order its webhooks arrive


ORDER_STATES = st.sampled_from(
    [paid("10"), paid("25.50"), paid("25.50", "10"), paid("99.99"), paid("7", "7"), NOTHING]
)
ORDERS = st.lists(
    st.builds(
        Order,
        customer=st.integers(1, 25),
        day=st.integers(0, 90),
        history=st.lists(ORDER_STATES, min_size=1, max_size=3).map(tuple),
    ),
    max_size=80,
)


def batch(orders: list[Order], as_of: int) -> dict[int, Values]:
    """Every known customer's values as of `as_of`, from the final state of each order."""
    values: dict[int, Values] = {}
    for order in orders:
        final = order.history[-1]
        before = values.get(order.customer, Values(None, 0, Decimal(0)))
        if final.orders and as_of - LOOKBACK < order.day <= as_of:
            last = max(order.day, before.last_order_day or order.day)
            before = Values(last, before.frequency + 1, before.monetary + final.net)
        values[order.customer] = before
    return values


def streamed(orders: list[Order], as_of: int, seed: int) -> MerchantHistograms:
    """The same orders as the flows see them: webhooks interleaved, each customer's window
    telling the merchant every change of values, then a tick for `as_of`."""
    steps = [(o, i) for o in orders for i in range(len(o.history))]
    rng = random.Random(seed)
    rng.shuffle(steps)
    steps.sort(key=lambda s: s[1])  # one order's webhooks stay in order; orders interleave
    windows: dict[int, CustomerWindow] = {}
    merchant = MerchantHistograms()
    for order, i in steps:
        window = windows.get(order.customer)
        before = None if window is None else window.values()
        window = windows.setdefault(order.customer, CustomerWindow())
        previous = NOTHING if i == 0 else order.history[i - 1]
        window.change(order.day, previous, order.history[i], LOOKBACK)
        merchant.change(before, window.values())
    for window in windows.values():
        before = window.values()
        window.advance(as_of, LOOKBACK)
        merchant.change(before, window.values())
    return merchant


@settings(max_examples=300)
@given(ORDERS, st.integers(0, 40), st.integers(0, 2**32))
def test_histograms_give_the_scales_and_counts_of_a_batch_recomputation(
    orders: list[Order], days_after: int, seed: int
) -> None:
    as_of = max((o.day for o in orders), default=0) + days_after
    merchant = streamed(orders, as_of, seed)
    expected = batch(orders, as_of)
    scored = {c: v for c, v in expected.items() if v.scored}

    scales = merchant.quintile_scales()
    assert merchant.prospects == len(expected) - len(scored)
    assert merchant.total == len(expected)
    oracle = {
        "r": midpoint_scale(Counter(v.last_order_day or 0 for v in scored.values())),
        "f": midpoint_scale(Counter(v.frequency for v in scored.values())),
        "m": midpoint_scale(Counter(monetary_bucket(v.monetary) for v in scored.values())),
    }
    segments: dict[Segment, int] = dict.fromkeys(Segment, 0)
    segments[Segment.PROSPECTS] = len(expected) - len(scored)
    for values in scored.values():
        got = scales.scores(values)
        assert got is not None
        r = oracle["r"].score(values.last_order_day or 0)
        f = oracle["f"].score(values.frequency)
        m = oracle["m"].score(monetary_bucket(values.monetary))
        assert (got.r, got.f, got.m) == (r, f, m)
        segments[segment_for(r, f)] += 1
    assert merchant.segment_counts(scales) == segments


def test_removing_values_never_counted_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        MerchantHistograms().change(Values(5, 1, Decimal(1)), PROSPECT)
    with pytest.raises(ValueError, match="more prospects removed"):
        MerchantHistograms().change(PROSPECT, Values(5, 1, Decimal(1)))
