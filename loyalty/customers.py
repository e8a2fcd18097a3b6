"""The customer stage's state machine: the single writer of a customer's points.

Everything that moves a balance reaches it as a command on `points.commands`, keyed by
merchant:customer, in the log's order: order earns and reversals, referral and tier bonuses,
redemptions, manual adjustments, and clock ticks. It keeps two balances, spendable and pending,
numbers every ledger entry, and never lets a spend, a deduction or an expiry take the spendable
balance below zero (a reversal may: the points were already spent).

Time is data: the state's clock is the latest time any command carried. Before a command is
applied, whatever fell due up to its time happens first, at the time it fell due: pending points
are released and points expire with their own dates, so a late tick after downtime catches up
exactly, and a replay from offset 0 makes the same decisions. Nothing here reads the wall clock.

`apply_customer(state | None, command) -> (state | None, outputs)`: Bytewax keeps the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from loyalty import ids
from loyalty.dedup import RecentIds
from loyalty.errors import InvalidEventError
from loyalty.exact import floor_div
from loyalty.ledger import Kind, PointsChange, Source
from loyalty.limits import MAX_INT64, MAX_POINTS, MIN_INT64
from loyalty.lots import Held, Lots, expiry_warning_at, inactivity_due, lot_expiry
from loyalty.policy import DEFAULT_WARNING_DAYS, NO_EXPIRY, Expiry

MAX_ADJUSTMENT = 1_000_000
ONE = Decimal(1)
# How long an order earned under a tier multiplier remembers it, so that its refunds take back
# multiplied points. Older ones are forgotten at the customer's next multiplied earn; a refund
# of a forgotten order takes back the base points the order stage names.
BOOST_MEMORY = timedelta(days=400)
# What keeps a balance alive under inactivity expiry: points coming in or going out on purpose.
ACTIVITY = frozenset({Kind.EARN, Kind.BONUS, Kind.ADJUST, Kind.RELEASE, Kind.SPEND})


class Status(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


RedemptionStatus = Status  # the name the redemption API has always used


@dataclass(frozen=True)
class Redemption:
    """A request to spend points, travelling through Kafka to the customer's single writer."""

    redemption_id: str
    merchant_id: str
    customer: int
    points: int
    reward_id: str
    idempotency_key: str
    locale: str
    at: datetime
    correlation_id: str | None = None


@dataclass(frozen=True)
class Adjustment:
    """A merchant's manual change of a balance: positive adds, negative deducts."""

    adjustment_id: str
    merchant_id: str
    customer: int
    points: int
    reason: str
    idempotency_key: str
    locale: str
    at: datetime
    correlation_id: str | None = None


@dataclass(frozen=True)
class Tick:
    """The clock reaching a customer: whatever falls due up to `at` happens."""

    merchant_id: str
    customer: int
    at: datetime


@dataclass(frozen=True)
class TierChange:
    """The customer's VIP tier as the tiers flow assigned it: the multiplier order earns get
    from here on in this customer's log. `revision` counts the customer's assignments, so a
    re-sent older one (the tiers flow's replay) never undoes a newer one."""

    merchant_id: str
    customer: int
    revision: int
    tier: str | None
    multiplier: Decimal
    at: datetime


@dataclass(frozen=True)
class Boost:
    """An order earned under a multiplier: the rate, and the base points not yet reversed."""

    multiplier: Decimal
    base: int
    at: datetime


@dataclass(frozen=True)
class LedgerEntry:
    """One applied change: what moved, the balances after it, and its place in the sequence."""

    event_id: str
    merchant_id: str
    customer: int
    kind: Kind
    points: int  # how many points the entry is about (always > 0)
    balance: int  # spendable, after
    seq: int
    text_key: str
    locale: str
    at: datetime
    source: Source
    source_id: str
    spendable_delta: int
    pending_delta: int = 0
    pending: int | None = None  # pending, after; set on entries that move pending points
    order_id: int | None = None
    refund_id: int | None = None
    redemption_id: str | None = None
    adjustment_id: str | None = None
    reason: str | None = None
    correlation_id: str | None = None
    multiplier: Decimal | None = None  # an order earn or reversal under a tier multiplier


@dataclass(frozen=True)
class RedemptionOutcome:
    redemption: Redemption
    status: Status
    reason: str | None = None
    entry: LedgerEntry | None = None


