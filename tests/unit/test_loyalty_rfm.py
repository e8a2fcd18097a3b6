from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.rfm import (
    PROSPECT,
    Scale,
    Segment,
    Thresholds,
    Values,
    bucket_floor,
    day_date,
    day_number,
    midpoint_scale,
    monetary_bucket,
    quintile_scales,
    segment_counts,
    segment_for,
    threshold_scales,
)

# DOMAIN.md's map, cell by cell: (r scores, f scores) -> segment.
MAP = [
    ((5,), (4, 5), Segment.CHAMPIONS),
    ((3, 4), (4, 5), Segment.LOYAL),
    ((4, 5), (2, 3), Segment.POTENTIAL_LOYALISTS),
    ((5,), (1,), Segment.NEW_CUSTOMERS),
    ((4,), (1,), Segment.PROMISING),
    ((3,), (3,), Segment.NEED_ATTENTION),
    ((3,), (1, 2), Segment.ABOUT_TO_SLEEP),
    ((1, 2), (3, 4), Segment.AT_RISK),
    ((1, 2), (5,), Segment.CANT_LOSE),
    ((1, 2), (1, 2), Segment.HIBERNATING),
]


@pytest.mark.parametrize(("rs", "fs", "segment"), MAP)
def test_the_segment_map_is_domains(
    rs: tuple[int, ...], fs: tuple[int, ...], segment: Segment
) -> None:
    assert {segment_for(r, f) for r in rs for f in fs} == {segment}


def test_the_map_covers_every_cell_once() -> None:
    cells = [(r, f) for rs, fs, _ in MAP for r in rs for f in fs]
    assert sorted(cells) == [(r, f) for r in range(1, 6) for f in range(1, 6)]


@pytest.mark.parametrize(("r", "f"), [(0, 3), (6, 1), (3, 0), (3, 6)])
def test_a_score_outside_1_to_5_has_no_segment(r: int, f: int) -> None:
    with pytest.raises(ValueError, match=r"scores are 1\.\.5"):
        segment_for(r, f)


def midpoint_oracle(values: list[int], value: int) -> int:
    """The rule as the README states it, counted directly over the customers' values."""
    below = sum(1 for v in values if v < value)
    equal = sum(1 for v in values if v == value)
    return 1 + (5 * (2 * below + equal)) // (2 * len(values))


@given(st.lists(st.integers(-50, 50), min_size=1, max_size=300))
def test_the_scale_scores_every_customer_as_the_midpoint_rule_does(values: list[int]) -> None:
    scale = midpoint_scale(Counter(values))

    assert [scale.score(v) for v in values] == [midpoint_oracle(values, v) for v in values]


@given(st.lists(st.integers(-50, 50), min_size=1, max_size=300), st.integers(-60, 60))
def test_scores_never_fall_as_values_rise_and_new_values_score_as_neighbours(
    values: list[int], new: int
) -> None:
    scale = midpoint_scale(Counter(values))
    scores = [scale.score(v) for v in range(-60, 61)]

    assert scores == sorted(scores)
    lower = [v for v in values if v <= new]
    assert scale.score(new) == (scale.score(max(lower)) if lower else 1)


def test_one_customer_alone_and_customers_all_alike_score_3() -> None:
    assert midpoint_scale({7: 1}).score(7) == 3
    assert midpoint_scale({7: 1000}).score(7) == 3


def test_ties_never_split_even_when_most_customers_share_a_value() -> None:
    # 70 % with one order: one score for all of them, the midpoint of their band (0.35 -> 2).
    scale = midpoint_scale({1: 70, 2: 15, 3: 10, 4: 5})

    assert [scale.score(f) for f in (1, 2, 3, 4)] == [2, 4, 5, 5]
    assert scale.score(0) == 1


def test_no_customers_give_a_scale_no_value_climbs() -> None:
    assert midpoint_scale({}).boundaries == (None, None, None, None)
    assert midpoint_scale({}).score(10**9) == 1


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        midpoint_scale({1: 2, 3: -1})


SPENDS = st.decimals(min_value=Decimal(0), max_value=Decimal("1e12"), places=2)


