"""VIP tier rules, pure: a customer's metric over time, the tier it gives, the entry bonuses a
move pays, the multiplier an order earn gets, and the status a customer sees.

- The metric is kept per order, dated by the order: an earn adds to its order's amount, a
  reversal (refund, cancellation) takes from it, so a refund lowers the period the order
  counted in. Only orders count: bonuses, adjustments, referral rewards and pending points
  never do, and `points_earned` counts earns before any tier multiplier, so a tier never
  feeds its own progress.
- The tier held, as of a moment: `lifetime` by the whole metric (a refund can demote, time
  never does); `calendar_year` by the better of this year's and last year's metric (a tier
  reached in year Y is kept through the end of Y + 1); `rolling_12_months` by the metric of
  the 12 months up to that moment (earns age out).
- Entering a tier pays its entry bonus, and skipping tiers pays every skipped tier's (Smile's
  rule); each at most once per customer, tier and period: once ever (`lifetime`), once per
  calendar year, or once per 12 months. Bonuses are not taken back on demotion.
- A multiplied earn is floor(points x multiplier): never a fraction, never rounded up.

Every function takes the moment it decides for: nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from loyalty.tier_config import Period, Tier, TierConfig

ZERO = Decimal(0)


def months_later(at: datetime, months: int) -> datetime:
    """The same day and time `months` later (the month's last day when it is shorter)."""
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    for day in (at.day, 30, 29, 28):
        try:
            return at.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("every month has 28 days")


def year_start(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class OrderMetric:
    at: datetime  # when the order counts (its time, or its points' release): and where
    amount: Decimal  # net of reversals (never below zero)


@dataclass(frozen=True)
class CustomerMetric:
    """What each order contributes, by order id. Orders that can no longer count in any period
    leave (`trimmed`); their amounts stay in `settled` for the lifetime total."""

    orders: Mapping[int, OrderMetric] = field(default_factory=dict)
    settled: Decimal = ZERO

    def add(self, order_id: int, at: datetime, delta: Decimal) -> CustomerMetric:
        """An earn (delta > 0) or a reversal (delta < 0) of an order. A reversal takes at most
        what the order gave; one of an order already settled comes off the lifetime total."""
        known = self.orders.get(order_id)
        if known is None and delta < 0:
            return CustomerMetric(self.orders, max(ZERO, self.settled + delta))
        amount = max(ZERO, (ZERO if known is None else known.amount) + delta)
        counted = OrderMetric(at if known is None else known.at, amount)
        return CustomerMetric({**self.orders, order_id: counted}, self.settled)

    def total(self) -> Decimal:
        return self.settled + sum((o.amount for o in self.orders.values()), ZERO)

    def between(self, start: datetime, end: datetime) -> Decimal:
        """The metric of orders at start <= at < end."""
        total = ZERO
        for o in self.orders.values():  # a loop: a few orders, on every decision
            if start <= o.at < end:
                total += o.amount
        return total

    def trimmed(self, period: Period, as_of: datetime) -> CustomerMetric:
        """Without the orders no period can count any more (their amounts settled)."""
        horizon = earliest_counted(period, as_of)
        if horizon is None:
            return self
        old = {i: o for i, o in self.orders.items() if o.at < horizon}
        if not old:
            return self
        kept = {i: o for i, o in self.orders.items() if i not in old}
        settled = self.settled + sum((o.amount for o in old.values()), ZERO)
        return CustomerMetric(kept, settled)


def earliest_counted(period: Period, as_of: datetime) -> datetime | None:
    """The oldest order time that still counts as of `as_of` (None: every order counts)."""
    if period is Period.CALENDAR_YEAR:
        return year_start(as_of.year - 1)
    if period is Period.ROLLING_12_MONTHS:
        return months_later(as_of, -12)
    return None


def qualified(value: Decimal, tiers: Iterable[Tier]) -> int | None:
    """The index of the highest tier whose threshold `value` reaches (None: no tier)."""
    reached = None
    for i, tier in enumerate(tiers):
        if value >= tier.threshold:
            reached = i
    return reached


def progress(metric: CustomerMetric, period: Period, as_of: datetime) -> Decimal:
    """The metric in the current period as of `as_of`. An order dated later (pending points,
    which count from their release) does not count yet."""
    until = as_of + _INSTANT
    if period is Period.CALENDAR_YEAR:
        return metric.between(year_start(as_of.year), until)
    if period is Period.ROLLING_12_MONTHS:
        # An order counts up to, not including, the same moment 12 months later (for one of
        # 29 February, the 28th): exactly when `period_end` says it stops.
        return sum(
            (o.amount for o in metric.orders.values() if o.at <= as_of < months_later(o.at, 12)),
            ZERO,
        )
    return metric.settled + metric.between(_BEGINNING, until)


_INSTANT = timedelta(microseconds=1)
_BEGINNING = datetime.min.replace(tzinfo=UTC)


def held(metric: CustomerMetric, config: TierConfig, as_of: datetime) -> int | None:
    """The index of the tier held as of `as_of` (None: no tier)."""
    now = qualified(progress(metric, config.period, as_of), config.tiers)
    if config.period is not Period.CALENDAR_YEAR:
        return now
    last_year = metric.between(year_start(as_of.year - 1), year_start(as_of.year))
    before = qualified(last_year, config.tiers)
    return max((i for i in (now, before) if i is not None), default=None)


def may_pay(period: Period, paid_at: datetime | None, at: datetime) -> bool:
    """Whether a tier's entry bonus, last paid at `paid_at`, may be paid again at `at`."""
    if paid_at is None:
        return True
    if period is Period.CALENDAR_YEAR:
        return paid_at.year < at.year
    if period is Period.ROLLING_12_MONTHS:
        return months_later(paid_at, 12) <= at
    return False


def entry_bonuses(
    config: TierConfig,
    previous: int | None,
    current: int | None,
    paid: Mapping[str, datetime],
    at: datetime,
) -> list[Tier]:
    """The tiers whose entry bonus a move from `previous` to `current` pays at `at`: every
    tier above `previous` up to `current` with a bonus not already paid in its period.
    `paid`: when each tier's bonus was last paid, by its name casefolded (as tier ids are)."""
    if current is None or (previous is not None and current <= previous):
        return []
    start = 0 if previous is None else previous + 1
    return [
        tier
        for tier in config.tiers[start : current + 1]
        if tier.entry_bonus > 0 and may_pay(config.period, paid.get(tier.name.casefold()), at)
    ]


def multiplied(points: int, tier: Tier | None) -> int:
    """An order earn under the tier's multiplier: floor(points x multiplier)."""
    if tier is None or points <= 0:
        return points
    return int((Decimal(points) * tier.multiplier).to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True)
class TierStatus:
    tier: Tier | None
    progress: Decimal  # the metric in the current period
    next_tier: Tier | None
    delta_to_next: Decimal | None  # None at the top tier
    delta_to_retain: Decimal  # more metric this period to keep the tier past period_end
    period_end: datetime | None  # when the tier is re-evaluated by time (None: lifetime)


def status(metric: CustomerMetric, config: TierConfig, as_of: datetime) -> TierStatus:
    index = held(metric, config, as_of)
    value = progress(metric, config.period, as_of)
    tier = None if index is None else config.tiers[index]
    following = 0 if index is None else index + 1
    next_tier = config.tiers[following] if following < len(config.tiers) else None
    delta_to_next = None if next_tier is None else max(ZERO, next_tier.threshold - value)
    retain = ZERO if tier is None else max(ZERO, tier.threshold - value)
    return TierStatus(
        tier, value, next_tier, delta_to_next, retain, period_end(metric, config, as_of)
    )


def period_end(metric: CustomerMetric, config: TierConfig, as_of: datetime) -> datetime | None:
    """`calendar_year`: the end of next year if this year's metric holds the tier, else the
    end of this year. `rolling_12_months`: when, with no new orders, ageing out would drop
    the metric below the tier's threshold. `lifetime`: None."""
    if config.period is Period.LIFETIME:
        return None
    index = held(metric, config, as_of)
    if config.period is Period.CALENDAR_YEAR:
        this_year = progress(metric, config.period, as_of)
        kept_by_now = index is not None and this_year >= config.tiers[index].threshold
        return year_start(as_of.year + (2 if kept_by_now else 1))
    if index is None:
        return None
    threshold = config.tiers[index].threshold
    window_start = months_later(as_of, -12)
    remaining = progress(metric, config.period, as_of)
    for order in sorted(metric.orders.values(), key=lambda o: o.at):
        if order.at <= window_start or order.at > as_of or order.amount == 0:
            continue
        remaining -= order.amount
        if remaining < threshold:
            return months_later(order.at, 12)
    return None