@dataclass(frozen=True)
class AdjustmentOutcome:
    adjustment: Adjustment
    status: Status
    reason: str | None = None
    entry: LedgerEntry | None = None


@dataclass(frozen=True)
class ExpiryWarning:
    """Points about to expire: sent once per lot (or per balance due date), before it expires."""

    merchant_id: str
    customer: int
    points: int
    expires_at: datetime
    at: datetime
    locale: str

    @property
    def event_id(self) -> str:
        return str(
            ids.event_id(self.merchant_id, self.customer, "expiring", self.expires_at.isoformat())
        )


@dataclass(frozen=True)
class NextExpiry:
    points: int
    at: datetime


@dataclass(frozen=True)
class BalanceSnapshot:
    """The customer's balances after a command: what the balance document and cache hold."""

    merchant_id: str
    customer: int
    balance: int
    pending: int
    lifetime_earned: int
    seq: int
    version: int  # counts every change of this snapshot: the store keeps only newer ones
    updated_at: datetime
    next_expiry: NextExpiry | None
    due_at: datetime | None  # when the clock must next reach this customer


@dataclass(slots=True)
class CustomerState:
    balance: int = 0  # spendable
    pending: int = 0
    lifetime_earned: int = 0  # earns and bonuses, net of their reversals (pending included)
    seq: int = 0
    version: int = 0
    clock: datetime | None = None  # the latest time a command carried
    last_activity: datetime | None = None  # latest earn or spend (inactivity expiry)
    warned_due: datetime | None = None  # inactivity due date already warned about
    expiry: Expiry = NO_EXPIRY
    warning_days: int = DEFAULT_WARNING_DAYS
    locale: str = "en"
    held: dict[str, Held] | None = None  # pending points, by origin (None: none, the rule)
    lots: Lots = field(default_factory=Lots)
    recent: RecentIds = field(default_factory=RecentIds)
    tier: TierChange | None = None  # the latest tier assignment applied
    boosts: dict[int, Boost] | None = None  # multiplied orders, by order id (None: none)

    @property
    def multiplier(self) -> Decimal:
        return ONE if self.tier is None else self.tier.multiplier


CustomerInput = PointsChange | Redemption | Adjustment | Tick | TierChange
CustomerOutput = (
    LedgerEntry | RedemptionOutcome | AdjustmentOutcome | ExpiryWarning | BalanceSnapshot
)


@dataclass
class _Run:
    """One command's application: the state, who it is, and what it produced."""

    state: CustomerState
    merchant_id: str
    customer: int
    outputs: list[CustomerOutput] = field(default_factory=list)

    def post(
        self,
        kind: Kind,
        points: int,
        text_key: str,
        at: datetime,
        source: Source,
        source_id: str,
        *,
        spendable: int = 0,
        pending: int = 0,
        event_id: str | None = None,
        **refs: Any,
    ) -> LedgerEntry:
        c = self.state
        _check_balance(c.balance, spendable)
        c.seq += 1
        c.balance += spendable
        c.pending += pending
        if kind in ACTIVITY:
            c.last_activity = max(c.last_activity or at, at)
        entry = LedgerEntry(
            event_id=event_id or ids.event_key(self.merchant_id, self.customer, c.seq),
            merchant_id=self.merchant_id,
            customer=self.customer,
            kind=kind,
            points=points,
            balance=c.balance,
            seq=c.seq,
            text_key=text_key,
            locale=refs.pop("locale", c.locale),
            at=at,
            source=source,
            source_id=source_id,
            spendable_delta=spendable,
            pending_delta=pending,
            pending=c.pending if pending else None,
            **refs,
        )
        self.outputs.append(entry)
        return entry


def apply_customer(
    state: CustomerState | None, item: CustomerInput
) -> tuple[CustomerState | None, list[CustomerOutput]]:
    if state is None and isinstance(item, Tick):
        return None, []  # the clock reached someone without points: nothing to keep
    c = state or CustomerState()
    run = _Run(c, item.merchant_id, item.customer)
    # A new customer starts from the empty state: a first command that changes nothing
    # (a refused redemption) writes no balance document.
    before = _shown(c)
    if isinstance(item, Tick):
        _advance(run, item.at)
    elif isinstance(item, TierChange):
        _assign_tier(run, item)
    else:
        _apply_command(run, item)
    after = _shown(c)
    if after != before:
        c.version += 1
        run.outputs.append(_snapshot(c, run, item.at, after))
    return c, run.outputs


