"""RFM scores and segments: pure rules, no IO, time given as day numbers.

A customer's values as of a day: the day of their last paid order, their paid orders in the
lookback window (F) and their net spend in it (M). Each dimension is scored 1..5 by a `Scale`:
four ascending boundaries in the dimension's own values, where a higher value is better (for
recency the value is the day of the last order, so a later day is more recent). The score is
1 plus the number of boundaries at or below the value.

Scales come from a merchant's thresholds, or from the distribution of the merchant's scored
customers by the midpoint rule (`midpoint_scale`):

    score(v) = 1 + floor(5 * (below(v) + equal(v) / 2) / N)

where `below(v)` counts customers with a worse value, `equal(v)` those with exactly `v`, and N
all of them: the midpoint percentile rank, cut into fifths. Customers with the same value get
the same score (ties never split), one customer alone or all customers alike score 3, and a
value nobody had when the scale was made scores as its neighbours do.

Spend is ranked by `monetary_bucket`: its first three significant digits, so amounts within 1 %
of each other (at most; 0.1 % at the top of a decade) may share a bucket, and so a score. That
keeps the merchant's spend histogram bounded whatever the number of customers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Generic, TypeVar

from loyalty.exact import EXACT

EPOCH = date(1970, 1, 1)
SCORES = (1, 2, 3, 4, 5)
# Significant digits that tell two spends apart when ranking them (see monetary_bucket).
SPEND_DIGITS = 3
_DECADE = 10**SPEND_DIGITS
# Smallest exponent a spend bucket takes (amounts are cents or coarser; far below is room).
_MIN_EXPONENT = -30

V = TypeVar("V", int, Decimal)


class Segment(StrEnum):
    CHAMPIONS = "champions"
    LOYAL = "loyal"
    POTENTIAL_LOYALISTS = "potential_loyalists"
    NEW_CUSTOMERS = "new_customers"
    PROMISING = "promising"
    NEED_ATTENTION = "need_attention"
    ABOUT_TO_SLEEP = "about_to_sleep"
    AT_RISK = "at_risk"
    CANT_LOSE = "cant_lose"
    HIBERNATING = "hibernating"
    PROSPECTS = "prospects"  # known, but no paid order in the window


def segment_for(r: int, f: int) -> Segment:
    """The standard R x F map (DOMAIN.md); every one of the 25 cells has one segment."""
    if r not in SCORES or f not in SCORES:
        raise ValueError(f"scores are 1..5, not r={r} f={f}")
    if r <= 2:
        return Segment.CANT_LOSE if f == 5 else Segment.AT_RISK if f >= 3 else Segment.HIBERNATING
    if f >= 4:
        return Segment.CHAMPIONS if r == 5 else Segment.LOYAL
    if r == 3:
        return Segment.NEED_ATTENTION if f == 3 else Segment.ABOUT_TO_SLEEP
    if f == 1:
        return Segment.NEW_CUSTOMERS if r == 5 else Segment.PROMISING
    return Segment.POTENTIAL_LOYALISTS


def day_number(at: datetime) -> int:
    """The UTC day of an aware instant, as days since 1970-01-01."""
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no day")
    return (at.astimezone(UTC).date() - EPOCH).days


def day_date(day: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + day)


@dataclass(frozen=True, slots=True)
class Values:
    """A customer's RFM values; `last_order_day` is None when no paid order is in the window."""

    last_order_day: int | None
    frequency: int
    monetary: Decimal

    @property
    def scored(self) -> bool:
        return self.last_order_day is not None

    def recency_days(self, as_of: int) -> int | None:
        """Whole days from the last paid order to `as_of` (0 for an order dated later)."""
        return None if self.last_order_day is None else max(0, as_of - self.last_order_day)


PROSPECT = Values(None, 0, Decimal(0))


@dataclass(frozen=True, slots=True)
class Scale(Generic[V]):
    """Four ascending boundaries (None: no value reaches that score) in the dimension's values."""

    boundaries: tuple[V | None, V | None, V | None, V | None]

    def score(self, value: V) -> int:
        return 1 + sum(1 for b in self.boundaries if b is not None and value >= b)


def midpoint_scale(counts: Mapping[V, int]) -> Scale[V]:
    """The scale the midpoint rule gives for `counts` (value → customers with it)."""
    total = sum(counts.values())
    if any(n < 0 for n in counts.values()):
        raise ValueError("a histogram count is negative")
    boundaries: list[V | None] = [None, None, None, None]
    below = 0
    for value in sorted(v for v, n in counts.items() if n):
        n = counts[value]
        score = 1 + (5 * (2 * below + n)) // (2 * total)
        for s in range(2, score + 1):
            if boundaries[s - 2] is None:
                boundaries[s - 2] = value
        below += n
    return Scale((boundaries[0], boundaries[1], boundaries[2], boundaries[3]))


