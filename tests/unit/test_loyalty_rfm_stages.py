from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.errors import InvalidEventError
from loyalty.orders import OrderFacts, RefundFacts
from loyalty.rfm import (
    EPOCH,
    PROSPECT,
    Scores,
    Segment,
    Thresholds,
    Values,
    midpoint_scale,
    monetary_bucket,
    segment_for,
)
from loyalty.rfm_customers import (
    CustomerOutcome,
    RfmCustomer,
    Tick,
    apply_order_change,
    apply_tick,
    needs_tick,
)
from loyalty.rfm_merchants import RfmMerchant
from loyalty.rfm_orders import OrderChange, RfmOrder, apply_order_facts
from loyalty.rfm_window import NOTHING, Contribution

D = Decimal
LOOKBACK = 30
START = datetime(2026, 1, 1, 12, tzinfo=UTC)
DAY0 = (START.date() - EPOCH).days


def order(
    order_id: int = 1,
    customer: int | None = 7,
    status: str | None = "paid",
    subtotal: str = "100.00",
    *,
    day: int = 0,
    cancelled: bool = False,
    test: bool = False,
    dated: bool = True,
) -> OrderFacts:
    return OrderFacts(
        order_id=order_id,
        customer=customer,
        financial_status=status,
        cancelled=cancelled,
        test=test,
        taxes_included=False,
        subtotal=D(subtotal),
        total_tax=None,
        placed_at=START + timedelta(days=day) if dated else None,
    )


def refund(refund_id: int, subtotal: str, order_id: int = 1) -> RefundFacts:
    return RefundFacts(refund_id=refund_id, order_id=order_id, subtotal=D(subtotal), tax=D(0))


def run(*facts: OrderFacts | RefundFacts) -> tuple[RfmOrder, list[OrderChange]]:
    state: RfmOrder | None = None
    changes: list[OrderChange] = []
    for f in facts:
        state, new = apply_order_facts(state, f)
        changes += new
    assert state is not None
    return state, changes


def counted(net: str) -> Contribution:
    return Contribution(1, D(net))


# ----------------------------------------------------------------------------- order stage


def test_a_paid_order_counts_for_its_customer_on_its_utc_day() -> None:
    _, changes = run(order(day=3))

    assert changes == [OrderChange(7, DAY0 + 3, NOTHING, counted("100.00"))]


def test_repeated_webhooks_change_nothing() -> None:
    _, changes = run(order(status="pending"), order(), order(), order(status="pending"))

    # Known while pending, counted once paid; paid stays paid when an older webhook comes late.
    assert changes == [
        OrderChange(7, DAY0, NOTHING, NOTHING),
        OrderChange(7, DAY0, NOTHING, counted("100.00")),
    ]


def test_each_refund_counts_once_and_a_full_refund_removes_the_order() -> None:
    state, changes = run(order(), refund(1, "30"), refund(1, "30"), refund(2, "70"))

    assert state.refunded == D(100)
    assert [c.after for c in changes] == [counted("100.00"), counted("70.00"), NOTHING]


def test_a_refund_before_its_order_waits_for_it() -> None:
    state, changes = run(refund(1, "40"), order())

    assert changes == [OrderChange(7, DAY0, NOTHING, counted("60.00"))]
    assert state.refund_ids == (1,)


def test_a_cancellation_removes_the_order_for_good() -> None:
    _, changes = run(order(), order(cancelled=True), order())

    assert [c.after for c in changes] == [counted("100.00"), NOTHING]


def test_guest_and_test_orders_are_not_scored() -> None:
    assert run(order(customer=None))[1] == []
    assert run(order(test=True))[1] == []


def test_an_order_that_becomes_a_test_leaves_its_customer() -> None:
    _, changes = run(order(), order(test=True))

    assert changes[-1] == OrderChange(7, DAY0, counted("100.00"), NOTHING)


def test_an_order_moved_to_another_day_or_customer_moves_its_contribution() -> None:
    _, changes = run(order(), order(day=2, customer=8))

    assert changes[1:] == [
        OrderChange(7, DAY0, counted("100.00"), NOTHING),
        OrderChange(8, DAY0 + 2, NOTHING, counted("100.00")),
    ]


