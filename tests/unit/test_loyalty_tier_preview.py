"""The what-if of a proposed tier configuration (loyalty/tier_preview.py), pure: each metric and
period, moves up and down, entry bonuses (skipped tiers, already paid), a tier the proposal
lacks, the document, and the `as_of` it is asked for.

Every moment is an explicit UTC datetime: nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from loyalty.tier_config import Metric, Period, Tier, TierConfig
from loyalty.tier_preview import AS_OF_RULE, Preview, StoredCustomer, parse_as_of, preview
from loyalty.tiers import CustomerMetric, OrderMetric

BRONZE = Tier("Bronze", Decimal(100), Decimal(1), 10)
SILVER = Tier("Silver", Decimal(500), Decimal("1.25"), 50)
GOLD = Tier("Gold", Decimal(1500), Decimal("1.5"), 200)
TIERS = (BRONZE, SILVER, GOLD)
AS_OF = datetime(2026, 6, 15, 12, tzinfo=UTC)


def at(year: int, month: int = 1, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def config(
    period: Period = Period.LIFETIME,
    metric: Metric = Metric.POINTS_EARNED,
    tiers: tuple[Tier, ...] = TIERS,
) -> TierConfig:
    return TierConfig(metric, period, tiers)


def metric(*orders: tuple[datetime, int | str], settled: int = 0) -> CustomerMetric:
    return CustomerMetric(
        {i: OrderMetric(when, Decimal(amount)) for i, (when, amount) in enumerate(orders, 1)},
        Decimal(settled),
    )


def customer(
    tier: str | None,
    *orders: tuple[datetime, int | str],
    spent: CustomerMetric | None = None,
    paid: Mapping[str, datetime] | None = None,
) -> StoredCustomer:
    """A customer whose points are `orders` (and their spend too unless given)."""
    points = metric(*orders)
    return StoredCustomer(tier, points, points if spent is None else spent, dict(paid or {}))


def moves(result: Preview) -> tuple[int, int, int, int]:
    """(up, down, entry bonuses, their points)."""
    return result.up, result.down, result.entry_bonuses, result.entry_bonus_points


def proposed_tier(result: Preview) -> str:
    """The one customer's proposed tier ("" for none)."""
    assert result.customers == 1
    (name,) = [n for n, c in result.proposed.items() if c]
    return name


# -------------------------------------------------------------------------------- metrics


def test_points_earned_counts_points_and_amount_spent_counts_spend() -> None:
    big_spender = customer(None, (at(2026, 3), 120), spent=metric((at(2026, 3), "1600.00")))

    on_points = preview([big_spender], config(metric=Metric.POINTS_EARNED), AS_OF)
    on_spend = preview([big_spender], config(metric=Metric.AMOUNT_SPENT), AS_OF)

    assert proposed_tier(on_points) == "Bronze"
    assert proposed_tier(on_spend) == "Gold"


def test_amount_spent_thresholds_are_reached_to_the_cent() -> None:
    tiers = (Tier("Insider", Decimal("250.00")),)
    short = customer(None, spent=metric((at(2026, 3), "249.99")))
    enough = customer(None, spent=metric((at(2026, 3), "150.00"), (at(2026, 4), "100.00")))

    result = preview([short, enough], config(metric=Metric.AMOUNT_SPENT, tiers=tiers), AS_OF)

    assert dict(result.proposed) == {"": 1, "Insider": 1}


# -------------------------------------------------------------------------------- periods


def test_lifetime_counts_every_order_and_the_settled_sum() -> None:
    old = StoredCustomer(None, metric((at(2026, 1), 200), settled=1400), CustomerMetric())

    result = preview([old], config(Period.LIFETIME), AS_OF)

    assert proposed_tier(result) == "Gold"


