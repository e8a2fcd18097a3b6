"""The tiers flow's state machine, per customer: the metric from order changes, the tier it
gives under the merchant's configuration, and what each move sends.

Inputs are what the customer's `points.commands` log says, in its order: order earns and
reversals (their base points, before any multiplier, and their amounts) and clock ticks. Each
decision is made under the configuration in force at the input's time, which the caller looks
up; a change of configuration therefore applies from then on, at each customer's next input,
and never recalculates anyone behind their back.

A move (up or down) gives the customer a new assignment revision and sends:
- a `TierChange` for the points flow's customer stage (the multiplier from here on);
- a `TierMove` for the `vip_tier.assigned` event;
- on a move up, one `PointsChange` bonus per entered tier whose entry bonus was not paid in
  its period (skipped tiers included). Bonuses are never taken back on demotion.

What falls due by time (a pending order starting to count, a calendar year ending, an order
ageing out of the rolling window) is decided at its own due time when a later input arrives,
so a tick after downtime dates each move where it belongs, and a replay decides the same.

`apply_tiers(state | None, input, config | None) -> (state | None, outputs)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from loyalty import ids
from loyalty.customers import TierChange
from loyalty.dedup import RecentIds
from loyalty.ledger import Kind, PointsChange, Source
from loyalty.tier_config import Metric, Period, Tier, TierConfig
from loyalty.tiers import CustomerMetric, entry_bonuses, held, period_end

ONE = Decimal(1)


@dataclass(frozen=True)
class OrderCount:
    """An order change as the tiers see it: base points and amount, signed."""

    shop: str
    customer: int
    order_id: int
    at: datetime  # the change's time
    counts_from: datetime  # when it starts to count: its time, or its pending points' release
    points: int
    amount: Decimal
    locale: str
    change_key: str  # the change within its order ("earn", "refund:<id>", "cancel")

    @property
    def merchant_id(self) -> str:
        return ids.merchant_key(self.shop)


@dataclass(frozen=True)
class TierTick:
    merchant_id: str
    customer: int
    at: datetime


TierInput = OrderCount | TierTick


@dataclass(frozen=True)
class TierMove:
    """A customer's tier changed (either way): what `vip_tier.assigned` reports."""

    merchant_id: str
    customer: int
    revision: int
    tier: Tier | None
    previous: str | None  # the previous tier's name
    at: datetime
    up: bool  # a move to a higher tier (or into the first); else down

    @property
    def event_id(self) -> str:
        return ids.event_key(self.merchant_id, self.customer, "tier", self.revision)

    def change(self) -> TierChange:
        multiplier = ONE if self.tier is None else self.tier.multiplier
        name = None if self.tier is None else self.tier.name
        return TierChange(self.merchant_id, self.customer, self.revision, name, multiplier, self.at)


@dataclass(frozen=True)
class TierSnapshot:
    """The customer's tier state as the read model keeps it (after every change)."""

    merchant_id: str
    customer: int
    tier: str | None
    revision: int
    points: CustomerMetric
    spent: CustomerMetric
    updated_at: datetime
    due_at: datetime | None  # when the clock must next reach this customer
    paid: Mapping[str, datetime] = field(default_factory=dict)  # entry bonuses, by tier


@dataclass(frozen=True)
class CountChange:
    """One customer leaving a tier for another, or arriving (for the merchant's counts)."""

    merchant_id: str
    left: str | None  # the tier left (None: no tier)
    entered: str | None
    new: bool  # a customer the merchant's counts have not had
    at: datetime


TierOutput = TierMove | PointsChange | TierSnapshot | CountChange


@dataclass(slots=True)
class TierCustomer:
    shop: str = ""  # from the first order change: bonuses are posted under it
    locale: str = "en"
    points: CustomerMetric = field(default_factory=CustomerMetric)
    spent: CustomerMetric = field(default_factory=CustomerMetric)
    tier: str | None = None
    revision: int = 0
    paid: dict[str, datetime] = field(default_factory=dict)  # entry bonus paid, by tier name
    clock: datetime | None = None
    due: datetime | None = None  # when the clock must next reach this customer
    # The order changes counted lately: the order stage re-sends its last ones after a crash,
    # as the customer stage knows (the same window, the same refusal of older ones).
    recent: RecentIds = field(default_factory=RecentIds)


@lru_cache(maxsize=4096)
def tier_id(merchant_id: str, name: str) -> str:
    """A tier's id: the same name (in any case) names the same tier across configurations.
    Cached: every bonus and event names one, and merchants have few."""
    return ids.event_key(merchant_id, "tier", name.casefold())


