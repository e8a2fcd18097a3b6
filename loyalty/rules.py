"""Points arithmetic: what an order earns and what a refund takes back.

Points are whole numbers, always rounded down (the customer never gets a fraction the merchant
did not promise). Reversals are computed cumulatively (the total reversed so far follows the
total refunded so far), so several partial refunds never drift from one equal full refund.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

from loyalty.orders import InvalidEventError, money

ZERO = Decimal(0)


def floor_points(amount: Decimal) -> int:
    return int(amount.to_integral_value(rounding=ROUND_FLOOR))


def earn_basis(order: dict[str, Any]) -> Decimal:
    """subtotal_price (after discounts, before shipping), less tax when prices include it."""
    basis = money(order, "subtotal_price")
    if order.get("taxes_included") is True:
        basis -= money(order, "total_tax")
    return max(basis, ZERO)


def points_for(basis: Decimal, points_per_unit: Decimal) -> int:
    if basis <= ZERO or points_per_unit <= ZERO:
        return 0
    return floor_points(basis * points_per_unit)


def refund_basis(refund: dict[str, Any], *, taxes_included: bool) -> Decimal:
    """The refunded amount on the same footing as the earn basis (line subtotals, net of tax)."""
    lines = refund.get("refund_line_items") or []
    if not isinstance(lines, list):
        raise InvalidEventError("refund_line_items must be a list")
    total = ZERO
    for line in lines:
        if not isinstance(line, dict):
            raise InvalidEventError("refund_line_items entries must be objects")
        amount = money(line, "subtotal")
        if taxes_included and line.get("total_tax") is not None:
            amount -= money(line, "total_tax")
        total += amount
    return max(total, ZERO)


def reversal_target(earned: int, basis: Decimal, refunded: Decimal) -> int:
    """How many of `earned` points a total refund of `refunded` (out of `basis`) takes back."""
    if earned <= 0 or refunded <= ZERO:
        return 0
    if basis <= ZERO or refunded >= basis:
        return earned
    return min(earned, floor_points(Decimal(earned) * refunded / basis))