@pytest.mark.parametrize(
    ("orders", "expected"),
    [
        ([(at(2026, 2), 600)], "Silver"),  # this year
        ([(at(2025, 12, 31, 23), 600)], "Silver"),  # last year: kept through this one
        ([(at(2024, 12, 31, 23), 600)], ""),  # two years ago: gone
        # the better of the two years, never their sum
        ([(at(2025, 3), 400), (at(2026, 3), 400)], "Bronze"),
    ],
)
def test_calendar_year_is_the_better_of_this_and_last_year(
    orders: list[tuple[datetime, int]], expected: str
) -> None:
    result = preview([customer(None, *orders)], config(Period.CALENDAR_YEAR), AS_OF)

    assert proposed_tier(result) == expected


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(2025, 6, 15, 13), "Silver"),  # 12 months less an hour ago: counts
        (at(2025, 6, 15, 12), ""),  # 12 months ago exactly: aged out
        (at(2025, 1, 1), ""),
    ],
)
def test_rolling_12_months_ages_orders_out(when: datetime, expected: str) -> None:
    result = preview([customer(None, (when, 600))], config(Period.ROLLING_12_MONTHS), AS_OF)

    assert proposed_tier(result) == expected


@pytest.mark.parametrize("period", list(Period))
def test_an_order_counting_after_as_of_does_not_count_yet(period: Period) -> None:
    pending = customer(None, (AS_OF + timedelta(microseconds=1), 600))
    due = customer(None, (AS_OF, 600))

    result = preview([pending, due], config(period), AS_OF)

    assert dict(result.proposed) == {"": 1, "Silver": 1}


# ---------------------------------------------------------------------- moves and bonuses


def test_a_customer_keeping_their_tier_is_unchanged_and_paid_nothing() -> None:
    result = preview([customer("Silver", (at(2026, 3), 600))], config(), AS_OF)

    assert moves(result) == (0, 0, 0, 0)
    assert result.document(config())["unchanged"] == 1


def test_a_tier_is_the_same_in_any_letter_case() -> None:
    result = preview([customer("SILVER", (at(2026, 3), 600))], config(), AS_OF)

    assert moves(result) == (0, 0, 0, 0)


def test_a_move_up_pays_every_skipped_tiers_bonus() -> None:
    result = preview([customer(None, (at(2026, 3), 1600))], config(), AS_OF)

    assert moves(result) == (1, 0, 3, 10 + 50 + 200)


def test_a_move_up_from_a_tier_pays_only_the_tiers_above_it() -> None:
    result = preview([customer("Bronze", (at(2026, 3), 1600))], config(), AS_OF)

    assert moves(result) == (1, 0, 2, 50 + 200)


def test_a_tier_without_a_bonus_is_not_counted_as_one() -> None:
    tiers = (Tier("Bronze", Decimal(100)), SILVER)

    result = preview([customer(None, (at(2026, 3), 600))], config(tiers=tiers), AS_OF)

    assert moves(result) == (1, 0, 1, 50)


@pytest.mark.parametrize(
    ("period", "paid_at", "paid_again"),
    [
        (Period.LIFETIME, at(2019), False),  # once ever
        (Period.CALENDAR_YEAR, at(2026, 1, 2), False),  # this year
        (Period.CALENDAR_YEAR, at(2025, 12, 31, 23), True),  # last year
        (Period.ROLLING_12_MONTHS, at(2025, 6, 16), False),  # less than 12 months ago
        (Period.ROLLING_12_MONTHS, at(2025, 6, 15, 12), True),  # 12 months ago exactly
    ],
)
def test_a_bonus_already_paid_in_its_period_is_not_counted(
    period: Period, paid_at: datetime, paid_again: bool
) -> None:
    # Silver's bonus was paid before (keys are casefolded names, as the flow keeps them).
    returning = customer(None, (at(2026, 3), 600), paid={"silver": paid_at})

    result = preview([returning], config(period), AS_OF)

    expected = (1, 0, 2, 10 + 50) if paid_again else (1, 0, 1, 10)
    assert moves(result) == expected


def test_a_demotion_is_a_move_down_that_pays_nothing() -> None:
    gold_to_bronze = customer("Gold", (at(2026, 3), 200))
    silver_to_none = customer("Silver", (at(2026, 3), 50))

    result = preview([gold_to_bronze, silver_to_none], config(), AS_OF)

    assert moves(result) == (0, 2, 0, 0)
    assert dict(result.today) == {"Gold": 1, "Silver": 1}
    assert dict(result.proposed) == {"Bronze": 1, "": 1}