def apply_tiers(
    state: TierCustomer | None, item: TierInput, config: TierConfig | None
) -> tuple[TierCustomer | None, list[TierOutput]]:
    if state is None and isinstance(item, TierTick):
        return None, []  # the clock reached someone who never ordered: nothing to keep
    c = state or TierCustomer()
    if isinstance(item, OrderCount) and c.recent.seen(_change_id(item), item.at):
        return c, []  # counted already (a change re-sent after a crash): nothing moves
    outputs: list[TierOutput] = []
    if state is None:
        outputs.append(CountChange(item.merchant_id, None, None, True, item.at))
    before = _shown(c)
    now = max(item.at, c.clock or item.at)
    _catch_up(c, item, config, now, outputs)
    if isinstance(item, OrderCount):
        c.recent.add(_change_id(item), item.at)
        c.recent.forget_before(item.at)
        c.shop, c.locale = item.shop, item.locale
        c.points = c.points.add(item.order_id, item.counts_from, Decimal(item.points))
        c.spent = c.spent.add(item.order_id, item.counts_from, item.amount)
    c.clock = now
    _decide(c, item.merchant_id, item.customer, config, now, outputs)
    # Orders no period can count any more leave the state (the calendar year's horizon is the
    # earliest of all periods'); lifetime keeps their sum.
    c.points = c.points.trimmed(Period.CALENDAR_YEAR, now)
    c.spent = c.spent.trimmed(Period.CALENDAR_YEAR, now)
    c.due = due_at(c, config, now)
    if _shown(c) != before:
        outputs.append(_snapshot(c, item.merchant_id, item.customer, now))
    return c, outputs


def _change_id(item: OrderCount) -> str:
    """What a re-sent order change is recognised by, within its customer's state: the order
    and its business key (the points flow's ids derive from the same, with the shop)."""
    return f"{item.order_id}:{item.change_key}"


def _shown(c: TierCustomer) -> tuple[object, ...]:
    return (c.points, c.spent, c.tier, c.revision, c.due)


def _catch_up(
    c: TierCustomer,
    item: TierInput,
    config: TierConfig | None,
    now: datetime,
    outputs: list[TierOutput],
) -> None:
    """Decide, each at its own time, what fell due before `now`."""
    if c.clock is None:
        return
    last = c.clock
    while (due := due_at(c, config, last)) is not None and last < due < now:
        _decide(c, item.merchant_id, item.customer, config, due, outputs)
        last = c.clock = due


def _decide(
    c: TierCustomer,
    merchant_id: str,
    customer: int,
    config: TierConfig | None,
    at: datetime,
    outputs: list[TierOutput],
) -> None:
    index = None if config is None else held(metric_of(c, config), config, at)
    tier = None if config is None or index is None else config.tiers[index]
    name = None if tier is None else tier.name
    if _same(name, c.tier):
        return
    previous = c.tier
    before = None if config is None else position(config, previous)
    up = index is not None and (before is None or index > before)
    c.revision += 1
    c.tier = name
    outputs.append(TierMove(merchant_id, customer, c.revision, tier, previous, at, up))
    outputs.append(CountChange(merchant_id, previous, name, False, at))
    if config is not None:
        for entered in entry_bonuses(config, before, index, c.paid, at):
            c.paid[entered.name.casefold()] = at
            outputs.append(_bonus(c, merchant_id, customer, config, entered, at))


def metric_of(c: TierCustomer, config: TierConfig) -> CustomerMetric:
    return metric_of_config(c.points, c.spent, config)


def metric_of_config(
    points: CustomerMetric, spent: CustomerMetric, config: TierConfig
) -> CustomerMetric:
    return spent if config.metric is Metric.AMOUNT_SPENT else points


def position(config: TierConfig, name: str | None) -> int | None:
    """Where a tier the customer held stands in this configuration (None: not in it)."""
    if name is None:
        return None
    return next((i for i, t in enumerate(config.tiers) if _same(t.name, name)), None)


def _same(name: str | None, other: str | None) -> bool:
    """Tier names are compared as their ids are made: in any letter case."""
    return (name or "").casefold() == (other or "").casefold() and (name is None) == (other is None)


def _bonus(
    c: TierCustomer,
    merchant_id: str,
    customer: int,
    config: TierConfig,
    tier: Tier,
    at: datetime,
) -> PointsChange:
    return PointsChange(
        shop=c.shop,
        customer=customer,
        source=Source.TIER,
        source_id=bonus_source_id(customer, tier_id(merchant_id, tier.name), config.period, at),
        kind=Kind.BONUS,
        points=tier.entry_bonus,
        text_key="points.bonus.tier",
        locale=c.locale,
        at=at,
    )


def bonus_source_id(customer: int, tier: str, period: Period, at: datetime) -> str:
    """An entry bonus's id: the customer, the tier and the period it is paid once in. The
    customer is part of it: a command's id derives from its merchant, source and source id."""
    return f"{customer}:{tier}:{_period_key(period, at)}"


def _period_key(period: Period, at: datetime) -> str:
    """Which period an entry bonus belongs to: its id says it is paid once in it."""
    if period is Period.LIFETIME:
        return "lifetime"
    if period is Period.CALENDAR_YEAR:
        return str(at.year)
    return at.date().isoformat()


def due_at(c: TierCustomer, config: TierConfig | None, as_of: datetime) -> datetime | None:
    """The next moment after `as_of` at which time alone could change the customer's tier:
    a pending order starting to count, or the tier's period ending."""
    candidates = [o.at for m in (c.points, c.spent) for o in m.orders.values() if o.at > as_of]
    if config is not None and c.tier is not None:
        end = period_end(metric_of(c, config), config, as_of)
        if end is not None and end > as_of:
            candidates.append(end)
    return min(candidates, default=None)


def _snapshot(c: TierCustomer, merchant_id: str, customer: int, now: datetime) -> TierSnapshot:
    return TierSnapshot(
        merchant_id, customer, c.tier, c.revision, c.points, c.spent, now, c.due, dict(c.paid)
    )