def test_a_later_webhook_without_times_keeps_the_day() -> None:
    state, _ = run(order(day=4), order(dated=False))

    assert state.day == DAY0 + 4


def test_an_order_that_cannot_be_dated_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="neither processed_at nor created_at"):
        apply_order_facts(None, order(dated=False))


# -------------------------------------------------------------------------- customer stage


def tick(as_of: int, merchant: RfmMerchant) -> Tick:
    merchant.advance(as_of)
    merchant.refresh()
    assert merchant.picture is not None
    return Tick(as_of, merchant.picture.scales, merchant.picture.version)


def test_a_customer_is_scored_at_a_tick_and_announced_once() -> None:
    merchant = RfmMerchant()
    customer, outcome = apply_order_change(
        None, OrderChange(7, DAY0, NOTHING, counted("5")), LOOKBACK
    )
    assert outcome.values_change == (None, Values(DAY0, 1, D(5)))
    assert outcome.update is None  # scores wait for the merchant's scales
    merchant.change(*outcome.values_change)

    customer, first = apply_tick(customer, tick(DAY0, merchant), LOOKBACK)
    customer, again = apply_tick(customer, tick(DAY0, merchant), LOOKBACK)

    assert first.update is not None
    assert first.update.scores == Scores(3, 3, 3, Segment.NEED_ATTENTION)  # alone: the middle
    assert first.update.previous_segment is None
    assert first.update.sequence == 1
    assert again.update is None


def test_a_prospect_is_announced_at_once_with_the_segment_before() -> None:
    merchant = RfmMerchant()
    customer, outcome = apply_order_change(
        None, OrderChange(7, DAY0, NOTHING, counted("5")), LOOKBACK
    )
    assert outcome.values_change is not None
    merchant.change(*outcome.values_change)
    customer, _ = apply_tick(customer, tick(DAY0, merchant), LOOKBACK)

    customer, cancelled = apply_order_change(
        customer, OrderChange(7, DAY0, counted("5"), NOTHING), LOOKBACK
    )

    assert cancelled.update is not None
    assert cancelled.update.segment is Segment.PROSPECTS
    assert cancelled.update.previous_segment is Segment.NEED_ATTENTION
    assert cancelled.update.sequence == 2


def test_the_latest_tick_decides_whatever_its_pictures_version() -> None:
    # A replay rebuilds the merchant's state, and its picture versions start again from 1.
    merchant = RfmMerchant()
    customer, _ = apply_order_change(None, OrderChange(7, DAY0, NOTHING, counted("5")), LOOKBACK)
    merchant.use(Thresholds((1, 2, 3, 4), (2, 3, 4, 5), (D(10), D(20), D(30), D(40))))
    by_thresholds = tick(DAY0, merchant)
    rebuilt = Tick(DAY0, RfmMerchant().scales(DAY0), 1)

    customer, _ = apply_tick(customer, by_thresholds, LOOKBACK)
    customer, later = apply_tick(customer, rebuilt, LOOKBACK)

    assert later.update is not None
    assert (customer.scores, customer.version) == (Scores(1, 1, 1, Segment.HIBERNATING), 1)


def test_a_tick_past_the_window_makes_a_prospect() -> None:
    merchant = RfmMerchant()
    customer, _ = apply_order_change(None, OrderChange(7, DAY0, NOTHING, counted("5")), LOOKBACK)

    customer, outcome = apply_tick(customer, tick(DAY0 + LOOKBACK, merchant), LOOKBACK)

    assert outcome.values_change == (Values(DAY0, 1, D(5)), PROSPECT)
    assert outcome.update is not None
    assert outcome.update.segment is Segment.PROSPECTS


# -------------------------------------------------------------------------- merchant stage


def test_a_picture_is_new_only_when_something_in_it_moved() -> None:
    merchant = RfmMerchant()
    assert merchant.refresh() is None  # no day yet
    merchant.change(None, Values(DAY0, 1, D(5)))

    first = merchant.refresh()
    assert first is not None
    assert (first.version, first.total, first.counts[Segment.NEED_ATTENTION]) == (1, 1, 1)
    assert merchant.refresh() is None
    merchant.advance(DAY0 - 5)  # days never go back
    assert merchant.refresh() is None
    merchant.advance(DAY0 + 1)
    second = merchant.refresh()
    assert second is not None
    assert (second.version, second.as_of) == (2, DAY0 + 1)


