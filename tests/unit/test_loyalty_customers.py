"""The customer stage (loyalty.customers): the single writer of a customer's points.

Balances and sequence numbers, redemptions and adjustments, pending points, lot and inactivity
expiry with their warnings, ticks and catch-up, duplicates and the dedup window, and the
balance snapshot after each command that changed something.
"""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from loyalty import ids
from loyalty.customers import (
    MAX_ADJUSTMENT,
    Adjustment,
    AdjustmentOutcome,
    BalanceSnapshot,
    CustomerInput,
    CustomerOutput,
    CustomerState,
    ExpiryWarning,
    LedgerEntry,
    NextExpiry,
    Redemption,
    RedemptionOutcome,
    RedemptionStatus,
    Status,
    Tick,
    apply_customer,
)
from loyalty.errors import InvalidEventError
from loyalty.ledger import Kind, OrderOutput, OrderUpdate, PointsChange, Source, Terms, apply_order
from loyalty.limits import MAX_INT64, MAX_POINTS, MIN_INT64
from loyalty.lots import Held, Lot, Lots
from loyalty.policy import DEFAULT_WARNING_DAYS, Expiry, Policy
from loyalty.state_rows import customer_from_row, customer_row
from tests.unit.test_loyalty_ledger import _arrival, _scenario, order_body, refund_body, update

SHOP = "demo.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
CUSTOMER = 207119551
ORDER_ID = 450789469
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------------------- helpers


def day(days: float, hours: float = 0) -> datetime:
    """AT plus that many days and hours."""
    return AT + timedelta(days=days, hours=hours)


def midnight(month: int, dom: int) -> datetime:
    return datetime(2024, month, dom, tzinfo=UTC)


def earned(
    points: int,
    *,
    order_id: int = ORDER_ID,
    at: datetime = AT,
    expiry: str = "none",
    pending_days: int = 0,
    warning_days: int = DEFAULT_WARNING_DAYS,
    locale: str = "en",
) -> PointsChange:
    """An order's earn, as the order stage posts it under those terms."""
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=Source.ORDER,
        source_id=str(order_id),
        kind=Kind.EARN,
        points=points,
        text_key="points.earned.order",
        locale=locale,
        at=at,
        order_id=order_id,
        key="earn",
        terms=Terms(
            release_at=at + timedelta(days=pending_days) if pending_days else None,
            expiry=Expiry.parse(expiry),
            warning_days=warning_days,
        ),
    )


def refunded(
    points: int,
    refund_id: int = 1,
    *,
    order_id: int = ORDER_ID,
    at: datetime = AT,
    locale: str = "en",
    correlation_id: str | None = None,
) -> PointsChange:
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=Source.REFUND,
        source_id=str(refund_id),
        kind=Kind.REVERSE,
        points=points,
        text_key="points.reversed.refund",
        locale=locale,
        at=at,
        order_id=order_id,
        key=f"refund:{refund_id}",
        refund_id=refund_id,
        correlation_id=correlation_id,
    )


def cancelled(points: int, *, order_id: int = ORDER_ID, at: datetime = AT) -> PointsChange:
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=Source.CANCEL,
        source_id=str(order_id),
        kind=Kind.REVERSE,
        points=points,
        text_key="points.reversed.cancel",
        locale="en",
        at=at,
        order_id=order_id,
        key="cancel",
    )


def bonus(
    points: int, source_id: str = "ref-1", *, at: datetime = AT, kind: Kind = Kind.BONUS
) -> PointsChange:
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=Source.REFERRAL,
        source_id=source_id,
        kind=kind,
        points=points,
        text_key="points.bonus.referral",
        locale="en",
        at=at,
    )


def redemption(redemption_id: str, points: int, at: datetime = AT) -> Redemption:
    return Redemption(
        redemption_id=redemption_id,
        merchant_id=MERCHANT,
        customer=CUSTOMER,
        points=points,
        reward_id="reward-1",
        idempotency_key=f"idem-{redemption_id}",
        locale="en",
        at=at,
    )


def adjustment(adjustment_id: str, points: int, at: datetime = AT) -> Adjustment:
    return Adjustment(
        adjustment_id=adjustment_id,
        merchant_id=MERCHANT,
        customer=CUSTOMER,
        points=points,
        reason="goodwill",
        idempotency_key=f"idem-{adjustment_id}",
        locale="en",
        at=at,
        correlation_id="corr-adj",
    )


def tick(at: datetime) -> Tick:
    return Tick(MERCHANT, CUSTOMER, at)


def feed(
    items: Iterable[CustomerInput], state: CustomerState | None = None
) -> tuple[CustomerState, list[CustomerOutput]]:
    customer = state
    outputs: list[CustomerOutput] = []
    for item in items:
        customer, out = apply_customer(customer, item)
        outputs.extend(out)
    assert customer is not None
    return customer, outputs


def entries(outputs: Iterable[CustomerOutput]) -> list[LedgerEntry]:
    return [o for o in outputs if isinstance(o, LedgerEntry)]


def outcomes(outputs: Iterable[CustomerOutput]) -> list[RedemptionOutcome]:
    return [o for o in outputs if isinstance(o, RedemptionOutcome)]


def adjusted(outputs: Iterable[CustomerOutput]) -> list[AdjustmentOutcome]:
    return [o for o in outputs if isinstance(o, AdjustmentOutcome)]


def snapshots(outputs: Iterable[CustomerOutput]) -> list[BalanceSnapshot]:
    return [o for o in outputs if isinstance(o, BalanceSnapshot)]


def warnings(outputs: Iterable[CustomerOutput]) -> list[ExpiryWarning]:
    return [o for o in outputs if isinstance(o, ExpiryWarning)]


def moves(outputs: Iterable[CustomerOutput]) -> list[tuple[Kind, int, int, datetime]]:
    """(kind, spendable delta, pending delta, at) of each entry, for compact comparisons."""
    return [(e.kind, e.spendable_delta, e.pending_delta, e.at) for e in entries(outputs)]


def lots(state: CustomerState) -> list[tuple[datetime, int]]:
    return [(lot.expires_at, lot.points) for lot in state.lots.dated]


def entry_id(seq: int) -> str:
    """The id of an entry the customer stage posts on its own (release, expiry)."""
    return str(ids.event_id(MERCHANT, CUSTOMER, seq))


# ---------------------------------------------------------------------------- balances


