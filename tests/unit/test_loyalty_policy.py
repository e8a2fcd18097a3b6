"""A merchant's program terms (loyalty.policy): expiry terms and day counts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyalty.errors import InvalidEventError
from loyalty.policy import (
    DEFAULT_WARNING_DAYS,
    MAX_EXPIRY_DAYS,
    NO_EXPIRY,
    Expiry,
    ExpiryMode,
    Policy,
    days_in_range,
    parse_days,
    terms_problem,
)


@pytest.mark.parametrize(
    ("text", "expiry"),
    [
        ("none", Expiry()),
        ("lot:1", Expiry(ExpiryMode.LOT, 1)),
        ("lot:365", Expiry(ExpiryMode.LOT, 365)),
        ("lot:3650", Expiry(ExpiryMode.LOT, 3650)),
        ("inactivity:1", Expiry(ExpiryMode.INACTIVITY, 1)),
        ("inactivity:3650", Expiry(ExpiryMode.INACTIVITY, MAX_EXPIRY_DAYS)),
    ],
)
def test_expiry_terms_parse_and_print_back(text: str, expiry: Expiry) -> None:
    assert Expiry.parse(text) == expiry
    assert str(expiry) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "None",
        "NONE",
        "none:30",
        "lot",
        "lot:",
        "lot:0",
        "lot:00",
        "lot:01",
        "lot:-1",
        "lot:+5",
        "lot:1.5",
        "lot:3651",
        "lot:9999",
        "lot:10000",
        "LOT:5",
        " lot:5",
        "lot:5 ",
        "lot:5\n",
        "lot: 5",
        "lot:\u0665",  # an Arabic-Indic five
        "inactivity",
        "inactivity:0",
        "inactive:30",
        "expire:30",
        "lot:30,inactivity:30",
    ],
)
def test_anything_else_is_refused_with_the_expected_forms(text: str) -> None:
    with pytest.raises(InvalidEventError, match="none, inactivity:DAYS or lot:DAYS"):
        Expiry.parse(text)


def test_a_refused_expiry_is_quoted_briefly() -> None:
    with pytest.raises(InvalidEventError) as caught:
        Expiry.parse("x" * 1_000)

    assert len(str(caught.value)) < 150


def test_the_defaults_are_no_expiry_and_two_weeks_warning() -> None:
    assert Expiry() == NO_EXPIRY
    assert str(NO_EXPIRY) == "none"
    assert Policy() == Policy(Decimal(1), "en", 0, NO_EXPIRY, DEFAULT_WARNING_DAYS)
    assert DEFAULT_WARNING_DAYS == 14


@pytest.mark.parametrize(("text", "days"), [("0", 0), ("7", 7), ("365", 365), ("00365", 365)])
def test_a_day_count_is_ascii_digits(text: str, days: int) -> None:
    assert parse_days(text, "pending_days", 365) == days


@pytest.mark.parametrize(
    "text", ["", " 7", "7 ", "-1", "+7", "7.0", "1e2", "366", "000366", "\u0667", "\uff17", "seven"]
)
def test_anything_else_is_not_a_day_count(text: str) -> None:
    with pytest.raises(InvalidEventError, match="pending_days must be an integer from 0 to 365"):
        parse_days(text, "pending_days", 365)


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, -1, 366])
def test_days_in_range_takes_only_integers_within_the_range(value: object) -> None:
    with pytest.raises(InvalidEventError, match="warning_days must be an integer from 0 to 365"):
        days_in_range(value, "warning_days", 365)  # type: ignore[arg-type]


def test_days_in_range_keeps_the_bounds() -> None:
    assert days_in_range(0, "d", 365) == 0
    assert days_in_range(365, "d", 365) == 365
    assert days_in_range(5, "d", 10, lowest=5) == 5
    with pytest.raises(InvalidEventError, match="from 5 to 10"):
        days_in_range(4, "d", 10, lowest=5)


@pytest.mark.parametrize(
    ("pending", "expiry", "warning", "problem"),
    [
        (0, "none", 14, None),
        (365, "none", 365, None),  # nothing expires: any pending and warning days will do
        (29, "lot:30", 29, None),
        (30, "lot:30", 3, "pending days (30) must be fewer than the lot expiry days (30)"),
        (0, "lot:10", 14, "expiry warning days (14) must be fewer than the expiry days (10)"),
        (0, "lot:14", 14, "expiry warning days (14) must be fewer than the expiry days (14)"),
        (300, "inactivity:20", 3, None),  # release is activity: inactivity counts from it
        (0, "inactivity:14", 14, "expiry warning days (14) must be fewer"),
    ],
)
def test_terms_that_cannot_work_together_are_named(
    pending: int, expiry: str, warning: int, problem: str | None
) -> None:
    found = terms_problem(pending, Expiry.parse(expiry), warning)

    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
