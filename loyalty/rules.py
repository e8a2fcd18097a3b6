"""Points arithmetic: what an order earns and what a refund takes back.

Points are whole numbers, always rounded down (the customer never gets a fraction the merchant
did not promise). Reversals are computed cumulatively (the total reversed so far follows the
total refunded so far), so several partial refunds never drift from one equal full refund.
Every step is exact (`loyalty.exact`): no rounding but the final floor.
"""

from __future__ import annotations

from decimal import Decimal

from loyalty.exact import EXACT, ZERO, floor_div
from loyalty.orders import OrderFacts

ONE = Decimal(1)


def floor_points(amount: Decimal) -> int:
    return floor_div(amount, ONE)


def earn_basis(order: OrderFacts) -> Decimal:
    """subtotal_price (after discounts, before shipping), less tax when prices include it."""
    basis = order.subtotal
    if order.taxes_included and order.total_tax is not None:
        basis = EXACT.subtract(basis, order.total_tax)
    return max(basis, ZERO)


def points_for(basis: Decimal, points_per_unit: Decimal) -> int:
    if basis <= ZERO or points_per_unit <= ZERO:
        return 0
    return floor_points(EXACT.multiply(basis, points_per_unit))


def refund_basis(subtotal: Decimal, tax: Decimal, *, taxes_included: bool) -> Decimal:
    """The refunded amount on the same footing as the earn basis (line subtotals, net of tax)."""
    return max(EXACT.subtract(subtotal, tax) if taxes_included else subtotal, ZERO)


def reversal_target(earned: int, basis: Decimal, refunded: Decimal) -> int:
    """How many of `earned` points a total refund of `refunded` (out of `basis`) takes back."""
    if earned <= 0 or refunded <= ZERO:
        return 0
    if basis <= ZERO or refunded >= basis:
        return earned
    return min(earned, floor_div(EXACT.multiply(Decimal(earned), refunded), basis))
