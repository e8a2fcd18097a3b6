"""The tiers flow's per-customer state machine (loyalty/tier_customers.py): moves up and down
with their revisions, entry bonuses (skipped tiers, once per period), each metric and period,
pending orders, decisions caught up at their own due time, configuration changes, replay.

Every moment is an explicit UTC datetime: nothing here reads a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty import ids
from loyalty.customers import TierChange
from loyalty.ledger import Kind, PointsChange, Source
from loyalty.tier_config import Metric, Period, Tier, TierConfig
from loyalty.tier_customers import (
    CountChange,
    OrderCount,
    TierCustomer,
    TierInput,
    TierMove,
    TierOutput,
    TierSnapshot,
    TierTick,
    apply_tiers,
    tier_id,
)
from loyalty.tiers import qualified

SHOP = "tiers-demo.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
CHANGE_IDS = itertools.count()
CUSTOMER = 7

BRONZE = Tier("Bronze", Decimal(100), Decimal(1), 10)
SILVER = Tier("Silver", Decimal(500), Decimal("1.25"), 50)
GOLD = Tier("Gold", Decimal(1500), Decimal("1.5"), 200)
TIERS = (BRONZE, SILVER, GOLD)


def at(
    year: int, month: int = 1, day: int = 1, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def config(
    period: Period = Period.LIFETIME,
    tiers: tuple[Tier, ...] = TIERS,
    metric: Metric = Metric.POINTS_EARNED,
) -> TierConfig:
    return TierConfig(metric, period, tiers)


def order(
    order_id: int,
    when: datetime,
    points: int,
    amount: str | None = None,
    counts_from: datetime | None = None,
) -> OrderCount:
    """An order earn (points > 0) or reversal (points < 0); the amount follows the points
    unless given."""
    return OrderCount(
        shop=SHOP,
        customer=CUSTOMER,
        order_id=order_id,
        at=when,
        counts_from=counts_from or when,
        points=points,
        amount=Decimal(points) if amount is None else Decimal(amount),
        locale="fr",
        change_key=f"change-{next(CHANGE_IDS)}",  # every change its own (duplicates: replace)
    )


def tick(when: datetime) -> TierTick:
    return TierTick(MERCHANT, CUSTOMER, when)


def run(
    inputs: Iterable[TierInput],
    tier_config: TierConfig | None,
    state: TierCustomer | None = None,
) -> tuple[TierCustomer | None, list[TierOutput]]:
    """Every input under the same configuration: the final state and all outputs."""
    outputs: list[TierOutput] = []
    for item in inputs:
        state, out = apply_tiers(state, item, tier_config)
        outputs += out
    return state, outputs


def moves(outputs: Sequence[TierOutput]) -> list[TierMove]:
    return [o for o in outputs if isinstance(o, TierMove)]


def bonuses(outputs: Sequence[TierOutput]) -> list[PointsChange]:
    return [o for o in outputs if isinstance(o, PointsChange)]


def snapshots(outputs: Sequence[TierOutput]) -> list[TierSnapshot]:
    return [o for o in outputs if isinstance(o, TierSnapshot)]


def summary(outputs: Sequence[TierOutput]) -> list[tuple[int, str | None, str | None, datetime]]:
    """Each move as (revision, tier, previous, at)."""
    return [
        (m.revision, None if m.tier is None else m.tier.name, m.previous, m.at)
        for m in moves(outputs)
    ]


def source_id(tier: Tier, period_key: str) -> str:
    return f"{CUSTOMER}:{tier_id(MERCHANT, tier.name)}:{period_key}"


def paid(outputs: Sequence[TierOutput]) -> list[tuple[str, int, datetime]]:
    """Each bonus as (source id, points, at)."""
    return [(b.source_id, b.points, b.at) for b in bonuses(outputs)]


def tier_of(state: TierCustomer | None) -> str | None:
    assert state is not None
    return state.tier


# --------------------------------------------------------------------------- moving up


def test_crossing_a_threshold_moves_up_with_revision_1_and_pays_the_entry_bonus() -> None:
    when = at(2026, 3, 1, 10)

    state, outputs = run([order(1, when, 120)], config())

    assert moves(outputs) == [TierMove(MERCHANT, CUSTOMER, 1, BRONZE, None, when, up=True)]
    assert bonuses(outputs) == [
        PointsChange(
            shop=SHOP,
            customer=CUSTOMER,
            source=Source.TIER,
            source_id=source_id(BRONZE, "lifetime"),
            kind=Kind.BONUS,
            points=10,
            text_key="points.bonus.tier",
            locale="fr",
            at=when,
        )
    ]
    assert tier_of(state) == "Bronze"


def test_an_order_within_the_same_tier_moves_nothing_and_pays_nothing() -> None:
    state, _ = run([order(1, at(2026, 3, 1), 120)], config())

    state, outputs = apply_tiers(state, order(2, at(2026, 3, 2), 300), config())

    assert moves(outputs) == []
    assert bonuses(outputs) == []
    assert [s.tier for s in snapshots(outputs)] == ["Bronze"]  # the metric changed


def test_an_order_below_every_threshold_sends_only_a_snapshot_and_its_arrival() -> None:
    when = at(2026, 3, 1)

    state, outputs = run([order(1, when, 99)], config())

    assert len(outputs) == 2
    assert outputs[0] == CountChange(MERCHANT, None, None, True, when)
    [snapshot] = snapshots(outputs)
    assert (snapshot.tier, snapshot.revision, snapshot.points.total()) == (None, 0, Decimal(99))
    assert snapshot.updated_at == when
    assert tier_of(state) is None


def test_the_snapshot_shows_tier_revision_both_metrics_and_due() -> None:
    when = at(2026, 3, 1)

    _, outputs = run([order(1, when, 600, amount="42.50")], config(Period.CALENDAR_YEAR))

    [snapshot] = snapshots(outputs)
    assert snapshot.merchant_id == MERCHANT
    assert snapshot.customer == CUSTOMER
    assert (snapshot.tier, snapshot.revision) == ("Silver", 1)
    assert snapshot.points.total() == 600
    assert snapshot.spent.total() == Decimal("42.50")
    assert snapshot.updated_at == when
    assert snapshot.due_at == at(2028)


def test_a_move_gives_a_tier_change_with_the_tiers_multiplier() -> None:
    when = at(2026, 3, 1)

    _, outputs = run([order(1, when, 600)], config())

    [move] = moves(outputs)
    assert move.change() == TierChange(MERCHANT, CUSTOMER, 1, "Silver", Decimal("1.25"), when)


def test_a_move_to_no_tier_gives_a_tier_change_with_multiplier_1() -> None:
    refunded = at(2026, 4, 1)

    _, outputs = run([order(1, at(2026, 3, 1), 600), order(1, refunded, -600)], config())

    last = moves(outputs)[-1]
    assert (last.tier, last.previous) == (None, "Silver")
    assert last.change() == TierChange(MERCHANT, CUSTOMER, 2, None, Decimal(1), refunded)


def test_a_move_says_whether_it_goes_up() -> None:
    state, outputs = run(
        [
            order(1, at(2026, 3, 1), 120),  # into the first tier
            order(2, at(2026, 3, 2), 1400),  # Bronze to Gold
            order(2, at(2026, 3, 3), -1000),  # Gold to Silver
            order(1, at(2026, 3, 4), -120),  # Silver to Bronze
            order(2, at(2026, 3, 5), -400),  # Bronze to no tier
        ],
        config(),
    )
    state, ended = run([order(3, at(2026, 4, 1), 600), tick(at(2026, 5, 1))], None, state)

    assert [(m.previous, m.up) for m in moves(outputs)] == [
        (None, True),
        ("Bronze", True),
        ("Gold", False),
        ("Silver", False),
        ("Bronze", False),
    ]
    assert moves(ended) == []


def test_a_move_down_when_the_program_ends_is_not_up() -> None:
    state, _ = run([order(1, at(2026, 3, 1), 600)], config())
    _, outputs = run([tick(at(2026, 4, 1))], None, state)

    assert [(m.tier, m.previous, m.up) for m in moves(outputs)] == [(None, "Silver", False)]


def test_one_order_crossing_every_threshold_pays_each_skipped_tiers_bonus_in_order() -> None:
    when = at(2026, 3, 1)

    _, outputs = run([order(1, when, 1600)], config())

    assert summary(outputs) == [(1, "Gold", None, when)]
    assert paid(outputs) == [
        (source_id(BRONZE, "lifetime"), 10, when),
        (source_id(SILVER, "lifetime"), 50, when),
        (source_id(GOLD, "lifetime"), 200, when),
    ]


def test_skipping_from_a_held_tier_pays_only_the_tiers_above_it() -> None:
    second = at(2026, 3, 2)

    _, outputs = run([order(1, at(2026, 3, 1), 120), order(2, second, 1400)], config())

    assert summary(outputs)[-1] == (2, "Gold", "Bronze", second)
    assert paid(outputs)[1:] == [
        (source_id(SILVER, "lifetime"), 50, second),
        (source_id(GOLD, "lifetime"), 200, second),
    ]


def test_tiers_without_an_entry_bonus_pay_nothing() -> None:
    free_bronze = Tier("Bronze", Decimal(100), Decimal(1), 0)
    tiers = config(tiers=(free_bronze, SILVER))

    _, to_bronze = run([order(1, at(2026, 3, 1), 120)], tiers)
    _, to_silver = run([order(1, at(2026, 3, 1), 600)], tiers)

    assert summary(to_bronze) == [(1, "Bronze", None, at(2026, 3, 1))]
    assert bonuses(to_bronze) == []
    assert [(b.source_id, b.points) for b in bonuses(to_silver)] == [
        (source_id(SILVER, "lifetime"), 50)
    ]


def test_amount_spent_counts_the_amounts_not_the_points() -> None:
    by_amount = config(
        tiers=(
            Tier("Bronze", Decimal("100.00"), Decimal(1), 10),
            Tier("Silver", Decimal("500.00"), Decimal("1.25"), 50),
        ),
        metric=Metric.AMOUNT_SPENT,
    )

    state, many_points = run([order(1, at(2026, 3, 1), 900, amount="99.99")], by_amount)
    state, one_cent = run([order(2, at(2026, 3, 2), 1, amount="0.01")], by_amount, state)

    assert moves(many_points) == []
    assert summary(one_cent) == [(1, "Bronze", None, at(2026, 3, 2))]


def test_points_earned_ignores_the_amounts() -> None:
    _, outputs = run([order(1, at(2026, 3, 1), 99, amount="9999.00")], config())

    assert moves(outputs) == []


# --------------------------------------------------------------------------- refunds


def test_a_refund_demotes_and_takes_no_bonus_back() -> None:
    refunded = at(2026, 4, 1)

    state, earned = run([order(1, at(2026, 3, 1), 600)], config())
    state, outputs = run([order(1, refunded, -200)], config(), state)

    assert len(bonuses(earned)) == 2
    assert summary(outputs) == [(2, "Bronze", "Silver", refunded)]
    assert bonuses(outputs) == []
    assert snapshots(outputs)[0].points.total() == 400


def test_a_refund_lowers_only_its_own_order_and_never_below_zero() -> None:
    _, outputs = run(
        [order(1, at(2026, 3, 1), 300), order(2, at(2026, 3, 2), 300), order(2, at(2026, 4), -999)],
        config(),
    )

    assert summary(outputs)[-1] == (3, "Bronze", "Silver", at(2026, 4))
    assert snapshots(outputs)[-1].points.total() == 300


def test_moving_up_again_in_the_same_calendar_year_pays_no_bonus_again() -> None:
    yearly = config(Period.CALENDAR_YEAR)
    back_up = at(2026, 5, 1)

    _, outputs = run(
        [order(1, at(2026, 2, 1), 600), order(1, at(2026, 3, 1), -200), order(2, back_up, 300)],
        yearly,
    )

    assert summary(outputs)[-1] == (3, "Silver", "Bronze", back_up)
    assert [b.source_id for b in bonuses(outputs)] == [
        source_id(BRONZE, "2026"),
        source_id(SILVER, "2026"),
    ]


def test_moving_up_again_under_lifetime_never_pays_again() -> None:
    back_up = at(2031, 5, 1)

    _, outputs = run(
        [order(1, at(2026, 2, 1), 600), order(1, at(2026, 3, 1), -600), order(2, back_up, 600)],
        config(),
    )

    assert summary(outputs) == [
        (1, "Silver", None, at(2026, 2, 1)),
        (2, None, "Silver", at(2026, 3, 1)),
        (3, "Silver", None, back_up),
    ]
    assert len(bonuses(outputs)) == 2


def test_the_next_calendar_year_pays_the_bonus_again_under_its_own_id() -> None:
    yearly = config(Period.CALENDAR_YEAR)
    next_year = at(2027, 2, 1)

    _, outputs = run(
        [order(1, at(2026, 2, 1), 600), order(1, at(2026, 3, 1), -600), order(2, next_year, 600)],
        yearly,
    )

    assert summary(outputs)[-1] == (3, "Silver", None, next_year)
    assert paid(outputs) == [
        (source_id(BRONZE, "2026"), 10, at(2026, 2, 1)),
        (source_id(SILVER, "2026"), 50, at(2026, 2, 1)),
        (source_id(BRONZE, "2027"), 10, next_year),
        (source_id(SILVER, "2027"), 50, next_year),
    ]


def test_a_refund_of_a_settled_order_still_demotes_under_lifetime() -> None:
    # By 2031 the 2020 order has left the per-order state (its points settled).
    refunded = at(2031, 6, 1)

    state, _ = run([order(1, at(2020, 3, 1), 600), order(2, at(2031, 1, 1), 10)], config())
    assert state is not None
    assert 1 not in state.points.orders
    state, outputs = run([order(1, refunded, -200)], config(), state)

    assert summary(outputs) == [(2, "Bronze", "Silver", refunded)]


# --------------------------------------------------------------------------- periods by time


def test_calendar_year_keeps_the_tier_through_the_next_year() -> None:
    yearly = config(Period.CALENDAR_YEAR)

    state, earned = run([order(1, at(2026, 6, 15), 600)], yearly)
    state, outputs = run([tick(at(2027, 1, 1)), tick(at(2027, 12, 31, 23, 59, 59))], yearly, state)

    assert snapshots(earned)[-1].due_at == at(2028)
    assert outputs == []
    assert tier_of(state) == "Silver"


def test_calendar_year_a_late_tick_demotes_at_new_year() -> None:
    yearly = config(Period.CALENDAR_YEAR)
    late = at(2028, 3, 10, 8)

    state, _ = run([order(1, at(2026, 6, 15), 600)], yearly)
    state, outputs = run([tick(late)], yearly, state)

    assert summary(outputs) == [(2, None, "Silver", at(2028))]
    assert moves(outputs)[0].change().at == at(2028)
    assert [(s.tier, s.updated_at) for s in snapshots(outputs)] == [(None, late)]


def test_calendar_year_a_tick_exactly_at_new_year_demotes_then() -> None:
    yearly = config(Period.CALENDAR_YEAR)

    state, _ = run([order(1, at(2026, 6, 15), 600)], yearly)
    state, outputs = run([tick(at(2028))], yearly, state)

    assert summary(outputs) == [(2, None, "Silver", at(2028))]
    assert snapshots(outputs)[-1].due_at is None


def test_calendar_year_one_late_tick_dates_each_year_end_where_it_belongs() -> None:
    yearly = config(Period.CALENDAR_YEAR)

    # Gold on 2026's points; Silver's worth in 2027: Gold ends with 2027, Silver with 2028.
    state, earned = run([order(1, at(2026, 2, 1), 1500), order(2, at(2027, 5, 1), 600)], yearly)
    state, outputs = run([tick(at(2029, 6, 1))], yearly, state)

    assert snapshots(earned)[-1].due_at == at(2028)
    assert summary(outputs) == [(2, "Silver", "Gold", at(2028)), (3, None, "Silver", at(2029))]
    assert bonuses(outputs) == []


def test_rolling_12_months_an_order_ages_out_exactly_12_months_after_it_counted() -> None:
    rolling = config(Period.ROLLING_12_MONTHS)
    placed = at(2026, 3, 15, 10)

    state, earned = run([order(1, placed, 600)], rolling)
    state, before = run([tick(at(2027, 3, 15, 9, 59, 59))], rolling, state)
    state, outputs = run([tick(at(2027, 4, 2))], rolling, state)

    assert snapshots(earned)[-1].due_at == at(2027, 3, 15, 10)
    assert moves(before) == []
    assert summary(outputs) == [(2, None, "Silver", at(2027, 3, 15, 10))]


def test_rolling_12_months_a_tick_at_the_ageing_moment_demotes() -> None:
    rolling = config(Period.ROLLING_12_MONTHS)

    state, _ = run([order(1, at(2026, 3, 15, 10), 600)], rolling)
    state, outputs = run([tick(at(2027, 3, 15, 10))], rolling, state)

    assert summary(outputs) == [(2, None, "Silver", at(2027, 3, 15, 10))]


def test_rolling_12_months_orders_age_out_one_by_one_each_at_its_own_time() -> None:
    rolling = config(Period.ROLLING_12_MONTHS)

    state, earned = run([order(1, at(2026, 1, 10), 400), order(2, at(2026, 6, 1), 200)], rolling)
    state, outputs = run([tick(at(2027, 7, 1))], rolling, state)

    assert summary(earned) == [
        (1, "Bronze", None, at(2026, 1, 10)),
        (2, "Silver", "Bronze", at(2026, 6, 1)),
    ]
    assert summary(outputs) == [
        (3, "Bronze", "Silver", at(2027, 1, 10)),
        (4, None, "Bronze", at(2027, 6, 1)),
    ]


def test_lifetime_never_demotes_by_time() -> None:
    state, earned = run([order(1, at(2026, 3, 1), 600)], config())
    state, outputs = run([tick(at(2026, 12, 31)), tick(at(2027, 12, 31))], config(), state)

    assert snapshots(earned)[-1].due_at is None
    assert outputs == []
    assert tier_of(state) == "Silver"


def test_lifetime_a_tick_decades_later_moves_nothing_and_pays_nothing() -> None:
    state, _ = run([order(1, at(2026, 3, 1), 600)], config())
    state, outputs = run([tick(at(2046, 3, 1))], config(), state)

    assert moves(outputs) == []
    assert bonuses(outputs) == []
    assert tier_of(state) == "Silver"


# --------------------------------------------------------------------------- pending points


def test_pending_points_count_only_from_their_release() -> None:
    release = at(2026, 3, 31, 12)

    state, placed = run([order(1, at(2026, 3, 1), 600, counts_from=release)], config())
    state, early = run([tick(release - timedelta(microseconds=1))], config(), state)
    state, released = run([tick(release)], config(), state)

    assert moves(placed) == []
    assert snapshots(placed)[-1].due_at == release
    assert moves(early) == []
    assert summary(released) == [(1, "Silver", None, release)]
    assert [b.at for b in bonuses(released)] == [release, release]
    assert snapshots(released)[-1].due_at is None


def test_pending_points_a_late_tick_moves_at_the_release() -> None:
    release = at(2026, 3, 31, 12)

    state, _ = run([order(1, at(2026, 3, 1), 600, counts_from=release)], config())
    state, outputs = run([tick(at(2026, 5, 20))], config(), state)

    assert summary(outputs) == [(1, "Silver", None, release)]
    assert [b.at for b in bonuses(outputs)] == [release, release]


def test_pending_points_an_order_after_the_release_catches_it_up_first() -> None:
    release = at(2026, 3, 31)
    later = at(2026, 4, 10)

    _, outputs = run(
        [order(1, at(2026, 3, 1), 600, counts_from=release), order(2, later, 1000)], config()
    )

    assert summary(outputs) == [(1, "Silver", None, release), (2, "Gold", "Silver", later)]


# --------------------------------------------------------------------------- configuration


def test_without_a_tier_program_nobody_moves() -> None:
    state, outputs = run([order(1, at(2026, 3, 1), 5000), tick(at(2027, 3, 1))], None)

    assert moves(outputs) == []
    assert bonuses(outputs) == []
    assert [(s.tier, s.due_at) for s in snapshots(outputs)] == [(None, None)]
    assert tier_of(state) is None


def test_a_tier_held_when_the_program_ends_moves_to_no_tier_at_the_next_input() -> None:
    ended = at(2026, 4, 1)

    state, _ = run([order(1, at(2026, 3, 1), 600)], config())
    state, outputs = run([tick(ended)], None, state)

    assert summary(outputs) == [(2, None, "Silver", ended)]
    assert moves(outputs)[0].change().multiplier == 1
    assert bonuses(outputs) == []


def test_a_lowered_threshold_promotes_at_the_next_input_not_retroactively() -> None:
    lowered = config(tiers=(BRONZE, Tier("Silver", Decimal(300), Decimal("1.25"), 50), GOLD))
    next_tick = at(2026, 5, 1)

    state, before = run([order(1, at(2026, 3, 1), 300)], config())
    state, outputs = run([tick(next_tick)], lowered, state)

    assert summary(before) == [(1, "Bronze", None, at(2026, 3, 1))]
    assert summary(outputs) == [(2, "Silver", "Bronze", next_tick)]
    assert paid(outputs) == [(source_id(SILVER, "lifetime"), 50, next_tick)]


def test_a_raised_threshold_demotes_at_the_next_input() -> None:
    raised = config(tiers=(BRONZE, Tier("Silver", Decimal(700), Decimal("1.25"), 50), GOLD))
    next_tick = at(2026, 5, 1)

    state, _ = run([order(1, at(2026, 3, 1), 600)], config())
    state, outputs = run([tick(next_tick)], raised, state)

    assert summary(outputs) == [(2, "Bronze", "Silver", next_tick)]


def test_a_tick_for_an_unknown_customer_keeps_nothing() -> None:
    for tier_config in (None, config(), config(Period.CALENDAR_YEAR)):
        assert apply_tiers(None, tick(at(2026, 3, 1)), tier_config) == (None, [])


# --------------------------------------------------------------------------- replay


REPLAYED: list[tuple[TierInput, TierConfig | None]] = [
    (order(1, at(2026, 1, 5), 700, counts_from=at(2026, 2, 4)), config(Period.CALENDAR_YEAR)),
    (order(2, at(2026, 1, 20), 300), config(Period.CALENDAR_YEAR)),
    (tick(at(2026, 3, 1)), config(Period.CALENDAR_YEAR)),
    (order(2, at(2026, 4, 1), -250), config(Period.CALENDAR_YEAR)),
    (order(3, at(2026, 8, 1), 1400), config(Period.CALENDAR_YEAR)),
    (tick(at(2027, 6, 1)), None),
    (order(4, at(2027, 7, 1), 200), config(Period.CALENDAR_YEAR)),
    (tick(at(2029, 2, 1)), config(Period.CALENDAR_YEAR)),
]


def replay(inputs: Sequence[tuple[TierInput, TierConfig | None]]) -> list[TierOutput]:
    state: TierCustomer | None = None
    outputs: list[TierOutput] = []
    for item, tier_config in inputs:
        state, out = apply_tiers(state, item, tier_config)
        outputs += out
    return outputs


def test_replaying_the_same_inputs_decides_the_same() -> None:
    first = replay(REPLAYED)
    second = replay(REPLAYED)

    assert first == second
    assert len(moves(first)) >= 4  # the sequence is not trivial
    assert [m.revision for m in moves(first)] == list(range(1, len(moves(first)) + 1))


# --------------------------------------------------------------------------- properties

# A step: a new order's earn, or else a refund of an earlier order (which one, how much); the
# days since the previous step; the days an earn's points are pending.
STEPS = st.lists(
    st.tuples(
        st.booleans(),
        st.integers(0, 9),
        st.integers(1, 900),
        st.integers(0, 400),
        st.sampled_from([0, 0, 15]),
    ),
    max_size=20,
)


@dataclass
class History:
    """Order changes as the points log would send them: one earn per order, then refunds."""

    inputs: list[OrderCount] = field(default_factory=list)
    net: dict[int, int] = field(default_factory=dict)  # points left per order, never below 0
    counts_from: dict[int, datetime] = field(default_factory=dict)

    def counted(self, as_of: datetime) -> Decimal:
        return Decimal(sum(n for o, n in self.net.items() if self.counts_from[o] <= as_of))


def history(
    steps: Sequence[tuple[bool, int, int, int, int]], start: datetime, *, capped: bool = True
) -> Iterator[tuple[History, OrderCount]]:
    """Each order change with the history up to it. `capped`: a refund takes at most what its
    order has left (as the ledger's reversals do)."""
    h = History()
    when = start
    for new, pick, points, days, pending in steps:
        when += timedelta(days=days)
        if new or not h.net:
            order_id = len(h.net) + 1
            h.counts_from[order_id] = when + timedelta(days=pending)
            h.net[order_id] = points
            change = order(order_id, when, points, counts_from=h.counts_from[order_id])
        else:
            order_id = sorted(h.net)[pick % len(h.net)]
            taken = min(points, h.net[order_id]) if capped else points
            if taken == 0:
                continue
            h.net[order_id] = max(0, h.net[order_id] - taken)
            change = order(order_id, when, -taken)
        h.inputs.append(change)
        yield h, change


def name_of(index: int | None) -> str | None:
    return None if index is None else TIERS[index].name


def check_revisions(outputs: Sequence[TierOutput]) -> None:
    """Revisions count the moves from 1; each move's previous is the tier moved from."""
    revisions = [m.revision for m in moves(outputs)]
    assert revisions == list(range(1, len(revisions) + 1))
    names = [None, *(None if m.tier is None else m.tier.name for m in moves(outputs))]
    assert [m.previous for m in moves(outputs)] == names[:-1]


def check_lifetime_tiers(steps: Sequence[tuple[bool, int, int, int, int]], *, capped: bool) -> None:
    """After every order change the tier is the one the counted orders' net points qualify
    for; each tier ever reached has paid its entry bonus exactly once, in ascending order."""
    state: TierCustomer | None = None
    outputs: list[TierOutput] = []
    reached: list[int | None] = []
    before, last = History(), at(2020)
    for h, change in history(steps, at(2020, 1, 1, 9), capped=capped):
        # Pending points released since the last change counted, each at its release.
        releases = [t for t in before.counts_from.values() if last < t < change.at]
        reached += [qualified(before.counted(t), TIERS) for t in releases]
        last = change.at
        state, out = apply_tiers(state, change, config())
        outputs += out
        expected = qualified(h.counted(change.at), TIERS)
        assert tier_of(state) == name_of(expected)
        reached.append(expected)
        before = History(net=dict(h.net), counts_from=dict(h.counts_from))
    # A tick after every release: all the net points count.
    end = max(before.counts_from.values(), default=at(2020)) + timedelta(days=1)
    state, out = apply_tiers(state, tick(end), config())
    outputs += out
    assert state is None or state.tier == name_of(qualified(before.counted(end), TIERS))
    reached.append(qualified(before.counted(end), TIERS))
    highest = max((i for i in reached if i is not None), default=None)

    entered = [] if highest is None else TIERS[: highest + 1]
    assert [(b.source_id, b.points) for b in bonuses(outputs)] == [
        (source_id(t, "lifetime"), t.entry_bonus) for t in entered
    ]
    assert sum(b.points for b in bonuses(outputs)) <= sum(t.entry_bonus for t in TIERS)
    check_revisions(outputs)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS)
