"""The RFM merchant stage, pure: histograms, the as-of day, the scales and the segment counts.

Keyed by shop; it holds no customer, only `MerchantHistograms`, so its size does not grow with
the number of customers. Customers report their value changes; day ticks move the as-of day;
a settings change swaps quintiles for thresholds or back. `refresh` (once per batch of records)
recomputes the scales and counts and gives a new `MerchantPicture`, with the next version,
when anything in it changed: the rescoring job compares customers against its scales.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loyalty.rfm import Scales, Segment, Thresholds, Values, threshold_scales
from loyalty.rfm_histograms import MerchantHistograms
from loyalty.rfm_window import DEFAULT_LOOKBACK_DAYS


@dataclass(frozen=True, slots=True)
class MerchantPicture:
    """What the API and the rescoring job read of a merchant (the version orders pictures)."""

    as_of: int
    version: int
    scales: Scales
    counts: dict[Segment, int]
    total: int
    lookback: int = DEFAULT_LOOKBACK_DAYS  # the customers' window, as orders last said


@dataclass
class RfmMerchant:
    histograms: MerchantHistograms = field(default_factory=MerchantHistograms)
    as_of: int | None = None
    thresholds: Thresholds | None = None
    picture: MerchantPicture | None = None
    lookback: int = DEFAULT_LOOKBACK_DAYS

    def change(self, before: Values | None, after: Values, lookback: int | None = None) -> None:
        """A customer's values changed; `lookback` is the window their record carried."""
        self.histograms.change(before, after)
        if lookback is not None:
            self.lookback = lookback
        if after.last_order_day is not None:
            self.advance(after.last_order_day)

    def advance(self, as_of: int) -> None:
        """Days only move forward: a late tick or an old order's day changes nothing."""
        if self.as_of is None or as_of > self.as_of:
            self.as_of = as_of

    def use(self, thresholds: Thresholds | None) -> None:
        """The merchant's thresholds (None: quintiles), from the next refresh on."""
        self.thresholds = thresholds

    def scales(self, as_of: int) -> Scales:
        if self.thresholds is not None:
            return threshold_scales(self.thresholds, as_of)
        return self.histograms.quintile_scales()

    def refresh(self) -> MerchantPicture | None:
        """The new picture if the scales, counts, total or day moved; else None."""
        if self.as_of is None:
            return None
        scales = self.scales(self.as_of)
        counts = self.histograms.segment_counts(scales)
        total = self.histograms.total
        old = self.picture
        now = (self.as_of, scales, counts, total, self.lookback)
        if old and (old.as_of, old.scales, old.counts, old.total, old.lookback) == now:
            return None
        version = (old.version if old else 0) + 1
        self.picture = MerchantPicture(self.as_of, version, scales, counts, total, self.lookback)
        return self.picture