def test_first_change_starts_a_customer_at_seq_one_with_a_snapshot() -> None:
    state, outputs = apply_customer(None, earned(100))

    entry = LedgerEntry(
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
        source=Source.ORDER,
        source_id=str(ORDER_ID),
        spendable_delta=100,
        order_id=ORDER_ID,
    )
    snapshot = BalanceSnapshot(
        merchant_id=MERCHANT,
        customer=CUSTOMER,
        balance=100,
        pending=0,
        lifetime_earned=100,
        seq=1,
        version=1,
        updated_at=AT,
        next_expiry=None,
        due_at=None,
    )
    assert outputs == [entry, snapshot]
    assert state is not None
    assert (state.balance, state.seq, state.pending, state.version) == (100, 1, 0, 1)


def test_reversal_subtracts_and_carries_its_refund_id() -> None:
    refund = refunded(30, 4, locale="he", correlation_id="corr-9")

    state, outputs = feed([earned(100), refund])

    last = entries(outputs)[-1]
    assert (last.kind, last.points, last.balance, last.seq) == (Kind.REVERSE, 30, 70, 2)
    assert (last.refund_id, last.locale, last.correlation_id) == (4, "he", "corr-9")
    assert (last.source, last.source_id, last.order_id) == (Source.REFUND, "4", ORDER_ID)
    assert (last.spendable_delta, last.pending_delta, last.pending) == (-30, 0, None)
    assert last.event_id == refund.event_id
    assert state.balance == 70
    assert state.lifetime_earned == 70


def test_earn_then_redeem_within_balance_completes() -> None:
    state, outputs = feed([earned(100), redemption("r1", 40)])

    spend = entries(outputs)[-1]
    assert outputs[-3:-1] == [
        spend,
        RedemptionOutcome(redemption("r1", 40), RedemptionStatus.COMPLETED, entry=spend),
    ]
    assert (spend.kind, spend.points, spend.balance, spend.seq) == (Kind.SPEND, 40, 60, 2)
    assert spend.spendable_delta == -40
    assert spend.event_id == str(ids.event_id("redemption", "r1"))
    assert (spend.source, spend.source_id, spend.redemption_id) == (Source.REDEMPTION, "r1", "r1")
    assert spend.text_key == "points.spent.redemption"
    assert spend.order_id is None
    assert snapshots(outputs)[-1].balance == 60
    assert state.balance == 60
    assert state.lifetime_earned == 100  # a spend is not an un-earn


def test_redeeming_the_exact_balance_completes_at_zero() -> None:
    state, outputs = feed([earned(100), redemption("r1", 100)])

    assert outcomes(outputs)[0].status == RedemptionStatus.COMPLETED
    assert state.balance == 0


def test_redeeming_more_than_the_balance_fails_and_leaves_it_unchanged() -> None:
    state, _ = feed([earned(100)])

    state, outputs = feed([redemption("r1", 101)], state)

    # No entry, and no snapshot: nothing a snapshot shows has changed.
    assert outputs == [
        RedemptionOutcome(redemption("r1", 101), RedemptionStatus.FAILED, "insufficient_points")
    ]
    assert (state.balance, state.seq, state.version) == (100, 1, 1)


def test_redeeming_with_no_history_fails_and_writes_no_balance() -> None:
    state, outputs = apply_customer(None, redemption("r1", 1))

    assert outputs[0] == RedemptionOutcome(
        redemption("r1", 1), RedemptionStatus.FAILED, "insufficient_points"
    )
    assert entries(outputs) == []
    # Nothing changed: no balance document for someone who never had points (as before).
    assert snapshots(outputs) == []
    assert state is not None
    assert (state.balance, state.seq) == (0, 0)


