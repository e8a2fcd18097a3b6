"""Referral fraud checks that compare what an order says with what is known: pure, on hashes.

Each check that blocks a referral names its reason code, recorded on the referral (Talon.One's
explicit codes, DOMAIN.md). The checks here need no history beyond their arguments:
- `self_referral`: the friend is the advocate, or shares the advocate's normalized-email, name
  or address hash (loyalty/pii.py), as a second account of one person would;
- `ip_velocity`: the referral would be the 10th or later from one browser-IP hash within 7
  days (Smile's rule of thumb), over a bounded record of that IP's recent referrals.
`not_first_order` and `already_referred` depend on the friend's history, kept by the friend's
state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


class Block(Enum):
    SELF_REFERRAL = "self_referral"
    NOT_FIRST_ORDER = "not_first_order"
    IP_VELOCITY = "ip_velocity"
    ALREADY_REFERRED = "already_referred"


@dataclass(frozen=True)
class Identity:
    """Who placed an order (or owns a code), as hashes; None where the order did not say."""

    customer: int
    email_hash: str | None = None
    name_hash: str | None = None
    address_hashes: frozenset[str] = frozenset()


def is_self_referral(advocate: Identity, friend: Identity) -> bool:
    if advocate.customer == friend.customer:
        return True
    same = (
        advocate.email_hash is not None and advocate.email_hash == friend.email_hash,
        advocate.name_hash is not None and advocate.name_hash == friend.name_hash,
        bool(advocate.address_hashes & friend.address_hashes),
    )
    return any(same)


IP_WINDOW = timedelta(days=7)
IP_LIMIT = 10  # the referral that makes this many within the window is blocked
# Referrals remembered per IP: enough to decide for any referral not older than the newest
# ones; an IP past the limit stays blocked whatever the record forgets.
IP_MEMORY = 4 * IP_LIMIT


@dataclass(frozen=True)
class IpReferrals:
    """An IP's recent referrals (their orders' event times), newest last, at most IP_MEMORY;
    and the ids of the last IP_MEMORY counted, so that a claim delivered again (its friend's
    state re-sends it after a crash) is not counted twice."""

    times: tuple[datetime, ...] = ()
    referral_ids: tuple[str, ...] = ()

    def blocks(self, at: datetime, referral_id: str) -> bool:
        """Whether the referral at `at` from this IP is one too many (itself not counted, if
        it was before)."""
        within = sum(1 for t in self.times if at - IP_WINDOW < t <= at)
        if referral_id in self.referral_ids:
            within -= 1
        return within + 1 >= IP_LIMIT

    def with_referral(self, at: datetime, referral_id: str) -> IpReferrals:
        """The record after a referral at `at` (blocked or not: each one is an attempt)."""
        if referral_id in self.referral_ids:
            return self
        kept = sorted((*self.times, at))
        newest = kept[-1]
        recent = [t for t in kept if t > newest - IP_WINDOW]
        ids = (*self.referral_ids, referral_id)[-IP_MEMORY:]
        return IpReferrals(tuple(recent[-IP_MEMORY:]), ids)
