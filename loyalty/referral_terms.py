"""A merchant's referral terms: what a qualifying referral pays, and when.

- `advocate_points`: what the advocate gets for a friend's qualifying order (default 500);
- `friend_points`: what the friend gets for it (default 0: many programs give the friend a
  discount at checkout instead, which Shopify handles);
- `min_subtotal`: the smallest subtotal after discounts that qualifies (default 0.00);
- `review_days`: days both rewards stay pending before they can be spent (default 0), so that
  a refund within a store's return window takes them back before anyone spends them.

Like the points terms (loyalty/policy.py), they are set per merchant in PostgreSQL
`program_settings` and apply from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from loyalty.errors import InvalidEventError
from loyalty.fields import SETTING_MONEY, preview
from loyalty.policy import parse_days

MAX_REFERRAL_POINTS = 1_000_000
MAX_REVIEW_DAYS = 365
# The column is numeric(12, 2): ten digits before the point.
MAX_MIN_SUBTOTAL = Decimal("9999999999.99")


@dataclass(frozen=True)
class ReferralTerms:
    advocate_points: int = 500
    friend_points: int = 0
    min_subtotal: Decimal = Decimal("0.00")
    review_days: int = 0


DEFAULT_REFERRAL_TERMS = ReferralTerms()


def referral_points(text: str, name: str) -> int:
    """Points a referral pays (`name` says whose), from a flag: 0 to 1,000,000."""
    if not (text.isascii() and text.isdigit()) or len(text) > 7 or int(text) > MAX_REFERRAL_POINTS:
        raise InvalidEventError(
            f"{name} must be an integer from 0 to {MAX_REFERRAL_POINTS:,}, got {preview(text)}"
        )
    return int(text)


def min_subtotal(text: str) -> Decimal:
    """The minimum qualifying subtotal, from a flag: a plain decimal, at most 2 places."""
    if not SETTING_MONEY.fullmatch(text):
        raise InvalidEventError(
            f"referral minimum subtotal must be a decimal from 0 to {MAX_MIN_SUBTOTAL} with at "
            f"most 2 decimal places, got {preview(text)}"
        )
    return Decimal(text).quantize(Decimal("0.01"))


def review_days(text: str) -> int:
    return parse_days(text, "referral review days", MAX_REVIEW_DAYS)
