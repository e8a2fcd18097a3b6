"""A merchant's program terms: how points are earned, held and lost.

The API attaches the terms in force when it accepts a webhook; the order stage copies them onto
the earn it posts; the customer stage keeps them with the points. So a change of terms applies
from then on and never rewrites history: points already earned keep the terms they were earned
under, and a replay of the logs makes the same decisions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from loyalty.errors import InvalidEventError

MAX_PENDING_DAYS = 365
MAX_EXPIRY_DAYS = 3650
MAX_WARNING_DAYS = 365
DEFAULT_WARNING_DAYS = 14
DEFAULT_RFM_LOOKBACK_DAYS = 365  # RFM's window (loyalty/rfm_window.py)
MAX_RFM_LOOKBACK_DAYS = 3650
_EXPIRY = re.compile(r"none|(inactivity|lot):([1-9][0-9]{0,3})", re.ASCII)


class ExpiryMode(StrEnum):
    NONE = "none"
    INACTIVITY = "inactivity"  # the whole balance, after DAYS with no earn and no spend
    LOT = "lot"  # each day's earns, DAYS after they were earned; spends take the oldest first


@dataclass(frozen=True)
class Expiry:
    mode: ExpiryMode = ExpiryMode.NONE
    days: int = 0

    def __str__(self) -> str:
        return self.mode.value if self.mode == ExpiryMode.NONE else f"{self.mode.value}:{self.days}"

    @classmethod
    @functools.lru_cache(maxsize=256)  # one shared value per text: states keep a reference
    def parse(cls, text: str) -> Expiry:
        """`none`, `inactivity:DAYS` or `lot:DAYS` (DAYS from 1 to 3650)."""
        match = _EXPIRY.fullmatch(text)
        if match is None or (match[2] is not None and int(match[2]) > MAX_EXPIRY_DAYS):
            raise InvalidEventError(
                f"expiry must be none, inactivity:DAYS or lot:DAYS with DAYS from 1 to "
                f"{MAX_EXPIRY_DAYS}, got {text[:40]!r}"
            )
        if match[1] is None:
            return NO_EXPIRY
        return cls(ExpiryMode(match[1]), int(match[2]))


NO_EXPIRY = Expiry()


def terms_problem(pending_days: int, expiry: Expiry, warning_days: int) -> str | None:
    """Why these terms cannot work together, or None. Checked when a merchant sets them (the
    engine still applies whatever a record carries, so older records keep working):

    - points would expire before they could be spent: pending at least as long as lot expiry;
    - the warning would be due before the points were earned (lots) or before the last
      activity that sets the due date (inactivity): warning days at least the expiry days.
    """
    if expiry.mode == ExpiryMode.LOT and pending_days >= expiry.days:
        return (
            f"pending days ({pending_days}) must be fewer than the lot expiry days "
            f"({expiry.days}): points would expire before they could be spent"
        )
    if expiry.mode != ExpiryMode.NONE and warning_days >= expiry.days:
        return (
            f"expiry warning days ({warning_days}) must be fewer than the expiry days "
            f"({expiry.days})"
        )
    return None


@dataclass(frozen=True)
class Policy:
    """The merchant's terms, attached to each webhook when it was received."""

    points_per_unit: Decimal = Decimal(1)
    locale: str = "en"
    pending_days: int = 0
    expiry: Expiry = NO_EXPIRY
    warning_days: int = DEFAULT_WARNING_DAYS
    rfm_lookback_days: int = DEFAULT_RFM_LOOKBACK_DAYS


def days_in_range(value: int, name: str, highest: int, lowest: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise InvalidEventError(f"{name} must be an integer from {lowest} to {highest}")
    return value


def parse_days(text: str, name: str, highest: int, lowest: int = 0) -> int:
    """A day count from a header or a command-line flag: ASCII digits only."""
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        raise InvalidEventError(
            f"{name} must be an integer from {lowest} to {highest}, got {text[:20]!r}"
        )
    return days_in_range(int(text), name, highest, lowest)