def test_lifetime_tier_follows_the_net_points_and_pays_each_bonus_once(
    steps: list[tuple[bool, int, int, int, int]],
) -> None:
    """Over years (orders settle out of the per-order state), pending points included."""
    check_lifetime_tiers(steps, capped=True)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS.map(lambda ss: [(n, p, pts, days % 3, pend) for n, p, pts, days, pend in ss]))
def test_lifetime_a_refund_takes_no_more_than_its_order_gave(
    steps: list[tuple[bool, int, int, int, int]],
) -> None:
    """Refunds of any size, within weeks (no order settles): each order floors at 0."""
    check_lifetime_tiers(steps, capped=False)


@settings(max_examples=200, deadline=None)
@given(steps=STEPS, period=st.sampled_from(list(Period)))
def test_one_late_tick_decides_what_a_tick_at_every_due_time_decides(
    steps: list[tuple[bool, int, int, int, int]], period: Period
) -> None:
    """Downtime changes nothing: ticking only at the end dates every move and bonus as
    ticking at each snapshot's due time does."""
    tier_config = config(period)
    inputs: list[TierInput] = [change for _, change in history(steps, at(2023, 3, 1, 9))]
    end = max((i.at for i in inputs), default=at(2023)) + timedelta(days=3 * 366)
    inputs.append(tick(end))

    late_state, late = run(inputs, tier_config)

    punctual: list[TierOutput] = []
    state: TierCustomer | None = None
    for item in inputs:
        while state is not None and state.due is not None and state.due < item.at:
            state, out = apply_tiers(state, tick(state.due), tier_config)
            punctual += out
        state, out = apply_tiers(state, item, tier_config)
        punctual += out

    assert moves(late) == moves(punctual)
    assert bonuses(late) == bonuses(punctual)
    assert late_state is None or tier_of(late_state) == tier_of(state)
    check_revisions(punctual)


