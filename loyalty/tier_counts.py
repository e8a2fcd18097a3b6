"""A merchant's customers per tier, kept by the tiers flow from its customers' moves.

One state per merchant (bounded: one count per tier name the merchant ever used), changed by
each `CountChange` in the order the merchant's stage receives them; each change gives the
counts as they now stand, dated by the latest time seen, so the store keeps the newest and a
replay from offset 0 ends where the first run did. No request counts customers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from loyalty.tier_customers import CountChange

NO_TIER = ""  # the count of customers without a tier, under this key


@dataclass(slots=True)
class TierCounts:
    counts: dict[str, int] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class CountsSnapshot:
    merchant_id: str
    counts: Mapping[str, int]  # by tier name; NO_TIER: customers without one
    updated_at: datetime

    @property
    def customers(self) -> int:
        return sum(self.counts.values())


def apply_count(
    state: TierCounts | None, change: CountChange
) -> tuple[TierCounts, list[CountsSnapshot]]:
    s = state or TierCounts()
    counts = s.counts
    if not change.new:
        left = change.left or NO_TIER
        counts[left] = counts.get(left, 0) - 1
        if counts[left] <= 0:
            del counts[left]
    entered = change.entered or NO_TIER
    counts[entered] = counts.get(entered, 0) + 1
    s.updated_at = max(change.at, s.updated_at or change.at)
    return s, [CountsSnapshot(change.merchant_id, dict(counts), s.updated_at)]