def test_a_tier_the_proposal_lacks_counts_as_no_tier_so_any_tier_is_up() -> None:
    # Platinum today; the proposal has no Platinum: Silver is a move up from no tier, and pays
    # Bronze's and Silver's bonuses, as the flow would.
    platinum = customer("Platinum", (at(2026, 3), 600))

    result = preview([platinum], config(), AS_OF)

    assert moves(result) == (1, 0, 2, 10 + 50)
    assert dict(result.today) == {"Platinum": 1}
    assert dict(result.proposed) == {"Silver": 1}


def test_a_tier_the_proposal_lacks_with_no_tier_proposed_is_a_move_down() -> None:
    platinum = customer("Platinum", (at(2026, 3), 50))

    result = preview([platinum], config(), AS_OF)

    assert dict(result.proposed) == {"": 1}
    assert moves(result) == (0, 1, 0, 0)


# ------------------------------------------------------------------------------ document


def test_the_document_counts_today_against_the_proposal() -> None:
    customers = [
        customer(None, (at(2026, 3), 150)),  # -> Bronze: up, 10
        customer("Bronze", (at(2026, 3), 1600)),  # -> Gold: up, 50 + 200
        customer("Silver", (at(2026, 3), 600)),  # unchanged
        customer("Gold", (at(2026, 3), 600)),  # -> Silver: down
        customer(None),  # unchanged, no tier
    ]
    proposed = config()

    document = preview(customers, proposed, AS_OF).document(proposed)

    assert document == {
        "as_of": "2026-06-15T12:00:00Z",
        "customers": 5,
        # today: only the tiers customers hold; proposed: every proposed tier
        "today": {"tiers": {"Bronze": 1, "Silver": 1, "Gold": 1}, "no_tier": 2},
        "proposed": {"tiers": {"Bronze": 1, "Silver": 2, "Gold": 1}, "no_tier": 1},
        "moved_up": 2,
        "moved_down": 1,
        "unchanged": 2,
        "entry_bonuses": 3,
        "entry_bonus_points": 260,
    }


def test_the_document_of_no_customers_names_every_proposed_tier_at_zero() -> None:
    document = preview([], config(), AS_OF).document(config())

    assert document == {
        "as_of": "2026-06-15T12:00:00Z",
        "customers": 0,
        "today": {"tiers": {}, "no_tier": 0},
        "proposed": {"tiers": {"Bronze": 0, "Silver": 0, "Gold": 0}, "no_tier": 0},
        "moved_up": 0,
        "moved_down": 0,
        "unchanged": 0,
        "entry_bonuses": 0,
        "entry_bonus_points": 0,
    }


def test_preview_reads_its_customers_once_from_any_iterable() -> None:
    customers = (customer(None, (at(2026, 3), n)) for n in (150, 600))

    result = preview(customers, config(), AS_OF)

    assert result.customers == 2
    assert dict(result.proposed) == {"Bronze": 1, "Silver": 1}


# ------------------------------------------------------------------------------- as_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-31", datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        ("2024-02-29", datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)),
        ("2026-12-31T10:00:00+02:00", datetime(2026, 12, 31, 8, tzinfo=UTC)),
        ("2026-12-31T22:30:00-05:00", datetime(2027, 1, 1, 3, 30, tzinfo=UTC)),
        ("2026-12-31T10:00:00Z", datetime(2026, 12, 31, 10, tzinfo=UTC)),
        ("2026-12-31T10:00:00.25+00:00", datetime(2026, 12, 31, 10, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_as_of_is_a_dates_end_or_a_time_with_an_offset_in_utc(
    text: str, expected: datetime
) -> None:
    parsed = parse_as_of(text)

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("2026-12-31T10:00:00", AS_OF_RULE),  # no offset
        ("2026-12-31 10:00", AS_OF_RULE),
        ("20261231", AS_OF_RULE),  # without dashes: a time (midnight) without an offset
        ("", None),
        ("2026-13-01", None),
        ("2026-02-30", None),
        ("31/12/2026", None),
        ("tomorrow", None),
    ],
)
def test_anything_else_is_a_value_error(text: str, said: str | None) -> None:
    with pytest.raises(ValueError, match=r".") as raised:
        parse_as_of(text)

    if said is not None:
        assert str(raised.value) == said


def test_a_time_in_another_zone_is_the_same_moment() -> None:
    here = datetime(2026, 12, 31, 10, tzinfo=timezone(timedelta(hours=2)))

    assert parse_as_of(here.isoformat()) == here