def monetary_bucket(amount: Decimal) -> int:
    """An integer that orders spends by their first SPEND_DIGITS significant digits (0 for 0)."""
    if amount < 0:
        raise ValueError(f"spend cannot be negative: {amount}")
    if amount == 0:
        return 0
    exponent: int = amount.adjusted()
    if exponent < _MIN_EXPONENT:
        raise ValueError(f"spend too small to rank: {amount}")
    leading = int(amount.scaleb(SPEND_DIGITS - 1 - exponent, EXACT))  # truncates: 100..999
    bucket: int = (exponent - _MIN_EXPONENT + 1) * _DECADE + leading
    return bucket


def bucket_floor(bucket: int) -> Decimal:
    """The smallest spend in `bucket`: spend >= bucket_floor(b) exactly when its bucket >= b."""
    if bucket == 0:
        return Decimal(0)
    exponent, leading = divmod(bucket, _DECADE)
    return Decimal(leading).scaleb(exponent - 1 + _MIN_EXPONENT - (SPEND_DIGITS - 1), EXACT)


@dataclass(frozen=True)
class Thresholds:
    """A merchant's own cut points (`loyalnest rfm thresholds`), each four strictly ascending.

    Recency in days (R5 up to the first, R1 beyond the last); frequency in orders and monetary in
    spend (score 1 below the first, 5 from the last on)."""

    recency_days: tuple[int, int, int, int]
    frequency: tuple[int, int, int, int]
    monetary: tuple[Decimal, Decimal, Decimal, Decimal]

    def __post_init__(self) -> None:
        _check_cuts("recency-days", [Decimal(c) for c in self.recency_days])
        _check_cuts("frequency", [Decimal(c) for c in self.frequency])
        _check_cuts("monetary", list(self.monetary))

    def recency_scale(self, as_of: int) -> Scale[int]:
        """In days of the last order: R <= a days ago is day >= as_of - a."""
        a, b, c, d = self.recency_days
        return Scale((as_of - d, as_of - c, as_of - b, as_of - a))


def _check_cuts(name: str, cuts: list[Decimal]) -> None:
    if len(cuts) != 4 or any(b <= a for a, b in pairwise(cuts)):
        raise ValueError(f"{name} needs four strictly ascending cut points")
    if cuts[0] < 0:
        raise ValueError(f"{name} cut points cannot be negative")


@dataclass(frozen=True)
class Scores:
    r: int
    f: int
    m: int
    segment: Segment


@dataclass(frozen=True)
class Scales:
    """The three scales of one merchant as of one day."""

    recency: Scale[int]
    frequency: Scale[int]
    monetary: Scale[Decimal]

    def scores(self, values: Values) -> Scores | None:
        """None for a prospect (no paid order in the window)."""
        if values.last_order_day is None:
            return None
        r = self.recency.score(values.last_order_day)
        f = self.frequency.score(values.frequency)
        return Scores(r, f, self.monetary.score(values.monetary), segment_for(r, f))


def quintile_scales(
    recency: Mapping[int, int], frequency: Mapping[int, int], monetary: Mapping[int, int]
) -> Scales:
    """Scales by the midpoint rule from histograms: customers per last-order day, per order
    count and per spend bucket."""
    buckets = midpoint_scale(monetary).boundaries
    return Scales(
        midpoint_scale(recency),
        midpoint_scale(frequency),
        Scale(
            (
                _floor(buckets[0]),
                _floor(buckets[1]),
                _floor(buckets[2]),
                _floor(buckets[3]),
            )
        ),
    )


def _floor(bucket: int | None) -> Decimal | None:
    return None if bucket is None else bucket_floor(bucket)


def threshold_scales(thresholds: Thresholds, as_of: int) -> Scales:
    return Scales(
        thresholds.recency_scale(as_of),
        Scale(thresholds.frequency),
        Scale(thresholds.monetary),
    )


def segment_counts(segments: Iterable[Segment]) -> dict[str, int]:
    """Every segment's name with its count, zeros included, in the map's order."""
    counts = dict.fromkeys(Segment, 0)
    for segment in segments:
        counts[segment] += 1
    return {segment.value: n for segment, n in counts.items()}
