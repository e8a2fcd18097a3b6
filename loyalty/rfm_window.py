"""A customer's RFM window: what their orders add up to per day, and their values as of a day.

An order contributes to its event day (`processed_at`, else `created_at`, in UTC): one order
and its net spend (subtotal minus refunded subtotal) while it is paid, not a test, not
cancelled and not fully refunded; nothing otherwise. The order stage tells the customer the
change of contribution (`Contribution` before and after) whenever an order's facts change, so
the window never holds orders, only day totals: at most `lookback` days of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from loyalty.exact import EXACT, ZERO
from loyalty.policy import DEFAULT_RFM_LOOKBACK_DAYS, MAX_RFM_LOOKBACK_DAYS
from loyalty.rfm import PROSPECT, Values

DEFAULT_LOOKBACK_DAYS = DEFAULT_RFM_LOOKBACK_DAYS
MAX_LOOKBACK_DAYS = MAX_RFM_LOOKBACK_DAYS


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one order adds to its customer's day: 0 or 1 order and its net spend."""

    orders: int
    net: Decimal

    @staticmethod
    def of(
        *, paid: bool, test: bool, cancelled: bool, subtotal: Decimal, refunded: Decimal
    ) -> Contribution:
        net = EXACT.subtract(subtotal, refunded)
        fully_refunded = refunded > 0 and net <= 0
        if not paid or test or cancelled or fully_refunded:
            return NOTHING
        return Contribution(1, net)


NOTHING = Contribution(0, ZERO)


@dataclass(slots=True)
class DayTotal:
    orders: int
    net: Decimal


@dataclass
class CustomerWindow:
    """Day totals of a customer's counted orders, newest `lookback` days kept.

    `as_of` is the latest day the window has been told of (clock ticks and order days): days
    at or before `as_of - lookback` have left it."""

    days: dict[int, DayTotal] = field(default_factory=dict)
    as_of: int | None = None

    def change(self, day: int, before: Contribution, after: Contribution, lookback: int) -> None:
        """One order's contribution to `day` went from `before` to `after`."""
        if before == after:
            return
        self.advance(day, lookback)
        if self.as_of is not None and day <= self.as_of - lookback:
            return  # a late order already outside the window: nothing to count
        total = self.days.setdefault(day, DayTotal(0, ZERO))
        total.orders += after.orders - before.orders
        total.net = EXACT.add(total.net, EXACT.subtract(after.net, before.net))
        if total.orders < 0:
            raise ValueError(f"day {day} would count {total.orders} orders")
        if total.orders == 0:
            if total.net != 0:
                raise ValueError(f"day {day} has spend {total.net} but no order")
            del self.days[day]

    def advance(self, as_of: int, lookback: int) -> None:
        """Move the window's end to `as_of` if later; days that leave it are forgotten."""
        if self.as_of is not None and as_of <= self.as_of:
            return
        self.as_of = as_of
        for day in [d for d in self.days if d <= as_of - lookback]:
            del self.days[day]

    def values(self) -> Values:
        if not self.days:
            return PROSPECT
        return Values(
            last_order_day=max(self.days),
            frequency=sum(t.orders for t in self.days.values()),
            monetary=sum((t.net for t in self.days.values()), ZERO),
        )

    def next_exit(self, lookback: int) -> int | None:
        """The as-of day on which the oldest counted day leaves the window."""
        return min(self.days) + lookback if self.days else None