@pytest.mark.parametrize("points", [0, -5, MAX_POINTS + 1])
def test_redeeming_out_of_range_points_fails_as_invalid(points: int) -> None:
    state, _ = feed([earned(100)])

    state, outputs = feed([redemption("r1", points)], state)

    assert outputs == [
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
    state, outputs = feed([earned(100), redemption("a", 80), cancelled(100), redemption("b", 1)])

    assert [e.balance for e in entries(outputs)] == [100, 20, -80]
    assert outcomes(outputs)[-1].status == RedemptionStatus.FAILED
    assert outcomes(outputs)[-1].reason == "insufficient_points"
    assert state.balance == -80

    state, later = feed([earned(100, order_id=ORDER_ID + 1), redemption("c", 20)], state)
    assert [e.balance for e in entries(later)] == [20, 0]
    assert outcomes(later)[0].status == RedemptionStatus.COMPLETED


def test_a_bonus_adds_spendable_points_and_counts_as_earned() -> None:
    state, outputs = feed([bonus(25), bonus(10, kind=Kind.REVERSE)])

    first, second = entries(outputs)
    assert (first.kind, first.spendable_delta, first.text_key) == (
        Kind.BONUS,
        25,
        "points.bonus.referral",
    )
    assert (first.source, first.source_id) == (Source.REFERRAL, "ref-1")
    assert (second.kind, second.spendable_delta) == (Kind.REVERSE, -10)
    assert (state.balance, state.lifetime_earned) == (15, 15)


def test_seq_increases_by_one_per_entry_and_balance_follows_the_deltas() -> None:
    items: list[CustomerInput] = [
        earned(50, order_id=1),
        redemption("a", 20),
        redemption("b", 500),  # fails: no entry, no seq
        earned(30, order_id=2),
        cancelled(50, order_id=1),
        redemption("c", 0),  # invalid: no entry
        adjustment("x", -5),
        refunded(5, order_id=2),
        redemption("d", 5),
        adjustment("y", 3),
    ]

    state, outputs = feed(items)

    ledger = entries(outputs)
    assert [e.seq for e in ledger] == list(range(1, len(ledger) + 1))
    assert [e.balance for e in ledger] == [50, 30, 60, 10, 5, 0, 3]
    running = 0
    for entry in ledger:
        running += entry.spendable_delta
        assert entry.balance == running
        assert entry.points == abs(entry.spendable_delta) > 0
    assert state.balance == running == 3
    assert state.seq == len(ledger)
    # A snapshot after each command that made an entry; none after the failed ones.
    assert [s.seq for s in snapshots(outputs)] == [1, 2, 3, 4, 5, 6, 7]
    assert [s.version for s in snapshots(outputs)] == list(range(1, 8))


def test_state_is_carried_between_calls() -> None:
    state, _ = apply_customer(None, earned(10, order_id=1))
    state, outputs = apply_customer(state, earned(5, order_id=2))

    assert entries(outputs)[0].seq == 2
    assert state is not None
    assert state.balance == 15


@pytest.mark.parametrize(
    ("balance", "command"),
    [
        (MAX_INT64 - 5, earned(6)),
        (MAX_INT64, bonus(1)),
        (MAX_INT64 - 5, adjustment("a", 6)),
        (MIN_INT64 + 5, cancelled(6)),
    ],
    ids=["earn", "bonus", "adjustment", "reversal"],
)
def test_a_change_that_would_leave_the_int64_range_is_refused(
    balance: int, command: CustomerInput
) -> None:
    state = CustomerState(balance=balance, seq=7)

    # As the flow applies a command: on a copy, kept only if the command is accepted.
    with pytest.raises(InvalidEventError, match="would leave the 64-bit integer range"):
        apply_customer(copy.deepcopy(state), command)


def test_a_release_that_would_leave_the_int64_range_refuses_the_tick() -> None:
    state, _ = feed([earned(10, pending_days=1)])
    state.balance = MAX_INT64 - 5

    with pytest.raises(InvalidEventError, match="would leave the 64-bit integer range"):
        apply_customer(copy.deepcopy(state), tick(day(2)))


# ---------------------------------------------------------------------------- duplicates


def test_duplicate_points_change_is_applied_once_and_outputs_nothing() -> None:
    state, outputs = feed([earned(100), refunded(10)])
    before = copy.deepcopy(state)

    for item in (earned(100), refunded(10)):
        state, again = feed([item], state)
        assert again == []
    assert [(e.kind, e.balance, e.seq) for e in entries(outputs)] == [
        (Kind.EARN, 100, 1),
        (Kind.REVERSE, 90, 2),
    ]
    assert state == before


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


def test_duplicate_adjustment_is_applied_once() -> None:
    state, outputs = feed([adjustment("a1", 40), adjustment("a1", 40)])

    assert len(adjusted(outputs)) == 1
    assert state.balance == 40


def test_a_redemption_and_an_adjustment_do_not_share_ids() -> None:
    state, outputs = feed([adjustment("same", 40), redemption("same", 10)])

    assert [e.kind for e in entries(outputs)] == [Kind.ADJUST, Kind.SPEND]
    assert state.balance == 30


def test_a_duplicate_arriving_late_does_not_move_the_clock() -> None:
    state, _ = feed([earned(100, expiry="inactivity:30"), tick(day(20))])

    # The earn again, redelivered much later than the tick: ignored, nothing falls due.
    state, outputs = feed([earned(100, expiry="inactivity:30")], state)

    assert outputs == []
    assert state.clock == day(20)


@pytest.mark.parametrize("seed", range(200))
def test_random_interleavings_never_complete_a_redemption_into_debt(seed: int) -> None:
    rng = random.Random(seed)
    items: list[CustomerInput] = []
    for n in range(rng.randint(1, 30)):
        roll = rng.random()
        if roll < 0.35:
            items.append(earned(rng.randint(1, 200), order_id=n))
        elif roll < 0.5:
            items.append(cancelled(rng.randint(1, 200), order_id=n))
        elif roll < 0.6:
            items.append(adjustment(f"a{n}", rng.randint(-150, 150)))
        else:
            items.append(redemption(f"r{n}", rng.randint(-5, 150)))
    items += [rng.choice(items) for _ in range(rng.randint(0, 5))]  # redeliveries
    rng.shuffle(items)

    state: CustomerState | None = None
    seen: set[str] = set()
    running = 0
    last_seq = 0
    for item in items:
        before = state.balance if state else 0
        if isinstance(item, Redemption):
            key = item.redemption_id
        elif isinstance(item, Adjustment):
            key = "adjustment:" + item.adjustment_id
        else:
            assert isinstance(item, PointsChange)
            key = item.event_id
        duplicate = key in seen
        seen.add(key)
        state, outputs = apply_customer(state, item)
        assert state is not None
        if duplicate:
            assert outputs == []
            assert state.balance == before
            continue
        for entry in entries(outputs):
            last_seq += 1
            running += entry.spendable_delta
            assert entry.seq == last_seq
            assert entry.balance == running
        results: list[RedemptionOutcome | AdjustmentOutcome] = [
            *outcomes(outputs),
            *adjusted(outputs),
        ]
        for outcome in results:
            spend = (
                outcome.redemption.points
                if isinstance(outcome, RedemptionOutcome)
                else -outcome.adjustment.points
            )
            if outcome.status == Status.COMPLETED:
                assert outcome.entry is not None
                assert outcome.entry.spendable_delta == -spend
                if spend > 0:
                    assert outcome.entry.balance == before - spend >= 0
            else:
                assert outcome.status == Status.FAILED
                assert outcome.entry is None
                assert state.balance == before
                if outcome.reason == "insufficient_points":
                    assert before < spend
                else:
                    assert outcome.reason == "invalid_points"
                    assert spend <= 0 if isinstance(outcome, RedemptionOutcome) else spend == 0
        if isinstance(item, Redemption):
            assert len(outcomes(outputs)) == 1
        elif isinstance(item, Adjustment):
            assert len(adjusted(outputs)) == 1
        else:
            assert len(entries(outputs)) == 1
    assert state is not None
    assert state.balance == running
    assert state.seq == last_seq


# ---------------------------------------------------------------------------- adjustments


def test_a_positive_adjustment_adds_points() -> None:
    state, outputs = feed([earned(10), adjustment("a1", 30, day(1))])

    entry = entries(outputs)[-1]
    assert adjusted(outputs) == [
        AdjustmentOutcome(adjustment("a1", 30, day(1)), Status.COMPLETED, entry=entry)
    ]
    assert (entry.kind, entry.points, entry.spendable_delta, entry.balance) == (
        Kind.ADJUST,
        30,
        30,
        40,
    )
    assert entry.text_key == "points.adjusted.added"
    assert (entry.source, entry.source_id, entry.adjustment_id) == (
        Source.ADJUSTMENT,
        "a1",
        "a1",
    )
    assert entry.event_id == str(ids.event_id(MERCHANT, "adjustment", "a1"))
    assert (entry.reason, entry.correlation_id, entry.at) == ("goodwill", "corr-adj", day(1))
    assert snapshots(outputs)[-1].balance == 40
    assert state.lifetime_earned == 10  # an adjustment is not an earn


def test_a_negative_adjustment_deducts_points() -> None:
    state, outputs = feed([earned(100), adjustment("a1", -30)])

    entry = entries(outputs)[-1]
    assert (entry.kind, entry.points, entry.spendable_delta, entry.balance) == (
        Kind.ADJUST,
        30,
        -30,
        70,
    )
    assert entry.text_key == "points.adjusted.deducted"
    assert adjusted(outputs)[0].status == Status.COMPLETED
    assert state.balance == 70


def test_a_deduction_of_the_whole_balance_completes_at_zero() -> None:
    state, outputs = feed([earned(100), adjustment("a1", -100)])

    assert adjusted(outputs)[0].status == Status.COMPLETED
    assert state.balance == 0


def test_a_deduction_beyond_the_balance_fails_and_only_its_id_is_remembered() -> None:
    state, _ = feed([earned(100, expiry="lot:30"), earned(50, order_id=2, pending_days=5)])
    before = copy.deepcopy(state)

    state, outputs = feed([adjustment("a1", -101, day(1))], state)

    assert outputs == [
        AdjustmentOutcome(adjustment("a1", -101, day(1)), Status.FAILED, "insufficient_points")
    ]
    assert state.recent != before.recent
    assert replace(state, recent=before.recent, clock=before.clock, locale=before.locale) == before
    # Remembered: the same adjustment again is a duplicate, even now that it would fit.
    state, later = feed([adjustment("a2", 10, day(2)), adjustment("a1", -101, day(2))], state)
    assert [o.adjustment.adjustment_id for o in adjusted(later)] == ["a2"]
    assert state.balance == 110


def test_a_deduction_cannot_take_pending_points() -> None:
    state, outputs = feed(
        [earned(10), earned(100, order_id=2, pending_days=7), adjustment("a", -50)]
    )

    assert adjusted(outputs)[0].reason == "insufficient_points"
    assert (state.balance, state.pending) == (10, 100)


def test_a_deduction_from_a_negative_balance_fails() -> None:
    state, outputs = feed([earned(100), redemption("r", 100), cancelled(100), adjustment("a", -1)])

    assert adjusted(outputs)[0].reason == "insufficient_points"
    assert state.balance == -100


def test_a_positive_adjustment_repays_a_debt_first() -> None:
    state, outputs = feed(
        [
            earned(100, expiry="lot:30"),
            redemption("r", 100),
            cancelled(100),
            adjustment("a", 130, day(1)),
        ]
    )

    assert entries(outputs)[-1].balance == 30
    assert lots(state) == [(midnight(6, 2), 30)]  # only what is left after the debt is dated


@pytest.mark.parametrize("points", [0, MAX_ADJUSTMENT + 1, -MAX_ADJUSTMENT - 1])
def test_an_adjustment_out_of_range_fails_as_invalid(points: int) -> None:
    state, _ = feed([earned(100)])

    state, outputs = feed([adjustment("a1", points)], state)

    assert outputs == [AdjustmentOutcome(adjustment("a1", points), Status.FAILED, "invalid_points")]
    assert (state.balance, state.seq) == (100, 1)


@pytest.mark.parametrize("points", [MAX_ADJUSTMENT, -MAX_ADJUSTMENT])
def test_an_adjustment_at_the_bound_is_applied(points: int) -> None:
    state, outputs = feed([adjustment("seed", MAX_ADJUSTMENT), adjustment("a1", points)])

    assert [o.status for o in adjusted(outputs)] == [Status.COMPLETED, Status.COMPLETED]
    assert state.balance == MAX_ADJUSTMENT + points


# ---------------------------------------------------------------------------- pending points


def test_pending_points_are_held_and_not_spendable() -> None:
    state, outputs = feed([earned(100, pending_days=14), redemption("r", 1, day(1))])

    entry = entries(outputs)[0]
    assert (entry.kind, entry.points, entry.balance) == (Kind.EARN, 100, 0)
    assert (entry.spendable_delta, entry.pending_delta, entry.pending) == (0, 100, 100)
    assert entry.text_key == "points.earned.pending"
    assert outcomes(outputs)[0].reason == "insufficient_points"
    (snapshot,) = snapshots(outputs)
    assert (snapshot.balance, snapshot.pending, snapshot.lifetime_earned) == (0, 100, 100)
    assert snapshot.due_at == day(14)
    assert state.held == {f"order:{ORDER_ID}": Held(100, day(14), AT, Expiry())}


def test_pending_points_are_released_by_a_tick_at_their_release_time() -> None:
    state, _ = feed([earned(100, pending_days=14)])

    state, early = feed([tick(day(13, 23))], state)
    state, outputs = feed([tick(day(17))], state)

    assert early == []
    (release,) = entries(outputs)
    assert release == LedgerEntry(
        event_id=entry_id(2),
        merchant_id=MERCHANT,
        customer=CUSTOMER,
        kind=Kind.RELEASE,
        points=100,
        balance=100,
        seq=2,
        text_key="points.released.pending",
        locale="en",
        at=day(14),  # when they fell due, not when the tick came
        source=Source.PENDING,
        source_id=f"order:{ORDER_ID}",
        spendable_delta=100,
        pending_delta=-100,
        pending=0,
        order_id=ORDER_ID,
    )
    (snapshot,) = snapshots(outputs)
    assert (snapshot.balance, snapshot.pending, snapshot.due_at) == (100, 0, None)
    assert snapshot.updated_at == day(17)
    assert not state.held  # None: no pending points kept


def test_a_tick_exactly_at_the_release_time_releases() -> None:
    state, _ = feed([earned(100, pending_days=14)])

    state, outputs = feed([tick(day(14))], state)

    assert moves(outputs) == [(Kind.RELEASE, 100, -100, day(14))]


def test_any_later_command_releases_what_fell_due_before_it_applies() -> None:
    state, outputs = feed([earned(100, pending_days=14), redemption("r", 60, day(20))])

    assert moves(outputs)[1:] == [
        (Kind.RELEASE, 100, -100, day(14)),
        (Kind.SPEND, -60, 0, day(20)),
    ]
    assert outcomes(outputs)[0].status == RedemptionStatus.COMPLETED
    assert state.balance == 40


def test_a_refund_during_pending_shrinks_the_pending_points_and_is_never_spendable() -> None:
    state, outputs = feed(
        [
            earned(200, expiry="none"),  # another order's spendable points, untouched
            earned(100, order_id=2, pending_days=14),
            refunded(30, 7, order_id=2, at=day(2)),
            tick(day(15)),
        ]
    )

    assert moves(outputs) == [
        (Kind.EARN, 200, 0, AT),
        (Kind.EARN, 0, 100, AT),
        (Kind.REVERSE, 0, -30, day(2)),
        (Kind.RELEASE, 70, -70, day(14)),
    ]
    reverse = entries(outputs)[2]
    assert (reverse.balance, reverse.pending) == (200, 70)
    assert [(s.balance, s.pending, s.lifetime_earned) for s in snapshots(outputs)] == [
        (200, 0, 200),
        (200, 100, 300),
        (200, 70, 270),
        (270, 0, 270),
    ]
    assert state.balance == 270


def test_a_cancel_during_pending_removes_the_pending_points() -> None:
    state, outputs = feed([earned(100, pending_days=14), cancelled(100, at=day(1)), tick(day(30))])

    assert moves(outputs) == [(Kind.EARN, 0, 100, AT), (Kind.REVERSE, 0, -100, day(1))]
    assert (state.balance, state.pending, state.lifetime_earned) == (0, 0, 0)
    assert not state.held  # None: no pending points kept
    assert snapshots(outputs)[-1].due_at is None


def test_a_reversal_larger_than_the_pending_points_takes_the_rest_from_spendable() -> None:
    state, outputs = feed(
        [
            earned(200, order_id=1),
            earned(100, order_id=2, pending_days=14),
            cancelled(150, order_id=2, at=day(1)),
        ]
    )

    assert moves(outputs)[-1] == (Kind.REVERSE, -50, -100, day(1))
    assert entries(outputs)[-1].points == 150
    assert (state.balance, state.pending) == (150, 0)
    assert not state.held  # None: no pending points kept


def test_a_refund_never_takes_another_orders_pending_points() -> None:
    state, outputs = feed(
        [earned(100, order_id=1), earned(50, order_id=2, pending_days=14), refunded(30, order_id=1)]
    )

    assert moves(outputs)[-1] == (Kind.REVERSE, -30, 0, AT)
    assert (state.balance, state.pending) == (70, 50)


def test_pending_points_of_several_orders_are_released_in_time_order() -> None:
    state, outputs = feed(
        [
            earned(10, order_id=1, pending_days=10),
            earned(20, order_id=2, at=day(1), pending_days=3),
            tick(day(30)),
        ]
    )

    assert [(e.kind, e.source_id, e.at) for e in entries(outputs)][2:] == [
        (Kind.RELEASE, "order:2", day(4)),
        (Kind.RELEASE, "order:1", day(10)),
    ]
    assert state.balance == 30


def test_an_earn_whose_release_time_has_passed_on_the_customer_clock_is_spendable() -> None:
    state, _ = feed([tick(day(0)), earned(1)])
    state, _ = feed([redemption("r", 1, day(20))], state)

    # Dated 15 days ago with 14 pending days: its release time is already behind the clock.
    state, outputs = feed([earned(100, order_id=2, at=day(5), pending_days=14)], state)

    assert moves(outputs) == [(Kind.EARN, 100, 0, day(5))]
    assert state.pending == 0


def test_released_points_get_the_lot_of_the_day_they_were_earned() -> None:
    state, outputs = feed([earned(100, expiry="lot:30", pending_days=7), tick(day(8))])

    assert moves(outputs)[-1] == (Kind.RELEASE, 100, -100, day(7))
    assert lots(state) == [(midnight(6, 1), 100)]


def test_pending_points_are_not_counted_in_lots_or_next_expiry() -> None:
    state, outputs = feed([earned(100, expiry="lot:30", pending_days=7)])

    assert lots(state) == []
    assert snapshots(outputs)[-1].next_expiry is None


# ---------------------------------------------------------------------------- lot expiry


def test_a_lot_expires_at_the_end_of_the_utc_day_days_later() -> None:
    state, _ = feed([earned(100, expiry="lot:30", warning_days=0)])

    state, before = feed([tick(midnight(6, 1) - timedelta(seconds=1))], state)
    state, outputs = feed([tick(midnight(6, 3))], state)

    assert before == []
    (expire,) = entries(outputs)
    assert expire == LedgerEntry(
        event_id=entry_id(2),
        merchant_id=MERCHANT,
        customer=CUSTOMER,
        kind=Kind.EXPIRE,
        points=100,
        balance=0,
        seq=2,
        text_key="points.expired.lot",
        locale="en",
        at=midnight(6, 1),
        source=Source.EXPIRY,
        source_id="lot:2024-06-01",
        spendable_delta=-100,
    )
    assert lots(state) == []
    (snapshot,) = snapshots(outputs)
    assert (snapshot.balance, snapshot.next_expiry, snapshot.due_at) == (0, None, None)


def test_a_lot_is_the_utc_day_whatever_offset_the_time_was_given_in() -> None:
    plus_two = timezone(timedelta(hours=2))
    late_evening_utc = datetime(2024, 5, 2, 1, 0, tzinfo=plus_two)  # 2024-05-01T23:00Z

    state, _ = feed([earned(100, at=late_evening_utc, expiry="lot:30")])

    assert lots(state) == [(midnight(6, 1), 100)]


def test_the_points_of_one_utc_day_make_one_lot() -> None:
    state, outputs = feed(
        [
            earned(10, order_id=1, at=datetime(2024, 5, 1, 0, 0, tzinfo=UTC), expiry="lot:30"),
            earned(20, order_id=2, at=datetime(2024, 5, 1, 23, 59, tzinfo=UTC), expiry="lot:30"),
            earned(40, order_id=3, at=datetime(2024, 5, 2, 0, 0, tzinfo=UTC), expiry="lot:30"),
        ]
    )

    assert lots(state) == [(midnight(6, 1), 30), (midnight(6, 2), 40)]
    assert snapshots(outputs)[-1].next_expiry == NextExpiry(30, midnight(6, 1))


def test_spends_take_the_earliest_expiring_lots_first() -> None:
    state, outputs = feed(
        [
            earned(100, order_id=1, expiry="lot:30", warning_days=0),
            earned(50, order_id=2, at=day(1), expiry="lot:30", warning_days=0),
            redemption("r", 120, day(2)),
        ]
    )

    assert lots(state) == [(midnight(6, 2), 30)]
    assert snapshots(outputs)[-1].next_expiry == NextExpiry(30, midnight(6, 2))

    state, later = feed([tick(day(60))], state)
    assert [(e.points, e.at) for e in entries(later)] == [(30, midnight(6, 2))]
    assert state.balance == 0


def test_deductions_take_the_earliest_expiring_lots_first() -> None:
    state, _ = feed(
        [
            earned(100, order_id=1, expiry="lot:30"),
            earned(50, order_id=2, at=day(1), expiry="lot:30"),
            adjustment("a", -120, day(2)),
        ]
    )

    assert lots(state) == [(midnight(6, 2), 30)]


def test_reversals_take_the_newest_lots_first() -> None:
    state, _ = feed(
        [
            earned(100, order_id=1, expiry="lot:30"),
            earned(50, order_id=2, at=day(5), expiry="lot:30"),
            refunded(30, order_id=1, at=day(6)),
        ]
    )
    assert lots(state) == [(midnight(6, 1), 100), (midnight(6, 6), 20)]

    state, _ = feed([cancelled(70, order_id=1, at=day(7))], state)
    assert lots(state) == [(midnight(6, 1), 50)]
    assert state.balance == 50


def test_a_reversal_into_debt_empties_the_lots_and_later_earns_repay_it_first() -> None:
    state, outputs = feed(
        [
            earned(100, order_id=1, expiry="lot:30"),
            redemption("r", 80, day(1)),
            cancelled(100, order_id=1, at=day(2)),
            earned(100, order_id=2, at=day(3), expiry="lot:30"),
        ]
    )

    assert [e.balance for e in entries(outputs)] == [100, 20, -80, 20]
    assert lots(state) == [(midnight(6, 4), 20)]


def test_after_a_long_gap_the_lots_expire_one_by_one_in_date_order() -> None:
    state, _ = feed(
        [
            earned(10, order_id=1, at=day(0), expiry="lot:10"),
            earned(20, order_id=2, at=day(2), expiry="lot:10"),
            earned(40, order_id=3, at=day(4), expiry="lot:10"),
        ]
    )

    state, outputs = feed([tick(day(90))], state)

    assert [(e.kind, e.points, e.balance, e.seq, e.at, e.source_id) for e in entries(outputs)] == [
        (Kind.EXPIRE, 10, 60, 4, midnight(5, 12), "lot:2024-05-12"),
        (Kind.EXPIRE, 20, 40, 5, midnight(5, 14), "lot:2024-05-14"),
        (Kind.EXPIRE, 40, 0, 6, midnight(5, 16), "lot:2024-05-16"),
    ]
    assert warnings(outputs) == []  # every one came after its expiry: no warning
    assert len(snapshots(outputs)) == 1


def test_a_later_command_expires_the_lots_due_before_it_applies() -> None:
    _, outputs = feed([earned(100, expiry="lot:10", warning_days=0), redemption("r", 50, day(30))])

    assert moves(outputs)[1:] == [(Kind.EXPIRE, -100, 0, midnight(5, 12))]
    assert outcomes(outputs)[0].reason == "insufficient_points"


def test_a_bonus_and_a_positive_adjustment_are_dated_under_the_current_terms() -> None:
    state, _ = feed(
        [
            earned(10, expiry="lot:30"),
            bonus(20, at=day(1)),
            adjustment("a", 40, day(2)),
        ]
    )

    assert lots(state) == [(midnight(6, 1), 10), (midnight(6, 2), 20), (midnight(6, 3), 40)]


# ---------------------------------------------------------------------------- inactivity expiry


def test_the_whole_balance_expires_days_after_the_last_activity() -> None:
    state, _ = feed(
        [
            earned(60, order_id=1, expiry="inactivity:30", warning_days=0),
            earned(40, order_id=2, at=day(5), expiry="inactivity:30", warning_days=0),
        ]
    )

    state, before = feed([tick(day(34, 23))], state)
    state, outputs = feed([tick(day(36))], state)

    assert before == []
    (expire,) = entries(outputs)
    assert (expire.kind, expire.points, expire.balance, expire.at) == (Kind.EXPIRE, 100, 0, day(35))
    assert (expire.source, expire.source_id) == (Source.EXPIRY, "inactivity:2024-06-05")
    assert expire.text_key == "points.expired.inactivity"
    assert snapshots(outputs)[-1].due_at is None


@pytest.mark.parametrize(
    "activity",
    [
        redemption("r", 10, day(20)),
        adjustment("a", 5, day(20)),
        adjustment("d", -5, day(20)),
        bonus(5, at=day(20)),
        earned(5, order_id=2, at=day(20), expiry="inactivity:30"),
    ],
    ids=["spend", "addition", "deduction", "bonus", "earn"],
)
def test_activity_postpones_inactivity_expiry(activity: CustomerInput) -> None:
    state, _ = feed([earned(100, expiry="inactivity:30", warning_days=0), activity])

    state, quiet = feed([tick(day(49))], state)
    state, outputs = feed([tick(day(51))], state)

    assert entries(quiet) == []
    assert [(e.kind, e.at) for e in entries(outputs)] == [(Kind.EXPIRE, day(50))]
    assert state.balance == 0


def test_a_reversal_does_not_postpone_inactivity_expiry() -> None:
    _, outputs = feed(
        [
            earned(100, expiry="inactivity:30", warning_days=0),
            refunded(10, at=day(20)),
            tick(day(31)),
        ]
    )

    assert moves(outputs)[-1] == (Kind.EXPIRE, -90, 0, day(30))


def test_a_release_of_pending_points_is_activity() -> None:
    _, outputs = feed(
        [earned(100, expiry="inactivity:30", pending_days=10, warning_days=0), tick(day(39))]
    )

    assert moves(outputs)[1:] == [(Kind.RELEASE, 100, -100, day(10))]
    assert snapshots(outputs)[-1].due_at == day(40)


def test_inactivity_expiry_after_a_long_gap_is_dated_when_it_fell_due() -> None:
    _, outputs = feed([earned(100, expiry="inactivity:30"), tick(day(400))])

    assert moves(outputs)[1:] == [(Kind.EXPIRE, -100, 0, day(30))]
    assert warnings(outputs) == []


def test_an_empty_or_negative_balance_has_nothing_to_expire() -> None:
    _, outputs = feed([earned(100, expiry="inactivity:30"), redemption("r", 100), tick(day(100))])

    assert [e.kind for e in entries(outputs)] == [Kind.EARN, Kind.SPEND]
    assert snapshots(outputs)[-1].due_at is None
    assert snapshots(outputs)[-1].next_expiry is None


# ---------------------------------------------------------------------------- warnings


def test_a_lot_is_warned_once_before_it_expires() -> None:
    state, _ = feed([earned(100, expiry="lot:30", warning_days=7, locale="he")])

    state, early = feed([tick(midnight(5, 25) - timedelta(seconds=1))], state)
    state, outputs = feed([tick(midnight(5, 26))], state)
    state, again = feed([tick(midnight(5, 30))], state)
    state, expired = feed([tick(midnight(6, 1))], state)

    assert early == []
    warning = ExpiryWarning(MERCHANT, CUSTOMER, 100, midnight(6, 1), midnight(5, 25), "he")
    assert warnings(outputs) == [warning]
    assert warning.event_id == str(
        ids.event_id(MERCHANT, CUSTOMER, "expiring", midnight(6, 1).isoformat())
    )
    # The warning changed when the clock must next come: a snapshot says so.
    assert [s.due_at for s in snapshots(outputs)] == [midnight(6, 1)]
    assert again == []
    assert warnings(expired) == []
    assert moves(expired) == [(Kind.EXPIRE, -100, 0, midnight(6, 1))]


def test_each_lot_is_warned_with_its_own_points_and_date() -> None:
    _, outputs = feed(
        [
            earned(10, order_id=1, expiry="lot:30", warning_days=7),
            earned(20, order_id=2, at=day(3), expiry="lot:30", warning_days=7),
            tick(midnight(5, 29)),
        ]
    )

    assert [(w.points, w.expires_at, w.at) for w in warnings(outputs)] == [
        (10, midnight(6, 1), midnight(5, 25)),
        (20, midnight(6, 4), midnight(5, 28)),
    ]


def test_a_warning_is_skipped_when_the_tick_comes_after_the_expiry() -> None:
    _, outputs = feed([earned(100, expiry="lot:30", warning_days=7), tick(midnight(6, 1))])

    assert warnings(outputs) == []
    assert [e.kind for e in entries(outputs)] == [Kind.EARN, Kind.EXPIRE]


def test_a_warning_is_sent_only_before_the_expiry() -> None:
    _, outputs = feed(
        [
            earned(100, expiry="lot:30", warning_days=7),
            tick(midnight(6, 1) - timedelta(microseconds=1)),
        ]
    )

    (warning,) = warnings(outputs)
    assert warning.at < warning.expires_at


def test_inactivity_is_warned_once_per_due_date() -> None:
    _, outputs = feed(
        [
            earned(100, expiry="inactivity:30", warning_days=7),
            tick(day(24)),
            tick(day(25)),
            redemption("r", 10, day(26)),  # activity: a new due date, a new warning
            tick(day(49)),
            tick(day(55)),
            tick(day(57)),
        ]
    )

    assert [(w.points, w.expires_at, w.at) for w in warnings(outputs)] == [
        (100, day(30), day(23)),
        (90, day(56), day(49)),
    ]
    assert moves(outputs)[-1] == (Kind.EXPIRE, -90, 0, day(56))


def test_an_inactivity_warning_is_skipped_on_catch_up() -> None:
    _, outputs = feed([earned(100, expiry="inactivity:30", warning_days=7), tick(day(31))])

    assert warnings(outputs) == []
    assert moves(outputs)[-1] == (Kind.EXPIRE, -100, 0, day(30))


def test_a_warning_speaks_the_language_of_the_customers_last_command() -> None:
    _, outputs = feed(
        [
            earned(100, expiry="inactivity:30", warning_days=7, locale="ar"),
            tick(day(24)),
        ]
    )

    assert [w.locale for w in warnings(outputs)] == ["ar"]


# ---------------------------------------------------------------------------- terms


def test_a_change_of_terms_from_lot_to_none_keeps_the_existing_lots_dates() -> None:
    state, outputs = feed(
        [
            earned(100, order_id=1, expiry="lot:30", warning_days=0),
            earned(50, order_id=2, at=day(5), expiry="none"),
            tick(day(90)),
        ]
    )

    assert moves(outputs)[2:] == [(Kind.EXPIRE, -100, 0, midnight(6, 1))]
    assert state.balance == 50
    assert lots(state) == []
    assert state.expiry == Expiry()


def test_a_change_of_terms_from_none_to_lot_dates_only_the_new_points() -> None:
    state, outputs = feed(
        [
            earned(100, order_id=1, expiry="none"),
            earned(50, order_id=2, at=day(5), expiry="lot:30", warning_days=0),
            tick(day(90)),
        ]
    )

    assert moves(outputs)[2:] == [(Kind.EXPIRE, -50, 0, midnight(6, 6))]
    assert state.balance == 100


def test_a_change_of_lot_days_applies_to_the_new_points() -> None:
    state, _ = feed(
        [
            earned(100, order_id=1, expiry="lot:30"),
            earned(50, order_id=2, at=day(5), expiry="lot:10"),
        ]
    )

    assert lots(state) == [(midnight(5, 17), 50), (midnight(6, 1), 100)]


def test_pending_points_keep_the_terms_they_were_earned_under() -> None:
    state, _ = feed(
        [
            earned(100, order_id=1, expiry="lot:30", pending_days=7),
            earned(50, order_id=2, at=day(1), expiry="none"),
            tick(day(8)),
        ]
    )

    assert state.expiry == Expiry()
    assert lots(state) == [(midnight(6, 1), 100)]
    assert state.balance == 150


def test_a_change_from_lot_to_inactivity_expires_the_whole_balance_when_inactive() -> None:
    state, outputs = feed(
        [
            earned(100, order_id=1, expiry="lot:60", warning_days=0),
            earned(50, order_id=2, at=day(5), expiry="inactivity:30", warning_days=0),
            tick(day(36)),
        ]
    )

    assert moves(outputs)[2:] == [(Kind.EXPIRE, -150, 0, day(35))]
    assert lots(state) == []


# ---------------------------------------------------------------------------- ticks


def test_a_tick_for_an_unknown_customer_keeps_no_state() -> None:
    assert apply_customer(None, tick(day(10))) == (None, [])


def test_a_tick_with_nothing_due_outputs_nothing() -> None:
    state, _ = feed([earned(100, expiry="inactivity:30")])
    before = copy.deepcopy(state)

    state, outputs = feed([tick(day(1))], state)

    assert outputs == []
    assert replace(state, clock=before.clock) == before
    assert state.clock == day(1)


def test_a_tick_behind_the_clock_does_nothing() -> None:
    state, _ = feed([earned(100, expiry="lot:10", warning_days=0), tick(day(5))])
    before = copy.deepcopy(state)

    state, outputs = feed([tick(day(2)), tick(day(5))], state)

    assert outputs == []
    assert state == before


# ---------------------------------------------------------------------------- the dedup window


def test_a_command_older_than_the_window_is_refused_and_changes_nothing() -> None:
    state, _ = feed([earned(100, order_id=1), earned(10, order_id=2, at=day(40))])
    before = copy.deepcopy(state)

    for late in (earned(5, order_id=3, at=day(5)), earned(100, order_id=1)):
        with pytest.raises(InvalidEventError, match="30-day window"):
            apply_customer(state, late)
        assert state == before


def test_a_duplicate_within_the_window_is_still_recognized() -> None:
    state, _ = feed([earned(100, order_id=1), earned(10, order_id=2, at=day(29))])

    state, outputs = feed([earned(100, order_id=1)], state)

    assert outputs == []
    assert state.balance == 110


def test_a_late_command_within_the_window_is_applied() -> None:
    state, _ = feed([earned(100, order_id=1, at=day(29))])

    state, outputs = feed([redemption("r", 10, day(1))], state)

    assert outcomes(outputs)[0].status == RedemptionStatus.COMPLETED
    assert entries(outputs)[0].at == day(1)


def test_ticks_do_not_move_the_window() -> None:
    state, _ = feed([earned(100, order_id=1), tick(day(100))])

    state, outputs = feed([earned(100, order_id=1)], state)

    assert outputs == []
    assert state.balance == 100


def test_the_window_follows_the_customers_latest_command() -> None:
    state, _ = feed([redemption("r1", 1, AT), earned(1, order_id=2, at=day(31))])

    with pytest.raises(InvalidEventError, match="window"):
        apply_customer(state, redemption("r1", 1, AT))
    assert len(state.recent.keys) == 1  # r1 is forgotten, only the earn is remembered


# ---------------------------------------------------------------------------- snapshots


def test_a_snapshot_follows_every_command_that_changed_something() -> None:
    state, outputs = feed(
        [
            earned(100, expiry="lot:30", pending_days=3, warning_days=7),
            earned(50, order_id=2, at=day(1), expiry="lot:30", warning_days=7),
            redemption("r", 20, day(2)),
            refunded(10, at=day(2)),
            tick(day(4)),
        ]
    )

    assert [
        (s.balance, s.pending, s.lifetime_earned, s.seq, s.version, s.next_expiry, s.due_at)
        for s in snapshots(outputs)
    ] == [
        (0, 100, 100, 1, 1, None, day(3)),
        (50, 100, 150, 2, 2, NextExpiry(50, midnight(6, 2)), day(3)),
        (30, 100, 150, 3, 3, NextExpiry(30, midnight(6, 2)), day(3)),
        (30, 90, 140, 4, 4, NextExpiry(30, midnight(6, 2)), day(3)),
        # released: 90 points earned on May 1st, dated before the lot of May 2nd
        (120, 0, 140, 5, 5, NextExpiry(90, midnight(6, 1)), midnight(5, 25)),
    ]
    assert [s.updated_at for s in snapshots(outputs)] == [AT, day(1), day(2), day(2), day(4)]
    assert all(s.merchant_id == MERCHANT and s.customer == CUSTOMER for s in snapshots(outputs))
    assert state.version == 5


def test_the_next_expiry_under_inactivity_is_the_whole_balance() -> None:
    _, outputs = feed([earned(100, expiry="inactivity:30", warning_days=7)])

    (snapshot,) = snapshots(outputs)
    assert snapshot.next_expiry == NextExpiry(100, day(30))
    assert snapshot.due_at == day(23)  # the warning comes first


@pytest.mark.parametrize(
    "command",
    [redemption("r", 1_000), redemption("x", 0), adjustment("a", -1_000), adjustment("z", 0)],
    ids=["redeem-insufficient", "redeem-invalid", "deduct-insufficient", "adjust-invalid"],
)
def test_a_failed_redemption_or_adjustment_emits_no_snapshot(command: CustomerInput) -> None:
    state, _ = feed([earned(100)])

    state, outputs = feed([command], state)

    assert len(outputs) == 1
    assert isinstance(outputs[0], RedemptionOutcome | AdjustmentOutcome)
    assert outputs[0].status == Status.FAILED
    assert snapshots(outputs) == []
    assert state.version == 1


# ---------------------------------------------------------------------------- deep copies


def test_customer_state_deep_copy_is_equal_and_shares_no_container() -> None:
    state, _ = feed(
        [
            earned(100, order_id=1, expiry="lot:30"),
            earned(50, order_id=2, pending_days=14),
            redemption("r", 10),
        ]
    )
    recorded = pickle.dumps(state)

    # The state decoded from its row, as the flow applies each command to.
    copied = customer_from_row(customer_row(state))
    assert copied == state
    # The copy goes on on its own: its pending points, lots and remembered ids change...
    copied, _ = feed([cancelled(50, order_id=2), redemption("r2", 20, day(1))], copied)
    copied.lots.dated[0].warned = True
    copied.lots.dated.append(Lot(midnight(7, 1), 5))
    copied.recent.keys[0] = 0

    # ...and the original is as it was.
    assert pickle.dumps(state) == recorded
    assert state.held == {"order:2": Held(50, day(14), AT, Expiry())}
    assert state.lots.dated == [Lot(midnight(6, 1), 90)]
    assert len(state.recent.keys) == 3
    assert customer_from_row(customer_row(state)) == state
    _, outputs = feed([redemption("r2", 90, day(1))], state)
    assert outcomes(outputs)[0].status == RedemptionStatus.COMPLETED


def test_the_row_of_an_empty_state_is_an_empty_state() -> None:
    assert customer_from_row(customer_row(CustomerState())) == CustomerState()
    assert CustomerState().lots == Lots()


# ---------------------------------------------------------------------------- with the order stage


def _run_orders(arrival: Sequence[OrderUpdate]) -> list[OrderOutput]:
    state = None
    outputs: list[OrderOutput] = []
    for item in arrival:
        state, out = apply_order(state, item)
        outputs.extend(out)
    return outputs


@pytest.mark.parametrize("seed", range(100))
def test_the_order_stages_changes_redelivered_give_the_earned_minus_reversed_balance(
    seed: int,
) -> None:
    rng = random.Random(seed)
    events, _facts = _scenario(rng)
    outputs = _run_orders(_arrival(rng, events))
    changes = [o for o in outputs if isinstance(o, PointsChange)]
    earned_points = sum(c.points for c in changes if c.kind == Kind.EARN)
    reversed_points = sum(c.points for c in changes if c.kind == Kind.REVERSE)

    state: CustomerState | None = None
    for change in [*changes, *changes]:
        state, _ = apply_customer(state, change)

    assert (state.balance if state else 0) == earned_points - reversed_points


def test_an_order_earned_under_pending_terms_and_refunded_before_release() -> None:
    policy = Policy(pending_days=14, expiry=Expiry.parse("lot:30"))
    arrival = [
        update("orders/paid", order_body(subtotal="100.00"), policy=policy),
        update("refunds/create", refund_body(3, "40.00"), at=day(2), policy=policy),
        update("orders/paid", order_body(subtotal="100.00"), at=day(3), policy=policy),
    ]
    changes = [o for o in _run_orders(arrival) if isinstance(o, PointsChange)]

    state, outputs = feed([*changes, tick(day(20))])

    assert moves(outputs) == [
        (Kind.EARN, 0, 100, AT),
        (Kind.REVERSE, 0, -40, day(2)),
        (Kind.RELEASE, 60, -60, day(14)),
    ]
    assert lots(state) == [(midnight(6, 1), 60)]
