"""VIP tier rules (loyalty/tiers.py): each metric and period, skipped tiers, demotion, year
boundaries at explicit UTC moments, multiplier rounding and loop safety."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from loyalty.tier_config import Metric, Period, Tier, TierConfig
from loyalty.tiers import (
    CustomerMetric,
    entry_bonuses,
    held,
    may_pay,
    months_later,
    multiplied,
    progress,
    status,
)

BRONZE = Tier("Bronze", Decimal(100), Decimal(1), 10)
SILVER = Tier("Silver", Decimal(500), Decimal("1.25"), 50)
GOLD = Tier("Gold", Decimal(1500), Decimal("1.5"), 200)
TIERS = (BRONZE, SILVER, GOLD)


def at(year: int, month: int = 1, day: int = 1, hour: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, 0, second, tzinfo=UTC)


def config(period: Period) -> TierConfig:
    return TierConfig(Metric.POINTS_EARNED, period, TIERS)


def metric(*orders: tuple[int, datetime, int]) -> CustomerMetric:
    built = CustomerMetric()
    for order_id, when, amount in orders:
        built = built.add(order_id, when, Decimal(amount))
    return built


def tier_name(index: int | None) -> str | None:
    return None if index is None else TIERS[index].name


# --------------------------------------------------------------------------- the metric


def test_a_reversal_lowers_its_own_order_and_never_below_zero() -> None:
    m = metric((1, at(2026, 3), 400), (2, at(2026, 4), 300))

    m = m.add(1, at(2026, 5), Decimal(-150)).add(2, at(2026, 5), Decimal(-999))

    assert m.orders[1].amount == 250
    assert m.orders[1].at == at(2026, 3)
    assert m.orders[2].amount == 0
    assert m.total() == 250


def test_a_reversal_of_a_settled_order_comes_off_the_lifetime_total() -> None:
    m = metric((1, at(2020, 3), 400), (2, at(2026, 3), 100)).trimmed(
        Period.CALENDAR_YEAR, at(2026, 6)
    )
    assert set(m.orders) == {2}
    assert m.settled == 400

    assert m.add(1, at(2026, 6), Decimal(-100)).total() == 400


def test_trimming_keeps_what_a_period_can_still_count() -> None:
    m = metric((1, at(2024, 12, 31), 10), (2, at(2025, 1, 1), 20), (3, at(2026, 5), 30))

    assert set(m.trimmed(Period.CALENDAR_YEAR, at(2026, 6)).orders) == {2, 3}
    assert set(m.trimmed(Period.ROLLING_12_MONTHS, at(2026, 1, 1)).orders) == {2, 3}
    assert set(m.trimmed(Period.LIFETIME, at(2030)).orders) == {1, 2, 3}
    assert m.trimmed(Period.CALENDAR_YEAR, at(2026, 6)).total() == m.total()


# --------------------------------------------------------------------------- periods


def test_lifetime_counts_everything_and_time_never_demotes() -> None:
    m = metric((1, at(2020, 1, 5), 600))

    assert tier_name(held(m, config(Period.LIFETIME), at(2020, 2))) == "Silver"
    assert tier_name(held(m, config(Period.LIFETIME), at(2035))) == "Silver"


def test_a_refund_demotes_in_every_period() -> None:
    m = metric((1, at(2026, 2), 600)).add(1, at(2026, 3), Decimal(-200))

    for period in Period:
        assert tier_name(held(m, config(period), at(2026, 4))) == "Bronze", period


def test_calendar_year_keeps_a_tier_through_the_end_of_the_next_year() -> None:
    m = metric((1, at(2025, 12, 31, 23, 59), 1500))
    yearly = config(Period.CALENDAR_YEAR)

    assert tier_name(held(m, yearly, at(2025, 12, 31, 23, 59))) == "Gold"
    assert tier_name(held(m, yearly, at(2026, 12, 31, 23, 59))) == "Gold"
    assert held(m, yearly, at(2027, 1, 1)) is None


def test_calendar_year_holds_the_better_of_this_and_last_year() -> None:
    m = metric((1, at(2025, 6), 600), (2, at(2026, 2), 1600))
    yearly = config(Period.CALENDAR_YEAR)

    assert tier_name(held(m, yearly, at(2026, 3))) == "Gold"
    assert tier_name(held(m, yearly, at(2027, 3))) == "Gold"  # 2026's, kept through 2027
    assert held(m, yearly, at(2028, 1, 1)) is None


def test_a_refund_of_last_years_order_can_demote_this_year() -> None:
    m = metric((1, at(2025, 12, 20), 600))
    yearly = config(Period.CALENDAR_YEAR)
    assert tier_name(held(m, yearly, at(2026, 1, 10))) == "Silver"

    m = m.add(1, at(2026, 1, 10), Decimal(-550))

    assert held(m, yearly, at(2026, 1, 10)) is None


def test_rolling_12_months_ages_out_to_the_second() -> None:
    placed = at(2025, 3, 10, 12)
    m = metric((1, placed, 600))
    rolling = config(Period.ROLLING_12_MONTHS)

    assert tier_name(held(m, rolling, at(2026, 3, 10, 11, 59))) == "Silver"
    assert held(m, rolling, at(2026, 3, 10, 12)) is None
    assert progress(m, Period.ROLLING_12_MONTHS, placed) == 600


def test_an_order_after_the_moment_asked_about_does_not_count() -> None:
    m = metric((1, at(2026, 5), 600))

    # Pending points count from their release: an order dated later counts in no period yet.
    assert held(m, config(Period.ROLLING_12_MONTHS), at(2026, 4)) is None
    assert held(m, config(Period.CALENDAR_YEAR), at(2026, 4)) is None
    assert held(m, config(Period.LIFETIME), at(2026, 4)) is None
    assert held(m, config(Period.LIFETIME), at(2026, 5)) == 1


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (at(2024, 2, 29), 12, at(2025, 2, 28)),
        (at(2025, 1, 31), 1, at(2025, 2, 28)),
        (at(2025, 3, 31), -1, at(2025, 2, 28)),
        (at(2025, 12, 15), 1, at(2026, 1, 15)),
        (at(2026, 1, 15), -12, at(2025, 1, 15)),
    ],
)
def test_months_later(start: datetime, months: int, expected: datetime) -> None:
    assert months_later(start, months) == expected


# --------------------------------------------------------------------------- entry bonuses


def test_skipping_tiers_pays_every_skipped_tiers_bonus() -> None:
    paid = entry_bonuses(config(Period.LIFETIME), None, 2, {}, at(2026))

    assert [t.name for t in paid] == ["Bronze", "Silver", "Gold"]


def test_moving_up_one_tier_pays_only_that_one_and_moving_down_pays_nothing() -> None:
    lifetime = config(Period.LIFETIME)

    assert [t.name for t in entry_bonuses(lifetime, 0, 1, {}, at(2026))] == ["Silver"]
    assert entry_bonuses(lifetime, 2, 1, {}, at(2026)) == []
    assert entry_bonuses(lifetime, 1, 1, {}, at(2026)) == []
    assert entry_bonuses(lifetime, 1, None, {}, at(2026)) == []


def test_a_tier_with_no_bonus_pays_nothing() -> None:
    free = TierConfig(Metric.POINTS_EARNED, Period.LIFETIME, (Tier("Free", Decimal(1)),))

    assert entry_bonuses(free, None, 0, {}, at(2026)) == []


def test_each_bonus_is_paid_once_per_period() -> None:
    paid = {"silver": at(2026, 3, 1)}  # by the name in lower case, as the ids

    assert [t.name for t in entry_bonuses(config(Period.LIFETIME), 0, 1, paid, at(2030))] == []
    yearly = config(Period.CALENDAR_YEAR)
    assert entry_bonuses(yearly, 0, 1, paid, at(2026, 12, 31)) == []
    assert [t.name for t in entry_bonuses(yearly, 0, 1, paid, at(2027, 1, 1))] == ["Silver"]
    assert may_pay(Period.ROLLING_12_MONTHS, at(2026, 3, 1), at(2027, 2, 28)) is False
    assert may_pay(Period.ROLLING_12_MONTHS, at(2026, 3, 1), at(2027, 3, 1)) is True


# --------------------------------------------------------------------------- multipliers


@pytest.mark.parametrize(
    ("points", "tier", "expected"),
    [
        (100, None, 100),
        (99, SILVER, 123),  # 123.75 floors
        (101, GOLD, 151),  # 151.5 floors
        (3, Tier("Odd", Decimal(1), Decimal("1.33")), 3),  # 3.99 floors
        (7, Tier("Ten", Decimal(1), Decimal(10)), 70),
        (0, GOLD, 0),
    ],
)
def test_a_multiplied_earn_is_floored(points: int, tier: Tier | None, expected: int) -> None:
    assert multiplied(points, tier) == expected


def test_a_multiplier_never_feeds_the_metric() -> None:
    """The metric takes the order's base earn: the same orders give the same tier whatever
    multiplier they were paid with, so a tier cannot lift itself."""
    rich = TierConfig(
        Metric.POINTS_EARNED, Period.LIFETIME, (Tier("A", Decimal(100), Decimal(10)),)
    )
    base_earns = [(i, at(2026, 1, i), 30) for i in range(1, 4)]

    m = metric(*base_earns)

    assert m.total() == 90
    assert held(m, rich, at(2026, 2)) is None


# --------------------------------------------------------------------------- status


def test_status_of_a_calendar_year_customer() -> None:
    m = metric((1, at(2026, 2), 700))

    seen = status(m, config(Period.CALENDAR_YEAR), at(2026, 6))

    assert seen.tier == SILVER
    assert seen.next_tier == GOLD
    assert (seen.progress, seen.delta_to_next, seen.delta_to_retain) == (
        Decimal(700),
        Decimal(800),
        Decimal(0),
    )
    assert seen.period_end == at(2028)  # kept through the end of 2027


def test_status_when_held_by_last_year_only() -> None:
    m = metric((1, at(2025, 2), 700), (2, at(2026, 3), 100))

    seen = status(m, config(Period.CALENDAR_YEAR), at(2026, 6))

    assert seen.tier == SILVER
    assert (seen.progress, seen.delta_to_retain) == (Decimal(100), Decimal(400))
    assert seen.period_end == at(2027)


def test_status_of_a_rolling_customer_says_when_ageing_out_demotes() -> None:
    m = metric((1, at(2025, 8), 300), (2, at(2025, 11), 300), (3, at(2026, 2), 100))

    seen = status(m, config(Period.ROLLING_12_MONTHS), at(2026, 3))

    assert seen.tier == SILVER
    assert seen.progress == 700
    assert seen.period_end == at(2026, 8)  # order 1 leaves: 400 left, under Silver's 500


def test_status_at_the_top_and_with_no_tier() -> None:
    top = status(metric((1, at(2026, 1), 5000)), config(Period.LIFETIME), at(2026, 2))
    none = status(CustomerMetric(), config(Period.LIFETIME), at(2026, 2))

    assert top.tier == GOLD
    assert top.next_tier is None
    assert top.delta_to_next is None
    assert top.period_end is None
    assert none.tier is None
    assert none.next_tier == BRONZE
    assert none.delta_to_next == 100
