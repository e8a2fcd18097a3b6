"""Decimal arithmetic that is exact or loud.

Python's default decimal context keeps 28 significant digits and rounds silently beyond them.
Bounded money (23 significant digits) times a bounded rate needs more, so the rules compute in
a context wide enough for every bounded input, and trap any inexact result instead of rounding.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow

EXACT = Context(prec=80, traps=[Inexact, InvalidOperation, Overflow])
ZERO = Decimal(0)


def floor_div(numerator: Decimal, denominator: Decimal) -> int:
    """floor(numerator / denominator), exactly, whatever the digits (integer arithmetic)."""
    n_num, n_den = numerator.as_integer_ratio()
    d_num, d_den = denominator.as_integer_ratio()
    return (n_num * d_den) // (n_den * d_num)
