"""Parsing and validating a merchant's VIP tier configuration (loyalty/tier_config.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from loyalty.tier_config import (
    MAX_TIERS,
    InvalidTiersError,
    Metric,
    Period,
    Tier,
    parse_tiers,
)


def body(*tiers: object, metric: str = "points_earned", period: str = "lifetime") -> Any:
    return {"metric": metric, "period": period, "tiers": list(tiers)}


SILVER = {"name": "Silver", "threshold": 500, "multiplier": "1.25", "entry_bonus": 100}
GOLD = {"name": "Gold", "threshold": 1500, "multiplier": "1.5", "entry_bonus": 250}


def test_a_valid_configuration_parses_with_exact_decimals() -> None:
    config = parse_tiers(body(SILVER, GOLD, period="calendar_year"))

    assert config.metric is Metric.POINTS_EARNED
    assert config.period is Period.CALENDAR_YEAR
    assert config.tiers == (
        Tier("Silver", Decimal(500), Decimal("1.25"), 100),
        Tier("Gold", Decimal(1500), Decimal("1.5"), 250),
    )


def test_the_document_gives_back_what_was_sent() -> None:
    sent = body(SILVER, GOLD, period="rolling_12_months")

    assert parse_tiers(sent).document() == sent


def test_amount_thresholds_keep_their_cents() -> None:
    tiers = ({"name": "Bronze", "threshold": "99.99"}, {"name": "Silver", "threshold": "250"})

    config = parse_tiers(body(*tiers, metric="amount_spent"))

    assert [t.threshold for t in config.tiers] == [Decimal("99.99"), Decimal(250)]
    assert [t.multiplier for t in config.tiers] == [Decimal(1), Decimal(1)]
    assert [t.entry_bonus for t in config.tiers] == [0, 0]


def test_no_tiers_is_a_valid_configuration() -> None:
    assert parse_tiers(body()).tiers == ()


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ([], "tiers must be a JSON object"),
        ({"period": "lifetime", "tiers": []}, "metric must be one of points_earned, amount_spent"),
        (body(metric="orders"), "metric must be one of"),
        (body(period="monthly"), "period must be one of lifetime, calendar_year, rolling_"),
        ({"metric": "points_earned", "period": "lifetime"}, "tiers must be a list"),
        (body("Silver"), r"tiers\[0\] must be an object"),
        (body({"threshold": 5}), r"tiers\[0\].name must be 1 to 40 characters"),
        (body({"name": " ", "threshold": 5}), r"tiers\[0\].name must be 1 to 40"),
        (body({"name": "x" * 41, "threshold": 5}), r"tiers\[0\].name must be 1 to 40"),
        (body({"name": "A", "threshold": 0}), r"tiers\[0\].threshold must be whole points"),
        (body({"name": "A", "threshold": "5"}), r"tiers\[0\].threshold must be whole points"),
        (body({"name": "A", "threshold": True}), r"tiers\[0\].threshold must be whole points"),
        (body({"name": "A", "threshold": 5, "multiplier": "0.9"}), r"multiplier must be a dec"),
        (body({"name": "A", "threshold": 5, "multiplier": "10.01"}), r"multiplier must be a"),
        (body({"name": "A", "threshold": 5, "multiplier": "1.255"}), r"multiplier must be a"),
        (body({"name": "A", "threshold": 5, "entry_bonus": -1}), r"entry_bonus must be 0 to"),
        (body({"name": "A", "threshold": 5, "entry_bonus": "5"}), r"entry_bonus must be whole"),
        (body({"name": "A", "threshold": 5, "entry_bonus": 1_000_001}), r"must be 0 to 1000000"),
        (body({"name": "A", "threshold": "1.001"}, metric="amount_spent"), r"must be an amount"),
        (body({"name": "A", "threshold": "0.00"}, metric="amount_spent"), r"must be an amount"),
        (body({"name": "A", "threshold": "1e3"}, metric="amount_spent"), r"must be an amount"),
        (body(SILVER, {**GOLD, "name": "silver"}), r"tiers\[1\].name 'silver' is used twice"),
        (body(GOLD, SILVER), r"tiers\[1\].threshold must be above tiers\[0\]'s \(1500\)"),
        (body(SILVER, {**GOLD, "threshold": 500}), r"tiers\[1\].threshold must be above"),
    ],
)
def test_invalid_configurations_are_refused_with_the_reason(sent: Any, message: str) -> None:
    with pytest.raises(InvalidTiersError, match=message):
        parse_tiers(sent)


def test_at_most_ten_tiers() -> None:
    tiers = [{"name": f"T{i}", "threshold": 100 * (i + 1)} for i in range(MAX_TIERS + 1)]

    assert len(parse_tiers(body(*tiers[:MAX_TIERS])).tiers) == MAX_TIERS
    with pytest.raises(InvalidTiersError, match="at most 10 tiers, got 11"):
        parse_tiers(body(*tiers))
