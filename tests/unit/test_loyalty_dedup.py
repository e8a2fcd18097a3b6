"""A customer's memory of the commands it applied (loyalty.dedup): bounded in time and size."""

from __future__ import annotations

import hashlib
import pickle
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from loyalty.customers import CustomerState
from loyalty.dedup import WINDOW, RecentIds, fingerprint
from loyalty.errors import InvalidEventError

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MIB = 1024 * 1024


def day(days: float) -> datetime:
    return AT + timedelta(days=days)


def test_the_window_is_thirty_days() -> None:
    assert timedelta(days=30) == WINDOW


# ---------------------------------------------------------------------------- fingerprints


def test_a_fingerprint_is_the_64_bit_blake2b_of_the_id() -> None:
    event_id = "6f1b8a6e-3c1d-5b7e-9a42-1c0de5a10a17"

    expected = int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")
    assert fingerprint(event_id) == expected
    assert fingerprint(event_id) == fingerprint(str(uuid.UUID(event_id)))


def test_fingerprints_are_unsigned_64_bit_and_tell_ids_apart() -> None:
    values = [fingerprint(str(uuid.uuid5(uuid.NAMESPACE_URL, str(n)))) for n in range(10_000)]

    assert all(0 <= v < 2**64 for v in values)
    assert len(set(values)) == len(values)
    assert fingerprint("") != fingerprint(" ")
    assert fingerprint("\u05d0") == fingerprint("\u05d0")  # any text, encoded as UTF-8


# ---------------------------------------------------------------------------- remembering


def test_an_added_id_is_seen_and_another_is_not() -> None:
    recent = RecentIds()

    recent.add("a", AT)

    assert recent.seen("a", AT)
    assert recent.seen("a", day(10))
    assert not recent.seen("b", AT)


def test_keys_stay_sorted_with_the_day_of_each_at_the_same_index() -> None:
    recent = RecentIds()
    ids = [f"id-{n}" for n in range(50)]

    for n, event_id in enumerate(ids):
        recent.add(event_id, day(n % 7))

    assert list(recent.keys) == sorted(recent.keys)
    by_key = dict(zip(recent.keys, recent.days, strict=True))
    epoch_day = int(AT.timestamp()) // 86_400
    assert all(by_key[fingerprint(i)] == epoch_day + n % 7 for n, i in enumerate(ids))
    assert recent.oldest_day == epoch_day


def test_ids_older_than_the_window_are_forgotten_and_their_commands_refused() -> None:
    recent = RecentIds()
    recent.add("old", AT)
    recent.add("boundary", day(10))
    recent.add("new", day(20))

    recent.forget_before(day(40))

    assert len(recent.keys) == 2
    assert recent.seen("boundary", day(10))  # exactly 30 days: still remembered
    assert recent.seen("new", day(20))
    with pytest.raises(InvalidEventError, match="older than the 30-day window"):
        recent.seen("old", AT)
    with pytest.raises(InvalidEventError, match="2024-05-10T11:00:00"):
        recent.seen("anything", day(10) - timedelta(hours=1, days=1))


def test_the_window_counts_whole_days() -> None:
    recent = RecentIds()
    recent.add("a", datetime(2024, 5, 1, 0, 0, tzinfo=UTC))

    recent.forget_before(datetime(2024, 5, 31, 23, 59, tzinfo=UTC))

    assert recent.seen("a", datetime(2024, 5, 1, 0, 0, tzinfo=UTC))
    recent.forget_before(datetime(2024, 6, 1, 0, 0, tzinfo=UTC))
    with pytest.raises(InvalidEventError):
        recent.seen("a", datetime(2024, 5, 1, 23, 59, tzinfo=UTC))


def test_an_earlier_time_never_moves_the_window_back() -> None:
    recent = RecentIds()
    recent.add("kept", day(15))
    recent.forget_before(day(40))
    horizon = recent.horizon_day

    recent.forget_before(day(20))

    assert recent.horizon_day == horizon
    with pytest.raises(InvalidEventError):
        recent.seen("kept", day(5))
    assert recent.seen("kept", day(15))


def test_forgetting_with_nothing_old_keeps_everything() -> None:
    recent = RecentIds()
    for n in range(5):
        recent.add(f"id-{n}", day(30 + n))

    recent.forget_before(day(40))

    assert len(recent.keys) == len(recent.days) == 5


def test_forgetting_everything_leaves_an_empty_memory_that_still_works() -> None:
    recent = RecentIds()
    recent.add("a", AT)
    recent.forget_before(day(100))

    assert len(recent.keys) == 0
    recent.add("b", day(100))
    assert recent.seen("b", day(100))
    assert recent.oldest_day == int(day(100).timestamp()) // 86_400


# ---------------------------------------------------------------------------- size


def test_twelve_thousand_ids_pickle_well_under_one_mib() -> None:
    recent = RecentIds()
    for n in range(12_000):
        recent.add(str(uuid.uuid5(uuid.NAMESPACE_URL, str(n))), AT + timedelta(minutes=n))

    size = len(pickle.dumps(recent))
    state_size = len(pickle.dumps(CustomerState(recent=recent)))

    assert size < MIB / 4  # about 16 bytes an id
    assert state_size < MIB / 4
    assert pickle.loads(pickle.dumps(recent)) == recent  # noqa: S301 (our own bytes)
