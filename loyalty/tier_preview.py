"""What-if: the effect a proposed tier configuration would have on a merchant's customers, as
of a moment, without changing anything.

Each customer is evaluated as the tiers flow would evaluate them at that moment under the
proposed configuration, from the same per-order metric the flow keeps: the tier they would
hold, whether that is a move up or down from the tier they hold today, and the entry bonuses
the move would pay (skipped tiers included, none already paid in its period). A tier held
today that the proposal does not have counts as no tier, as it would for the flow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from loyalty.tier_config import TierConfig
from loyalty.tier_counts import NO_TIER
from loyalty.tier_customers import metric_of_config, position
from loyalty.tiers import CustomerMetric, entry_bonuses, held
from loyalty.times import iso_z


@dataclass(frozen=True)
class StoredCustomer:
    """A customer as the tiers flow stored them (PostgreSQL customer_tiers)."""

    tier: str | None
    points: CustomerMetric
    spent: CustomerMetric
    paid: Mapping[str, datetime] = field(default_factory=dict)


@dataclass
class Preview:
    as_of: datetime
    customers: int = 0
    today: Counter[str] = field(default_factory=Counter)  # by tier name; NO_TIER: none
    proposed: Counter[str] = field(default_factory=Counter)
    up: int = 0
    down: int = 0
    entry_bonus_points: int = 0
    entry_bonuses: int = 0

    def document(self, config: TierConfig) -> dict[str, object]:
        names = [t.name for t in config.tiers]
        return {
            "as_of": iso_z(self.as_of),
            "customers": self.customers,
            "today": _by_name(self.today, []),
            "proposed": _by_name(self.proposed, names),
            "moved_up": self.up,
            "moved_down": self.down,
            "unchanged": self.customers - self.up - self.down,
            "entry_bonuses": self.entry_bonuses,
            "entry_bonus_points": self.entry_bonus_points,
        }


def _by_name(counts: Counter[str], names: list[str]) -> dict[str, object]:
    """{"tiers": {name: customers}, "no_tier": customers}, every proposed tier named."""
    tiers = dict.fromkeys(names, 0) | {n: c for n, c in counts.items() if n != NO_TIER}
    return {"tiers": tiers, "no_tier": counts.get(NO_TIER, 0)}


def preview(customers: Iterable[StoredCustomer], proposed: TierConfig, as_of: datetime) -> Preview:
    result = Preview(as_of)
    for customer in customers:
        result.customers += 1
        result.today[customer.tier or NO_TIER] += 1
        index = held(metric_of_config(customer.points, customer.spent, proposed), proposed, as_of)
        result.proposed[NO_TIER if index is None else proposed.tiers[index].name] += 1
        before = position(proposed, customer.tier)
        if index == before and (before is not None or customer.tier is None):
            continue  # the same tier, or still none
        if index is None or (before is not None and index < before):
            result.down += 1
            continue
        result.up += 1
        for tier in entry_bonuses(proposed, before, index, customer.paid, as_of):
            result.entry_bonuses += 1
            result.entry_bonus_points += tier.entry_bonus
    return result


AS_OF_RULE = "as of must be a date (2026-12-31) or a time with an offset, in the years 1970 to 9998"


def parse_as_of(text: str) -> datetime:
    """A preview's moment: a date (its end, so the whole day counts) or a time with an offset,
    in UTC, in years the rules can count a period around; ValueError otherwise."""
    if len(text) == 10:
        at = datetime.combine(datetime.fromisoformat(text).date(), time.max, UTC)
    else:
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError(AS_OF_RULE)
    if not 1970 <= at.year <= 9998:  # before astimezone, which overflows at the ends
        raise ValueError(AS_OF_RULE)
    return at.astimezone(UTC)