def _apply_command(run: _Run, item: PointsChange | Redemption | Adjustment) -> None:
    c = run.state
    event_id = item.redemption_id if isinstance(item, Redemption) else _command_id(item)
    if c.recent.seen(event_id, item.at):
        return
    _advance(run, item.at)
    c.recent.add(event_id, item.at)
    # Only commands move the duplicate window: a tick says nothing about when duplicates stop.
    c.recent.forget_before(item.at)
    c.locale = item.locale
    if isinstance(item, Redemption):
        _redeem(run, item)
    elif isinstance(item, Adjustment):
        _adjust(run, item)
    elif item.kind == Kind.REVERSE:
        _reverse(run, item)
    else:
        _credit_change(run, item)


def _assign_tier(run: _Run, change: TierChange) -> None:
    """A newer assignment replaces the multiplier; an older or repeated one changes nothing."""
    c = run.state
    if c.tier is not None and change.revision <= c.tier.revision:
        return
    _advance(run, change.at)
    c.tier = change


def _command_id(item: PointsChange | Adjustment) -> str:
    if isinstance(item, Adjustment):
        return ids.event_key(item.merchant_id, Source.ADJUSTMENT.value, item.adjustment_id)
    return item.event_id


def _check_balance(balance: int, delta: int) -> None:
    """Balances are stored as signed 64-bit integers: a change that would leave that range is
    refused with its reason before anything changes."""
    if not MIN_INT64 <= balance + delta <= MAX_INT64:
        raise InvalidEventError(
            f"balance {balance} changed by {delta:+} would leave the 64-bit integer range"
        )


# ------------------------------------------------------------------------------ commands


def _credit_change(run: _Run, change: PointsChange) -> None:
    c = run.state
    terms = change.terms
    if change.kind == Kind.EARN:
        # The terms of the latest earn are the merchant's current ones: they apply from now on.
        c.expiry, c.warning_days = terms.expiry, terms.warning_days
    points, multiplier = _boosted_earn(c, change)
    c.lifetime_earned += points
    held = terms.release_at is not None and terms.release_at > (c.clock or change.at)
    if held:
        assert terms.release_at is not None
        pending = c.held if c.held is not None else {}
        c.held = pending
        pending[change.origin] = Held.add(
            pending.get(change.origin), points, terms.release_at, change.at, terms.expiry
        )
    # An order's earn held pending says so; other sources keep their own description.
    text_key = "points.earned.pending" if held and change.source == Source.ORDER else None
    run.post(
        change.kind,
        points,
        text_key or change.text_key,
        change.at,
        change.source,
        change.source_id,
        spendable=0 if held else points,
        pending=points if held else 0,
        event_id=change.event_id,
        multiplier=multiplier,
        **_refs(change),
    )
    if not held:
        c.lots.credit(c.balance - points, c.balance, lot_expiry(change.at, c.expiry))


def _times(points: int, multiplier: Decimal) -> int:
    """floor(points x multiplier), exactly: a tier never gives a fraction or rounds up."""
    return floor_div(Decimal(points) * multiplier, ONE)


def _boosted_earn(c: CustomerState, change: PointsChange) -> tuple[int, Decimal | None]:
    """An order earn's points under the customer's tier multiplier (only order earns: bonuses
    and adjustments never are), remembering the rate for the order's reversals."""
    multiplier = c.multiplier
    if change.source != Source.ORDER or change.order_id is None or multiplier == ONE:
        return change.points, None
    boosts = {
        order_id: boost
        for order_id, boost in (c.boosts or {}).items()
        if boost.at + BOOST_MEMORY > change.at
    }
    boosts[change.order_id] = Boost(multiplier, change.points, change.at)
    c.boosts = boosts
    return _times(change.points, multiplier), multiplier


def _boosted_reversal(c: CustomerState, change: PointsChange) -> tuple[int, Decimal | None]:
    """A reversal of a multiplied order takes back multiplied points, cumulatively: the base
    points left after it, multiplied, are what the order still gives, so partial refunds add
    up to exactly a full one."""
    boost = None
    if c.boosts is not None and change.order_id is not None:
        boost = c.boosts.get(change.order_id)
    if boost is None or c.boosts is None or change.order_id is None:
        return change.points, None
    left = max(0, boost.base - change.points)
    points = _times(boost.base, boost.multiplier) - _times(left, boost.multiplier)
    if left:
        c.boosts[change.order_id] = Boost(boost.multiplier, left, boost.at)
    else:
        del c.boosts[change.order_id]
        c.boosts = c.boosts or None
    return points, boost.multiplier


