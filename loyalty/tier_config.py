"""A merchant's VIP tiers as configured: what counts (the metric), over which period, and the
ordered tiers with their thresholds, multipliers and entry bonuses.

The form merchants send (`loyalnest tiers set --file`, `PUT /v1/tiers`):

    {"metric": "points_earned" | "amount_spent",
     "period": "lifetime" | "calendar_year" | "rolling_12_months",
     "tiers": [{"name": "Silver", "threshold": 500, "multiplier": "1.25", "entry_bonus": 100},
               ...]}

Thresholds are whole points for `points_earned` and amounts (at most 2 decimal places) for
`amount_spent`; they ascend strictly. Multipliers are decimals from 1 to 10 (at most 2 places)
applied to order earns; entry bonuses are points paid once on entering a tier. Everything
invalid is refused with a message naming the field (`InvalidTiersError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from loyalty.fields import SETTING_MONEY

E = TypeVar("E", bound=StrEnum)

MAX_TIERS = 10
MAX_NAME = 40
MAX_ENTRY_BONUS = 1_000_000
MAX_MULTIPLIER = Decimal(10)
MAX_THRESHOLD = Decimal("9999999999.99")


class InvalidTiersError(ValueError):
    """A tier configuration that cannot be used; the message says why."""


class Metric(StrEnum):
    POINTS_EARNED = "points_earned"  # order earns before multipliers, net of reversals
    AMOUNT_SPENT = "amount_spent"  # order subtotals, net of refunds


class Period(StrEnum):
    LIFETIME = "lifetime"
    CALENDAR_YEAR = "calendar_year"  # reached in year Y: kept through the end of Y + 1
    ROLLING_12_MONTHS = "rolling_12_months"


@dataclass(frozen=True)
class Tier:
    name: str
    threshold: Decimal
    multiplier: Decimal = Decimal(1)
    entry_bonus: int = 0


@dataclass(frozen=True)
class TierConfig:
    metric: Metric
    period: Period
    tiers: tuple[Tier, ...]  # ascending thresholds

    def document(self) -> dict[str, Any]:
        """The configuration in the form it was sent (decimals as strings)."""
        return {
            "metric": self.metric.value,
            "period": self.period.value,
            "tiers": [
                {
                    "name": tier.name,
                    "threshold": _number(tier.threshold),
                    "multiplier": str(tier.multiplier),
                    "entry_bonus": tier.entry_bonus,
                }
                for tier in self.tiers
            ],
        }


def _number(value: Decimal) -> int | str:
    return int(value) if value == value.to_integral_value() else str(value)


def parse_tiers(body: object) -> TierConfig:
    if not isinstance(body, dict):
        raise InvalidTiersError('tiers must be a JSON object {"metric", "period", "tiers"}')
    metric = _choice(body, "metric", Metric)
    period = _choice(body, "period", Period)
    raw = body.get("tiers")
    if not isinstance(raw, list):
        raise InvalidTiersError("tiers must be a list")
    if len(raw) > MAX_TIERS:
        raise InvalidTiersError(f"at most {MAX_TIERS} tiers, got {len(raw)}")
    tiers = tuple(_tier(item, i, metric) for i, item in enumerate(raw))
    _check_order(tiers)
    return TierConfig(metric, period, tiers)


def _choice(body: dict[str, Any], key: str, kind: type[E]) -> E:
    value = body.get(key)
    allowed = ", ".join(member.value for member in kind)
    if not isinstance(value, str) or value not in {member.value for member in kind}:
        raise InvalidTiersError(f"{key} must be one of {allowed}")
    return kind(value)


def _tier(item: object, i: int, metric: Metric) -> Tier:
    at = f"tiers[{i}]"
    if not isinstance(item, dict):
        raise InvalidTiersError(f"{at} must be an object with name and threshold")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidTiersError(f"{at}.name must be 1 to {MAX_NAME} characters")
    return Tier(
        name=name.strip(),
        threshold=_threshold(item.get("threshold"), f"{at}.threshold", metric),
        multiplier=parse_multiplier(item.get("multiplier", "1"), f"{at}.multiplier"),
        entry_bonus=_entry_bonus(item.get("entry_bonus", 0), f"{at}.entry_bonus"),
    )


def _threshold(value: object, at: str, metric: Metric) -> Decimal:
    if metric is Metric.POINTS_EARNED:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 10**10:
            raise InvalidTiersError(f"{at} must be whole points, 1 to 10000000000")
        return Decimal(value)
    amount = _decimal(value)
    if amount is None or not 0 < amount <= MAX_THRESHOLD:
        raise InvalidTiersError(f'{at} must be an amount such as "250.00", above 0')
    return amount


def parse_multiplier(value: object, at: str = "multiplier") -> Decimal:
    multiplier = _decimal(value)
    if multiplier is None or not 1 <= multiplier <= MAX_MULTIPLIER:
        raise InvalidTiersError(f'{at} must be a decimal from 1 to 10 such as "1.5"')
    return multiplier


def _entry_bonus(value: object, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTiersError(f"{at} must be whole points")
    if not 0 <= value <= MAX_ENTRY_BONUS:
        raise InvalidTiersError(f"{at} must be 0 to {MAX_ENTRY_BONUS}")
    return value


def _decimal(value: object) -> Decimal | None:
    """A decimal string or JSON number with at most 10 digits before the point and 2 after."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, Decimal):
        value = format(value, "f")
    if isinstance(value, float):  # a JSON number read as float: its shortest form
        value = repr(value)
    if not isinstance(value, str) or not SETTING_MONEY.fullmatch(value):
        return None
    return Decimal(value)


def _check_order(tiers: tuple[Tier, ...]) -> None:
    seen: set[str] = set()
    for i, tier in enumerate(tiers):
        if tier.name.casefold() in seen:
            raise InvalidTiersError(f"tiers[{i}].name {tier.name!r} is used twice")
        seen.add(tier.name.casefold())
        if i and tier.threshold <= tiers[i - 1].threshold:
            raise InvalidTiersError(
                f"tiers[{i}].threshold must be above tiers[{i - 1}]'s "
                f"({_number(tiers[i - 1].threshold)}): thresholds ascend"
            )
