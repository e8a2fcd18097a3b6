"""A customer's memory of the commands it applied, bounded in time and compact in size.

Duplicates of a command reach the customer stage for two reasons: the order stage re-emits its
last outputs after a crash (at-least-once), and the API re-sends a pending request when it is
retried. Both come soon after the original. So ids are remembered for WINDOW after their
command's time, as 64-bit fingerprints in sorted arrays (8 bytes each, not a set of strings),
and a command older than the window is refused rather than risk applying it twice: it goes to
the dead-letter topic with that reason. Time here is the customer's own clock (the latest
command time it has seen), so a replay forgets exactly what the first run forgot.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loyalty.errors import InvalidEventError

WINDOW = timedelta(days=30)
_EPOCH_DAY = 86_400


def fingerprint(event_id: str) -> int:
    # Ids are UUIDs (uuid5: SHA-1 based), but hashing keeps this right for any string. With
    # 64 bits, 10^5 ids in one window collide with odds of about 3 in 10^10.
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def _day(at: datetime) -> int:
    return int(at.timestamp()) // _EPOCH_DAY


@dataclass(slots=True)
class RecentIds:
    # Sorted fingerprints, and the day of each one's command at the same index.
    keys: array[int] = field(default_factory=lambda: array("Q"))
    days: array[int] = field(default_factory=lambda: array("l"))
    oldest_day: int = 0  # no key is older (lets forget() skip its scan)
    horizon_day: int = 0  # commands dated before this day can no longer be checked

    def seen(self, event_id: str, at: datetime) -> bool:
        """Whether this id was applied; raise if its command is too old to tell."""
        if _day(at) < self.horizon_day:
            raise InvalidEventError(
                f"command dated {at.isoformat()} is older than the {WINDOW.days}-day window in "
                "which duplicates are recognized"
            )
        key = fingerprint(event_id)
        i = bisect_left(self.keys, key)
        return i < len(self.keys) and self.keys[i] == key

    def add(self, event_id: str, at: datetime) -> None:
        key = fingerprint(event_id)
        i = bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.days.insert(i, _day(at))
        self.oldest_day = min(self.oldest_day, _day(at)) if len(self.keys) > 1 else _day(at)

    def forget_before(self, now: datetime) -> None:
        """Drop the ids of commands more than WINDOW older than `now`."""
        cutoff = _day(now - WINDOW)
        if cutoff <= self.horizon_day:
            return
        self.horizon_day = cutoff
        if not self.keys or self.oldest_day >= cutoff:
            return
        kept = [i for i, day in enumerate(self.days) if day >= cutoff]
        self.keys = array("Q", (self.keys[i] for i in kept))
        self.days = array("l", (self.days[i] for i in kept))
        self.oldest_day = min(self.days, default=cutoff)
