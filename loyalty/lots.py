"""Points with dates: pending points waiting for release, and lots of points that expire.

A customer's spendable balance is made of dated lots (earned under `lot:DAYS` expiry) and undated
points (earned under any other terms). Only the dated lots are kept: the undated points are
whatever the balance holds beyond them, so a customer without lot expiry keeps no list at all.
Points earned on one UTC day expire together at the end of that day DAYS later, so there is at
most one lot per day: a customer's list is bounded by DAYS, not by the number of orders.

Spends and deductions take the lots that expire first; reversals take the newest lots first
(the points of the refunded order are the newest ones, as a rule); the sum of the lots never
exceeds the spendable balance, so an expiry can never take the balance below zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from loyalty.policy import Expiry, ExpiryMode


@dataclass(frozen=True, slots=True)
class Held:
    """Pending points of one origin (an order), not spendable before `release_at`."""

    points: int
    release_at: datetime
    earned_at: datetime
    expiry: Expiry  # the terms they were earned under: they decide the lot once released

    @classmethod
    def add(
        cls,
        held: Held | None,
        points: int,
        release_at: datetime,
        earned_at: datetime,
        expiry: Expiry,
    ) -> Held:
        if held is None:
            return cls(points, release_at, earned_at, expiry)
        return cls(held.points + points, max(held.release_at, release_at), held.earned_at, expiry)

    def take(self, points: int) -> Held | None:
        """What is left after `points` of it are taken back (None: nothing)."""
        left = self.points - points
        return Held(left, self.release_at, self.earned_at, self.expiry) if left > 0 else None


@dataclass(slots=True)
class Lot:
    expires_at: datetime
    points: int
    warned: bool = False


@dataclass(slots=True)
class Lots:
    dated: list[Lot] = field(default_factory=list)  # by expiry, earliest first

    def __bool__(self) -> bool:
        return bool(self.dated)

    def total(self) -> int:
        return sum(lot.points for lot in self.dated)

    def credit(self, before: int, after: int, expires_at: datetime | None) -> None:
        """Points added to a balance that was `before` and is `after`: a negative balance
        (a debt left by a reversal) is repaid first, and only the rest gets a date."""
        amount = max(0, after) - max(0, before)
        if expires_at is None or amount <= 0:
            return
        for i, lot in enumerate(self.dated):
            if lot.expires_at == expires_at:
                lot.points += amount
                return
            if lot.expires_at > expires_at:
                self.dated.insert(i, Lot(expires_at, amount))
                return
        self.dated.append(Lot(expires_at, amount))

    def debit_oldest(self, points: int, after: int) -> None:
        self._debit(points, after, reversed_order=False)

    def debit_newest(self, points: int, after: int) -> None:
        self._debit(points, after, reversed_order=True)

    def _debit(self, points: int, after: int, *, reversed_order: bool) -> None:
        # Taking min(points, lots) keeps sum(lots) <= max(0, after) whenever it held before.
        left = points
        order = range(len(self.dated) - 1, -1, -1) if reversed_order else range(len(self.dated))
        for i in order:
            if left <= 0:
                break
            taken = min(left, self.dated[i].points)
            self.dated[i].points -= taken
            left -= taken
        self.dated = [lot for lot in self.dated if lot.points > 0]
        excess = self.total() - max(0, after)
        if excess > 0:  # cannot happen while the invariant holds; kept exact regardless
            self._debit(excess, after, reversed_order=reversed_order)

    def first_dated(self) -> Lot | None:
        return self.dated[0] if self.dated else None

    def pop_first_dated(self) -> Lot:
        return self.dated.pop(0)

    def first_unwarned(self) -> Lot | None:
        return next((lot for lot in self.dated if not lot.warned), None)

    def mark_first_unwarned(self) -> Lot:
        lot = self.first_unwarned()
        assert lot is not None
        lot.warned = True
        return lot

    def clear(self) -> None:
        self.dated.clear()


def lot_expiry(earned_at: datetime, expiry: Expiry) -> datetime | None:
    """When points earned at `earned_at` expire under lot terms: the end of the UTC day DAYS
    after the day they were earned. None for undated points."""
    if expiry.mode != ExpiryMode.LOT:
        return None
    day = earned_at.astimezone(UTC).date() + timedelta(days=expiry.days + 1)
    return datetime.combine(day, time(), tzinfo=UTC)


def inactivity_due(last_activity: datetime | None, expiry: Expiry) -> datetime | None:
    """When the whole balance expires under inactivity terms, if nothing happens before."""
    if expiry.mode != ExpiryMode.INACTIVITY or last_activity is None:
        return None
    return last_activity + timedelta(days=expiry.days)


def expiry_warning_at(expires_at: datetime, warning_days: int) -> datetime:
    return expires_at - timedelta(days=warning_days)