def _reverse(run: _Run, change: PointsChange) -> None:
    """Pending points of the same origin go first: a refund before release never touches the
    spendable balance. What remains comes off the spendable balance, newest lots first."""
    c = run.state
    points, multiplier = _boosted_reversal(c, change)
    held = c.held.get(change.origin) if c.held else None
    from_pending = min(points, held.points) if held else 0
    if held is not None and c.held is not None:
        rest = held.take(from_pending)
        if rest is None:
            del c.held[change.origin]
            c.held = c.held or None
        else:
            c.held[change.origin] = rest
    from_spendable = points - from_pending
    c.lifetime_earned -= points
    run.post(
        Kind.REVERSE,
        points,
        change.text_key,
        change.at,
        change.source,
        change.source_id,
        spendable=-from_spendable,
        pending=-from_pending,
        event_id=change.event_id,
        multiplier=multiplier,
        **_refs(change),
    )
    c.lots.debit_newest(from_spendable, c.balance)


def _refs(change: PointsChange) -> dict[str, Any]:
    return {
        "order_id": change.order_id,
        "refund_id": change.refund_id,
        "correlation_id": change.correlation_id,
        "locale": change.locale,
    }


def _redeem(run: _Run, redemption: Redemption) -> None:
    c = run.state
    if not 0 < redemption.points <= MAX_POINTS:
        run.outputs.append(RedemptionOutcome(redemption, Status.FAILED, "invalid_points"))
        return
    if c.balance < redemption.points:
        run.outputs.append(RedemptionOutcome(redemption, Status.FAILED, "insufficient_points"))
        return
    entry = run.post(
        Kind.SPEND,
        redemption.points,
        "points.spent.redemption",
        redemption.at,
        Source.REDEMPTION,
        redemption.redemption_id,
        spendable=-redemption.points,
        event_id=ids.event_key("redemption", redemption.redemption_id),
        redemption_id=redemption.redemption_id,
        correlation_id=redemption.correlation_id,
        locale=redemption.locale,
    )
    c.lots.debit_oldest(redemption.points, c.balance)
    run.outputs.append(RedemptionOutcome(redemption, Status.COMPLETED, entry=entry))


def _adjust(run: _Run, adjustment: Adjustment) -> None:
    c = run.state
    points = adjustment.points
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        run.outputs.append(AdjustmentOutcome(adjustment, Status.FAILED, "invalid_points"))
        return
    if points < 0 and c.balance < -points:
        run.outputs.append(AdjustmentOutcome(adjustment, Status.FAILED, "insufficient_points"))
        return
    text_key = "points.adjusted.added" if points > 0 else "points.adjusted.deducted"
    entry = run.post(
        Kind.ADJUST,
        abs(points),
        text_key,
        adjustment.at,
        Source.ADJUSTMENT,
        adjustment.adjustment_id,
        spendable=points,
        event_id=_command_id(adjustment),
        adjustment_id=adjustment.adjustment_id,
        reason=adjustment.reason,
        correlation_id=adjustment.correlation_id,
        locale=adjustment.locale,
    )
    if points > 0:
        c.lots.credit(c.balance - points, c.balance, lot_expiry(adjustment.at, c.expiry))
    else:
        c.lots.debit_oldest(-points, c.balance)
    run.outputs.append(AdjustmentOutcome(adjustment, Status.COMPLETED, entry=entry))


# ---------------------------------------------------------------------------------- time


def _advance(run: _Run, now: datetime) -> None:
    """Do, in time order and each at its own time, whatever fell due up to `now`."""
    c = run.state
    if c.clock is not None and now <= c.clock:
        return
    c.clock = now
    while (due := _next_due(c)) is not None and due[0] <= now:
        at, action = due
        action(run, at, now)


