"""Referral fraud checks on hashes: self-referral and a browser IP's velocity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loyalty.pii import Hasher, merchant_key
from loyalty.referral_fraud import IP_LIMIT, IP_MEMORY, Identity, IpReferrals, is_self_referral

HASH = Hasher(merchant_key("secrets", "merchant-a"))
ADVOCATE = Identity(
    1,
    HASH.email("anna.mueller@gmail.com"),
    HASH.name("Anna", "Müller"),
    frozenset({HASH.address({"address1": "1 Main St", "zip": "AB1 2CD"})}),
)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("friend", "blocked"),
    [
        (Identity(1), True),  # the advocate themself
        (Identity(2, email_hash=HASH.email("Anna.Mueller+friend@googlemail.com")), True),
        (Identity(2, name_hash=HASH.name(" ANNA ", "müller")), True),
        (Identity(2, address_hashes=frozenset(ADVOCATE.address_hashes)), True),
        (
            Identity(
                2,
                HASH.email("bob@example.com"),
                HASH.name("Bob", "Stone"),
                frozenset({HASH.address({"address1": "2 Side Rd", "zip": "AB1 2CD"})}),
            ),
            False,
        ),
        (Identity(2), False),  # a friend the order says nothing about
    ],
)
def test_a_friend_who_is_the_advocate_by_any_hash_is_a_self_referral(
    friend: Identity, blocked: bool
) -> None:
    assert is_self_referral(ADVOCATE, friend) is blocked


def test_an_advocate_without_hashes_matches_only_by_customer() -> None:
    assert not is_self_referral(Identity(1), Identity(2))


NEW = "a-referral-not-counted-yet"


def referrals(times: list[datetime]) -> IpReferrals:
    record = IpReferrals()
    for n, at in enumerate(times):
        record = record.with_referral(at, f"r{n}")
    return record


def test_the_tenth_referral_within_seven_days_is_blocked() -> None:
    nine = referrals([T0 + timedelta(hours=n) for n in range(IP_LIMIT - 1)])
    eight = referrals([T0 + timedelta(hours=n) for n in range(IP_LIMIT - 2)])

    assert not eight.blocks(T0 + timedelta(days=1), NEW)  # the ninth passes
    assert nine.blocks(T0 + timedelta(days=1), NEW)
    assert not nine.blocks(
        T0 + timedelta(days=7, hours=1), NEW
    )  # the first two have left the window


def test_a_late_referral_counts_only_those_before_it_within_its_week() -> None:
    nine = referrals([T0 + timedelta(days=3, hours=n) for n in range(IP_LIMIT - 1)])

    assert not nine.blocks(T0, NEW)  # all nine came after it
    assert nine.blocks(T0 + timedelta(days=4), NEW)


def test_a_claim_counted_before_is_not_counted_again() -> None:
    nine = referrals([T0 + timedelta(hours=n) for n in range(IP_LIMIT - 1)])
    eight = referrals([T0 + timedelta(hours=n) for n in range(IP_LIMIT - 2)])

    # The eighth referral's claim, delivered again: the same record, and the same answer.
    assert eight.with_referral(T0 + timedelta(hours=7), "r7") == eight
    assert not eight.blocks(T0 + timedelta(hours=7), "r7")
    # Counted once, the ninth still passes; the tenth (a new referral) is blocked.
    assert not eight.blocks(T0 + timedelta(hours=8), "r8")
    assert nine.blocks(T0 + timedelta(hours=9), NEW)


def test_the_record_stays_bounded_and_keeps_the_newest_week() -> None:
    burst = referrals([T0 + timedelta(minutes=n) for n in range(500)])
    later = burst.with_referral(T0 + timedelta(days=30), NEW)

    assert len(burst.times) == IP_MEMORY
    assert burst.times[-1] == T0 + timedelta(minutes=499)
    assert burst.blocks(T0 + timedelta(minutes=500), NEW)
    assert later.times == (T0 + timedelta(days=30),)