def test_thresholds_replace_quintiles_and_clearing_them_brings_quintiles_back() -> None:
    merchant = RfmMerchant()
    merchant.change(None, Values(DAY0, 1, D(5)))
    quintiles = merchant.refresh()
    merchant.use(Thresholds((1, 2, 3, 4), (2, 3, 4, 5), (D(10), D(20), D(30), D(40))))
    thresholds = merchant.refresh()
    merchant.use(None)
    back = merchant.refresh()

    assert quintiles is not None
    assert thresholds is not None
    assert back is not None
    assert thresholds.counts[Segment.NEW_CUSTOMERS] == 1
    assert (back.scales, back.version) == (quintiles.scales, 3)


# ---------------------------------- all three stages and the rescoring loop, against a batch


@dataclass(frozen=True)
class Shop:
    """Orders of up to 12 customers over 60 days, with their webhooks in arrival order."""

    webhooks: tuple[OrderFacts | RefundFacts, ...]


def webhooks_of(
    order_id: int, customer: int, day: int, kind: int
) -> list[OrderFacts | RefundFacts]:
    placed = order(order_id, customer, "pending", "80.00", day=day)
    paid = order(order_id, customer, "paid", "80.00", day=day)
    kinds: list[list[OrderFacts | RefundFacts]] = [
        [placed, paid],
        [paid, paid],  # delivered twice
        [paid, refund(order_id * 10, "30.00", order_id)],
        [paid, refund(order_id * 10, "80.00", order_id)],
        [paid, order(order_id, customer, "paid", "80.00", day=day, cancelled=True)],
        [placed],  # never paid: a prospect, if nothing else
        [order(order_id, customer, "paid", "80.00", day=day, test=True)],
    ]
    return kinds[kind]


@st.composite
def shops(draw: st.DrawFn) -> Shop:
    count = draw(st.integers(1, 40))
    per_order = [
        webhooks_of(
            i + 1, draw(st.integers(1, 12)), draw(st.integers(0, 60)), draw(st.integers(0, 6))
        )
        for i in range(count)
    ]
    rng = random.Random(draw(st.integers(0, 2**32)))
    # Orders interleave at random; one order's webhooks mostly keep their order, but a
    # refund may come first.
    arrival: list[OrderFacts | RefundFacts] = []
    queues = [list(w) for w in per_order]
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        arrival.append(queue.pop(rng.randrange(len(queue)) if rng.random() < 0.2 else 0))
    return Shop(tuple(arrival))


class Engine:
    """The three stages wired as the flow wires them, and the rescoring job's loop."""

    def __init__(self, thresholds: Thresholds | None) -> None:
        self.orders: dict[int, RfmOrder] = {}
        self.customers: dict[int, RfmCustomer] = {}
        self.merchant = RfmMerchant()
        self.merchant.use(thresholds)
        self.updates = 0

    def webhook(self, facts: OrderFacts | RefundFacts) -> None:
        state, changes = apply_order_facts(self.orders.get(facts.order_id), facts)
        self.orders[facts.order_id] = state
        for change in changes:
            customer, outcome = apply_order_change(
                self.customers.get(change.customer), change, LOOKBACK
            )
            self._customer_outcome(change.customer, customer, outcome)
        self.merchant.refresh()

    def day(self, as_of: int) -> None:
        self.merchant.advance(as_of)
        self.merchant.refresh()
        self.converge()

    def converge(self) -> None:
        for _ in range(100):
            picture = self.merchant.picture
            assert picture is not None
            due = [c for c, s in self.customers.items() if needs_tick(s, LOOKBACK, picture)]
            if not due:
                return
            for c in due:
                t = Tick(picture.as_of, picture.scales, picture.version)
                customer, outcome = apply_tick(self.customers[c], t, LOOKBACK)
                self._customer_outcome(c, customer, outcome)
            self.merchant.refresh()
        raise AssertionError("the rescoring loop did not converge")

    def _customer_outcome(self, c: int, customer: RfmCustomer, outcome: CustomerOutcome) -> None:
        self.customers[c] = customer
        if outcome.values_change is not None:
            self.merchant.change(*outcome.values_change)
        if outcome.update is not None:
            self.updates += 1