def _next_due(c: CustomerState) -> tuple[datetime, Any] | None:
    candidates: list[tuple[datetime, int, Any]] = []
    if c.held:
        origin, held = min(c.held.items(), key=lambda kv: kv[1].release_at)
        candidates.append((held.release_at, 0, _releaser(origin)))
    lot = c.lots.first_dated()
    if lot is not None:
        candidates.append((lot.expires_at, 1, _expire_lot))
    unwarned = c.lots.first_unwarned()
    if unwarned is not None:
        warn_at = expiry_warning_at(unwarned.expires_at, c.warning_days)
        candidates.append((warn_at, 2, _warn_lot))
    due = inactivity_due(c.last_activity, c.expiry) if c.balance > 0 else None
    if due is not None:
        candidates.append((due, 1, _expire_balance))
        if c.warned_due != due:
            candidates.append((expiry_warning_at(due, c.warning_days), 2, _warn_balance))
    if not candidates:
        return None
    at, _order, action = min(candidates, key=lambda t: (t[0], t[1]))
    return at, action


def _releaser(origin: str) -> Any:
    def release(run: _Run, at: datetime, _now: datetime) -> None:
        c = run.state
        assert c.held is not None
        held = c.held.pop(origin)
        c.held = c.held or None
        source, _, source_id = origin.partition(":")
        run.post(
            Kind.RELEASE,
            held.points,
            "points.released.pending",
            at,
            Source.PENDING,
            origin,
            spendable=held.points,
            pending=-held.points,
            order_id=int(source_id) if source == "order" else None,
        )
        c.lots.credit(c.balance - held.points, c.balance, lot_expiry(held.earned_at, held.expiry))

    return release


def _expire_lot(run: _Run, at: datetime, _now: datetime) -> None:
    c = run.state
    lot = c.lots.pop_first_dated()
    if lot.points > 0:
        run.post(
            Kind.EXPIRE,
            lot.points,
            "points.expired.lot",
            at,
            Source.EXPIRY,
            f"lot:{at.date().isoformat()}",
            spendable=-lot.points,
        )


def _warn_lot(run: _Run, at: datetime, now: datetime) -> None:
    c = run.state
    lot = c.lots.mark_first_unwarned()
    if now < lot.expires_at:  # a warning after the fact is no warning: skipped on catch-up
        run.outputs.append(
            ExpiryWarning(run.merchant_id, run.customer, lot.points, lot.expires_at, at, c.locale)
        )


def _expire_balance(run: _Run, at: datetime, _now: datetime) -> None:
    c = run.state
    points = c.balance
    run.post(
        Kind.EXPIRE,
        points,
        "points.expired.inactivity",
        at,
        Source.EXPIRY,
        f"inactivity:{at.date().isoformat()}",
        spendable=-points,
    )
    c.lots.clear()
    c.warned_due = None


def _warn_balance(run: _Run, at: datetime, now: datetime) -> None:
    c = run.state
    due = inactivity_due(c.last_activity, c.expiry)
    assert due is not None
    c.warned_due = due
    if now < due:
        run.outputs.append(
            ExpiryWarning(run.merchant_id, run.customer, c.balance, due, at, c.locale)
        )


# ------------------------------------------------------------------------------ snapshot


# What the balance document and cache show, computed once per side of a command.
_Shown = tuple[int, int, int, int, NextExpiry | None, datetime | None]


def _shown(c: CustomerState) -> _Shown:
    return (c.balance, c.seq, c.pending, c.lifetime_earned, next_expiry(c), due_at(c))


def _snapshot(c: CustomerState, run: _Run, at: datetime, shown: _Shown) -> BalanceSnapshot:
    balance, seq, pending, lifetime_earned, expiry, due = shown
    return BalanceSnapshot(
        merchant_id=run.merchant_id,
        customer=run.customer,
        balance=balance,
        pending=pending,
        lifetime_earned=lifetime_earned,
        seq=seq,
        version=c.version,
        updated_at=max(at, c.clock or at),
        next_expiry=expiry,
        due_at=due,
    )


def next_expiry(c: CustomerState) -> NextExpiry | None:
    """The spendable points that expire first, and when."""
    candidates: list[NextExpiry] = []
    lot = c.lots.first_dated()
    if lot is not None and lot.points > 0:
        candidates.append(NextExpiry(lot.points, lot.expires_at))
    due = inactivity_due(c.last_activity, c.expiry) if c.balance > 0 else None
    if due is not None:
        candidates.append(NextExpiry(c.balance, due))
    return min(candidates, key=lambda e: e.at, default=None)


def due_at(c: CustomerState) -> datetime | None:
    due = _next_due(c)
    return due[0] if due is not None else None