@given(SPENDS, SPENDS)
def test_spend_buckets_keep_the_order_of_spends(a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert monetary_bucket(low) <= monetary_bucket(high)


@given(SPENDS)
def test_a_bucket_is_at_most_one_percent_wide(spend: Decimal) -> None:
    bucket = monetary_bucket(spend)
    floor = bucket_floor(bucket)

    assert floor <= spend
    assert monetary_bucket(floor) == bucket
    assert spend == floor == 0 or spend < floor * Decimal("1.01")


@pytest.mark.parametrize(
    ("spend", "floor"),
    [
        ("0", "0"),
        ("0.01", "0.01"),
        ("9.999", "9.99"),
        ("10", "10"),
        ("123.456", "123"),
        ("1000.5", "1000"),
    ],
)
def test_a_bucket_keeps_three_significant_digits(spend: str, floor: str) -> None:
    assert bucket_floor(monetary_bucket(Decimal(spend))) == Decimal(floor)


def test_negative_spend_has_no_bucket() -> None:
    with pytest.raises(ValueError, match="negative"):
        monetary_bucket(Decimal("-0.01"))


def test_quintile_spend_boundaries_are_bucket_floors() -> None:
    spends = [Decimal(s) for s in ("10.00", "10.05", "20", "30", "40", "50")]
    buckets = Counter([monetary_bucket(s) for s in spends])

    scales = quintile_scales({1: 6}, {1: 6}, buckets)

    # 10.00 and 10.05 share a bucket, so a score: the README's bound in action.
    assert scales.monetary.score(Decimal("10.00")) == scales.monetary.score(Decimal("10.05"))
    assert all(
        b is None or bucket_floor(monetary_bucket(b)) == b for b in scales.monetary.boundaries
    )


AS_OF = 20_000
THRESHOLDS = Thresholds(
    recency_days=(30, 60, 90, 180),
    frequency=(2, 3, 5, 8),
    monetary=(Decimal("50"), Decimal("100"), Decimal("250"), Decimal("500")),
)


@pytest.mark.parametrize(
    ("days_ago", "r"),
    [(0, 5), (30, 5), (31, 4), (60, 4), (61, 3), (90, 3), (91, 2), (180, 2), (181, 1)],
)
def test_recency_thresholds_are_days_ago_at_or_under_each_cut(days_ago: int, r: int) -> None:
    scales = threshold_scales(THRESHOLDS, AS_OF)
    scores = scales.scores(Values(AS_OF - days_ago, 1, Decimal(1)))

    assert scores is not None
    assert scores.r == r


@pytest.mark.parametrize(("orders", "f"), [(1, 1), (2, 2), (4, 3), (5, 4), (7, 4), (8, 5), (80, 5)])
def test_frequency_thresholds_score_from_each_cut_on(orders: int, f: int) -> None:
    assert threshold_scales(THRESHOLDS, AS_OF).frequency.score(orders) == f


@pytest.mark.parametrize(("spend", "m"), [("49.99", 1), ("50", 2), ("249.99", 3), ("500", 5)])
def test_monetary_thresholds_compare_exact_amounts(spend: str, m: int) -> None:
    assert threshold_scales(THRESHOLDS, AS_OF).monetary.score(Decimal(spend)) == m


def test_recency_thresholds_age_with_the_as_of_day() -> None:
    values = Values(AS_OF - 30, 1, Decimal(1))
    today = threshold_scales(THRESHOLDS, AS_OF).scores(values)
    tomorrow = threshold_scales(THRESHOLDS, AS_OF + 1).scores(values)

    assert today is not None
    assert tomorrow is not None
    assert (today.r, tomorrow.r) == (5, 4)


@pytest.mark.parametrize(
    ("recency", "frequency", "monetary", "message"),
    [
        ((30, 30, 90, 180), (1, 2, 3, 4), (1, 2, 3, 4), "recency-days needs four strictly"),
        ((1, 2, 3, 4), (4, 3, 2, 1), (1, 2, 3, 4), "frequency needs four strictly"),
        ((1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 4), "recency-days needs four"),
        ((1, 2, 3, 4), (1, 2, 3, 4), (-1, 2, 3, 4), "monetary cut points cannot be negative"),
    ],
)
def test_thresholds_must_be_four_ascending_cuts(
    recency: tuple[int, ...], frequency: tuple[int, ...], monetary: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Thresholds(recency, frequency, tuple(Decimal(m) for m in monetary))  # type: ignore[arg-type]


def test_a_prospect_has_no_scores() -> None:
    assert threshold_scales(THRESHOLDS, AS_OF).scores(PROSPECT) is None
    assert PROSPECT.recency_days(AS_OF) is None


def test_recency_days_count_whole_days_and_never_go_negative() -> None:
    assert Values(AS_OF - 3, 1, Decimal(1)).recency_days(AS_OF) == 3
    assert Values(AS_OF + 1, 1, Decimal(1)).recency_days(AS_OF) == 0


def test_days_are_utc_days() -> None:
    late_in_new_york = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))

    assert day_date(day_number(late_in_new_york)) == date(2026, 3, 2)
    assert day_number(datetime(1970, 1, 2, tzinfo=UTC)) == 1
    with pytest.raises(ValueError, match="naive"):
        day_number(datetime(2026, 3, 1))  # noqa: DTZ001 - the point of the test


def test_segment_counts_name_every_segment_zeros_included() -> None:
    counts = segment_counts([Segment.CHAMPIONS, Segment.CHAMPIONS, Segment.PROSPECTS])

    assert list(counts) == [s.value for s in Segment]
    assert (counts["champions"], counts["prospects"], counts["loyal"]) == (2, 1, 0)


def test_a_scale_counts_boundaries_at_or_below_the_value() -> None:
    scale = Scale((1, 1, 4, None))

    assert [scale.score(v) for v in (0, 1, 3, 4, 100)] == [1, 3, 3, 4, 4]