def batch(webhooks: tuple[OrderFacts | RefundFacts, ...], as_of: int) -> dict[int, Values]:
    """Every known customer's values as of `as_of`, straight from the final facts."""
    facts: dict[int, OrderFacts] = {}
    paid: set[int] = set()
    cancelled: set[int] = set()
    refunds: dict[int, dict[int, Decimal]] = {}
    for w in webhooks:
        if isinstance(w, RefundFacts):
            refunds.setdefault(w.order_id, {})[w.refund_id] = w.subtotal
            continue
        facts[w.order_id] = w
        paid |= {w.order_id} if w.paid else set()
        cancelled |= {w.order_id} if w.cancelled else set()
    values: dict[int, Values] = {}
    for order_id, f in facts.items():
        if f.customer is None or f.test or f.placed_at is None:
            continue
        day = (f.placed_at.date() - EPOCH).days
        net = f.subtotal - sum(refunds.get(order_id, {}).values(), D(0))
        current = values.get(f.customer, PROSPECT)
        fully_refunded = order_id in refunds and net <= 0
        counts = order_id in paid and order_id not in cancelled and not fully_refunded
        if counts and as_of - LOOKBACK < day <= as_of:
            last = max(day, current.last_order_day or day)
            current = Values(last, current.frequency + 1, current.monetary + net)
        values[f.customer] = current
    return values


@settings(max_examples=150, deadline=None)
@given(shops(), st.integers(0, 45), st.booleans())
def test_the_stages_converge_to_a_batch_recomputation_day_after_day(
    shop: Shop, days_after: int, use_thresholds: bool
) -> None:
    thresholds = Thresholds((3, 10, 20, 25), (2, 3, 4, 5), (D(50), D(100), D(160), D(240)))
    engine = Engine(thresholds if use_thresholds else None)
    for w in shop.webhooks:
        engine.webhook(w)
    first = DAY0 + 60 + days_after  # on or after every order's day
    for as_of in (first, first + 1, first + 7, first + LOOKBACK):
        engine.day(as_of)
        expected = batch(shop.webhooks, as_of)
        assert {c: s.values() for c, s in engine.customers.items()} == expected
        assert_scores_match(engine, expected, thresholds if use_thresholds else None, as_of)


def assert_scores_match(
    engine: Engine, expected: dict[int, Values], thresholds: Thresholds | None, as_of: int
) -> None:
    scores = oracle_scores([v for v in expected.values() if v.scored], thresholds, as_of)
    segments: Counter[Segment] = Counter()
    for c, values in expected.items():
        announced = engine.customers[c]
        if not values.scored:
            assert announced.segment is Segment.PROSPECTS
            segments[Segment.PROSPECTS] += 1
            continue
        rfm = scores(values)
        assert announced.scores == Scores(*rfm, segment_for(rfm[0], rfm[1]))
        segments[segment_for(rfm[0], rfm[1])] += 1
    picture = engine.merchant.picture
    assert picture is not None
    assert picture.as_of == as_of
    assert picture.counts == {s: segments[s] for s in Segment}
    assert picture.total == len(expected)


def oracle_scores(
    scored: list[Values], thresholds: Thresholds | None, as_of: int
) -> Callable[[Values], tuple[int, int, int]]:
    """The README's rules, applied to the batch's values directly."""
    if thresholds is not None:
        rs = thresholds.recency_scale(as_of)
        return lambda v: (
            rs.score(v.last_order_day or 0),
            1 + sum(1 for b in thresholds.frequency if v.frequency >= b),
            1 + sum(1 for b in thresholds.monetary if v.monetary >= b),
        )
    r = midpoint_scale(Counter(v.last_order_day or 0 for v in scored))
    f = midpoint_scale(Counter(v.frequency for v in scored))
    m = midpoint_scale(Counter(monetary_bucket(v.monetary) for v in scored))
    return lambda v: (
        r.score(v.last_order_day or 0),
        f.score(v.frequency),
        m.score(monetary_bucket(v.monetary)),
    )
