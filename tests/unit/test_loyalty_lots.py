"""Points with dates (loyalty.lots): pending points, dated lots, and when things fall due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from loyalty.lots import (
    Held,
    Lot,
    Lots,
    expiry_warning_at,
    inactivity_due,
    lot_expiry,
)
from loyalty.policy import Expiry

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LOT_30 = Expiry.parse("lot:30")


def midnight(month: int, dom: int, year: int = 2024) -> datetime:
    return datetime(year, month, dom, tzinfo=UTC)


def dated(*lots: tuple[int, int]) -> Lots:
    """Lots expiring at midnight of those days of June, with those points."""
    return Lots([Lot(midnight(6, dom), points) for dom, points in lots])


def content(lots: Lots) -> list[tuple[int, int]]:
    return [(lot.expires_at.day, lot.points) for lot in lots.dated]


# ---------------------------------------------------------------------------- held


def test_held_points_start_with_their_terms() -> None:
    held = Held.add(None, 100, AT + timedelta(days=14), AT, LOT_30)

    assert held == Held(100, AT + timedelta(days=14), AT, LOT_30)


def test_more_points_of_the_same_origin_wait_for_the_later_release() -> None:
    first = Held(100, AT + timedelta(days=14), AT, LOT_30)

    merged = Held.add(first, 50, AT + timedelta(days=10), AT + timedelta(days=1), Expiry())

    assert merged == Held(150, AT + timedelta(days=14), AT, Expiry())
    assert Held.add(first, 1, AT + timedelta(days=20), AT, LOT_30).release_at == AT + timedelta(
        days=20
    )


@pytest.mark.parametrize(("taken", "left"), [(0, 100), (30, 70), (99, 1)])
def test_taking_part_of_held_points_leaves_the_rest(taken: int, left: int) -> None:
    held = Held(100, AT, AT, LOT_30)

    assert held.take(taken) == Held(left, AT, AT, LOT_30)


@pytest.mark.parametrize("taken", [100, 150])
def test_taking_all_held_points_leaves_nothing(taken: int) -> None:
    assert Held(100, AT, AT, LOT_30).take(taken) is None


# ---------------------------------------------------------------------------- crediting


def test_a_credit_makes_a_lot_in_expiry_order() -> None:
    lots = dated((5, 10), (20, 20))

    lots.credit(30, 40, midnight(6, 10))
    lots.credit(40, 41, midnight(6, 1))
    lots.credit(41, 46, midnight(6, 25))

    assert content(lots) == [(1, 1), (5, 10), (10, 10), (20, 20), (25, 5)]
    assert lots.total() == 46


def test_a_credit_to_an_existing_date_joins_its_lot() -> None:
    lots = dated((5, 10))

    lots.credit(10, 25, midnight(6, 5))

    assert content(lots) == [(5, 25)]


def test_a_credit_repays_a_debt_before_anything_is_dated() -> None:
    lots = Lots()

    lots.credit(-50, -20, midnight(6, 5))
    assert content(lots) == []

    lots.credit(-20, 30, midnight(6, 5))
    assert content(lots) == [(5, 30)]


@pytest.mark.parametrize(("before", "after"), [(10, 10), (10, 5), (-5, -5)])
def test_nothing_added_dates_nothing(before: int, after: int) -> None:
    lots = dated((5, 10))

    lots.credit(before, after, midnight(6, 6))

    assert content(lots) == [(5, 10)]


def test_undated_points_keep_no_lot() -> None:
    lots = Lots()

    lots.credit(0, 100, None)

    assert lots.dated == []


# ---------------------------------------------------------------------------- debiting


def test_a_spend_takes_the_earliest_expiring_lots_first() -> None:
    lots = dated((5, 10), (10, 20), (15, 30))

    lots.debit_oldest(25, 35)

    assert content(lots) == [(10, 5), (15, 30)]


def test_a_reversal_takes_the_newest_lots_first() -> None:
    lots = dated((5, 10), (10, 20), (15, 30))

    lots.debit_newest(35, 25)

    assert content(lots) == [(5, 10), (10, 15)]


@pytest.mark.parametrize("newest", [False, True])
def test_a_debit_beyond_the_lots_empties_them(newest: bool) -> None:
    lots = dated((5, 10), (10, 20))

    if newest:
        lots.debit_newest(50, -20)
    else:
        lots.debit_oldest(50, 0)

    assert lots.dated == []
    assert lots.total() == 0


def test_undated_points_are_taken_only_once_the_lots_are_gone() -> None:
    # 100 points: 30 dated, 70 undated. A spend of 20 takes the dated ones first.
    lots = dated((5, 30))

    lots.debit_oldest(20, 80)

    assert content(lots) == [(5, 10)]


@pytest.mark.parametrize(
    ("newest", "left"), [(False, [(10, 10), (15, 30)]), (True, [(5, 10), (10, 20), (15, 10)])]
)
def test_lots_are_trimmed_to_the_balance_whatever_was_debited(
    newest: bool, left: list[tuple[int, int]]
) -> None:
    # The sum of the lots never exceeds the balance: if it somehow did, a debit trims it.
    lots = dated((5, 10), (10, 20), (15, 30))

    if newest:
        lots.debit_newest(0, 40)
    else:
        lots.debit_oldest(0, 40)

    assert content(lots) == left


# ---------------------------------------------------------------------------- the list


def test_first_dated_and_warnings_follow_the_expiry_order() -> None:
    lots = dated((5, 10), (10, 20))

    assert lots.first_dated() == Lot(midnight(6, 5), 10)
    assert lots.first_unwarned() == Lot(midnight(6, 5), 10)
    assert lots.mark_first_unwarned() == Lot(midnight(6, 5), 10, warned=True)
    assert lots.first_unwarned() == Lot(midnight(6, 10), 20)
    assert lots.mark_first_unwarned().expires_at == midnight(6, 10)
    assert lots.first_unwarned() is None
    assert lots.pop_first_dated() == Lot(midnight(6, 5), 10, warned=True)
    assert content(lots) == [(10, 20)]
    lots.clear()
    assert lots.first_dated() is None
    assert lots.first_unwarned() is None


# ---------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("earned_at", "expiry", "expires_at"),
    [
        (AT, "lot:30", midnight(6, 1)),
        (midnight(5, 1), "lot:30", midnight(6, 1)),
        (midnight(5, 2) - timedelta(microseconds=1), "lot:30", midnight(6, 1)),
        (midnight(5, 2), "lot:30", midnight(6, 2)),
        (midnight(5, 1), "lot:1", midnight(5, 3)),
        (datetime(2024, 2, 28, 23, tzinfo=UTC), "lot:1", midnight(3, 1)),  # a leap year
        (datetime(2023, 2, 28, 23, tzinfo=UTC), "lot:1", midnight(3, 2, 2023)),
        (midnight(1, 1), "lot:3650", midnight(12, 30, 2033)),
        # Earned at 01:00 in UTC+2 is 23:00 UTC the day before: the lot is the UTC day.
        (datetime(2024, 5, 2, 1, tzinfo=timezone(timedelta(hours=2))), "lot:30", midnight(6, 1)),
        (datetime(2024, 5, 1, 20, tzinfo=timezone(timedelta(hours=-5))), "lot:30", midnight(6, 2)),
    ],
)
def test_points_expire_at_the_end_of_their_utc_day_days_later(
    earned_at: datetime, expiry: str, expires_at: datetime
) -> None:
    result = lot_expiry(earned_at, Expiry.parse(expiry))

    assert result == expires_at
    assert result is not None
    assert result.tzinfo == UTC


@pytest.mark.parametrize("expiry", ["none", "inactivity:30"])
def test_points_under_other_terms_are_undated(expiry: str) -> None:
    assert lot_expiry(AT, Expiry.parse(expiry)) is None


def test_inactivity_is_due_days_after_the_last_activity_to_the_second() -> None:
    assert inactivity_due(AT, Expiry.parse("inactivity:30")) == AT + timedelta(days=30)


@pytest.mark.parametrize(
    ("last_activity", "expiry"), [(None, "inactivity:30"), (AT, "lot:30"), (AT, "none")]
)
def test_inactivity_is_never_due_without_activity_or_under_other_terms(
    last_activity: datetime | None, expiry: str
) -> None:
    assert inactivity_due(last_activity, Expiry.parse(expiry)) is None


@pytest.mark.parametrize(("days", "at"), [(0, midnight(6, 1)), (14, midnight(5, 18))])
def test_a_warning_comes_warning_days_before_the_expiry(days: int, at: datetime) -> None:
    assert expiry_warning_at(midnight(6, 1), days) == at
