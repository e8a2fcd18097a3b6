"""A merchant's RFM picture in bounded space: histograms of its customers' values.

Each scored customer is counted once in each histogram: by the day of their last order (at
most `lookback` days), by order count, by spend bucket (`rfm.monetary_bucket`), and by (day,
order count) for the segment counts; prospects are only counted. None of them grows with the
number of customers, only with the spread of their values. The customer stage reports every
change of a customer's values as (before, after); these histograms then give the merchant's
scales (`quintile_scales`) and segment counts without visiting a single customer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from loyalty.rfm import Scales, Segment, Values, monetary_bucket, quintile_scales, segment_for

K = TypeVar("K", bound=Hashable)


@dataclass
class MerchantHistograms:
    recency: Counter[int] = field(default_factory=Counter)  # last-order day → customers
    frequency: Counter[int] = field(default_factory=Counter)  # orders → customers
    monetary: Counter[int] = field(default_factory=Counter)  # spend bucket → customers
    joint: Counter[tuple[int, int]] = field(default_factory=Counter)  # (day, orders) → customers
    prospects: int = 0

    @property
    def scored(self) -> int:
        return self.recency.total()

    @property
    def total(self) -> int:
        return self.scored + self.prospects

    def change(self, before: Values | None, after: Values) -> None:
        """A customer's values went from `before` (None: a customer new to the merchant)."""
        if before == after:
            return
        if before is not None:
            self._check_counted(before)
            self._count(before, -1)
        self._count(after, 1)

    def _check_counted(self, values: Values) -> None:
        """Refuse, before changing anything, to take away values never counted."""
        day = values.last_order_day
        if day is None:
            if self.prospects < 1:
                raise ValueError("more prospects removed than counted")
            return
        if (
            self.joint[(day, values.frequency)] < 1
            or self.monetary[monetary_bucket(values.monetary)] < 1
        ):
            raise ValueError(f"histogram count for {values} would be negative")

    def _count(self, values: Values, step: int) -> None:
        day = values.last_order_day
        if day is None:
            self.prospects += step
            if self.prospects < 0:
                raise ValueError("more prospects removed than counted")
            return
        _step(self.recency, day, step)
        _step(self.frequency, values.frequency, step)
        _step(self.monetary, monetary_bucket(values.monetary), step)
        _step(self.joint, (day, values.frequency), step)

    def quintile_scales(self) -> Scales:
        return quintile_scales(self.recency, self.frequency, self.monetary)

    def segment_counts(self, scales: Scales) -> dict[Segment, int]:
        counts = dict.fromkeys(Segment, 0)
        counts[Segment.PROSPECTS] = self.prospects
        for (day, orders), n in self.joint.items():
            r, f = scales.recency.score(day), scales.frequency.score(orders)
            counts[segment_for(r, f)] += n
        return counts


def _step(histogram: Counter[K], key: K, step: int) -> None:
    n = histogram[key] + step
    if n < 0:
        raise ValueError(f"histogram count for {key!r} would be negative")
    if n:
        histogram[key] = n
    else:
        del histogram[key]