# ------------------------------------------------------------------- 29 February, letter case


def test_rolling_12_months_an_order_of_29_february_ages_out_at_its_due_time() -> None:
    rolling = config(Period.ROLLING_12_MONTHS)

    state, earned = run([order(1, at(2024, 2, 29, 12), 600)], rolling)
    due = snapshots(earned)[-1].due_at
    assert due == at(2025, 2, 28, 12)
    state, outputs = run([tick(due)], rolling, state)

    assert summary(outputs) == [(2, None, "Silver", due)]


def test_a_tier_renamed_only_in_case_is_the_same_tier() -> None:
    renamed = config(
        tiers=(
            Tier("bronze", Decimal(100), Decimal(1), 10),
            Tier("silver", Decimal(500), Decimal("1.25"), 50),
        )
    )

    state, _ = run([order(1, at(2026, 3, 1), 600)], config())
    state, outputs = run([tick(at(2026, 4, 1))], renamed, state)

    assert moves(outputs) == []
    assert bonuses(outputs) == []


def test_a_change_re_sent_after_a_crash_is_counted_once() -> None:
    when = at(2026, 3, 1)
    earn = order(1, when, 400)
    state, first = run([earn], config())

    again, outputs = run([replace(earn, at=when + timedelta(minutes=1))], config(), state)

    assert outputs == []
    assert again is not None
    assert again.points.total() == Decimal(400)
    assert [m.tier for m in moves(first) if m.tier is not None] != []


def test_two_customers_entering_the_same_tier_get_bonuses_of_their_own() -> None:
    when = at(2026, 3, 1)
    _, mine = run([order(1, when, 600)], config())
    other = replace(order(2, when, 600), customer=CUSTOMER + 1)
    _, theirs = apply_tiers(None, other, config())

    ids_mine = {b.event_id for b in bonuses(mine)}
    ids_theirs = {b.event_id for b in bonuses(theirs)}
    assert len(ids_mine) == len(ids_theirs) == 2
    assert ids_mine.isdisjoint(ids_theirs)  # ledger entries are stored by their event id
