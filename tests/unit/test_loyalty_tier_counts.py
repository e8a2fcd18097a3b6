"""A merchant's customers per tier (loyalty/tier_counts.apply_count), pure: new customers, moves
between tiers, counts never negative and emptied tiers dropped, the newest time kept."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from loyalty.tier_counts import NO_TIER, CountsSnapshot, TierCounts, apply_count
from loyalty.tier_customers import CountChange

MERCHANT = "5b0e8a4c-1d2e-5f3a-9b8c-7d6e5f4a3b2c"


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, tzinfo=UTC)


def new(when: datetime) -> CountChange:
    """A customer the counts have not had (the flow's first input for them)."""
    return CountChange(MERCHANT, None, None, True, when)


def move(left: str | None, entered: str | None, when: datetime) -> CountChange:
    return CountChange(MERCHANT, left, entered, False, when)


def run(changes: Iterable[CountChange], state: TierCounts | None = None) -> CountsSnapshot:
    """The last snapshot after every change, checking each gives exactly one."""
    last = None
    for change in changes:
        state, snapshots = apply_count(state, change)
        assert len(snapshots) == 1
        last = snapshots[0]
    assert last is not None
    return last


def test_a_new_customer_is_counted_without_a_tier() -> None:
    state, [snapshot] = apply_count(None, new(at(1)))

    assert NO_TIER == ""
    assert state.counts == {NO_TIER: 1}
    assert snapshot == CountsSnapshot(MERCHANT, {NO_TIER: 1}, at(1))
    assert snapshot.customers == 1


def test_new_customers_add_up() -> None:
    snapshot = run([new(at(1)), new(at(2)), new(at(3))])

    assert snapshot.counts == {NO_TIER: 3}


def test_a_new_customer_entering_a_tier_at_once_moves_out_of_no_tier() -> None:
    # the flow's first input: arrived (no tier), then moved into Bronze
    snapshot = run([new(at(1)), move(None, "Bronze", at(1))])

    assert snapshot.counts == {"Bronze": 1}
    assert snapshot.customers == 1


def test_moves_between_tiers_carry_customers_along() -> None:
    snapshot = run(
        [
            new(at(1)),
            new(at(1)),
            new(at(1)),
            move(None, "Bronze", at(2)),
            move(None, "Bronze", at(2)),
            move("Bronze", "Silver", at(3)),
            move(None, "Gold", at(4)),  # skipping tiers is one move
        ]
    )

    assert snapshot.counts == {"Bronze": 1, "Silver": 1, "Gold": 1}
    assert snapshot.customers == 3


def test_a_demotion_to_no_tier_counts_the_customer_without_one() -> None:
    snapshot = run([new(at(1)), move(None, "Silver", at(2)), move("Silver", None, at(3))])

    assert snapshot.counts == {NO_TIER: 1}


def test_a_tier_emptied_is_removed_not_kept_at_zero() -> None:
    snapshot = run([new(at(1)), move(None, "Bronze", at(2)), move("Bronze", "Silver", at(3))])

    assert snapshot.counts == {"Silver": 1}
    assert "Bronze" not in snapshot.counts
    assert NO_TIER not in snapshot.counts


def test_leaving_a_tier_not_counted_never_goes_negative() -> None:
    # a move out of a tier these counts never had (counts started after the customer did)
    state = TierCounts({"Silver": 2}, at(1))

    state, [snapshot] = apply_count(state, move("Gold", "Silver", at(2)))

    assert snapshot.counts == {"Silver": 3}
    assert all(count > 0 for count in state.counts.values())


def test_the_same_tier_in_the_counts_keeps_its_name() -> None:
    _, [snapshot] = apply_count(TierCounts({"Gold": 1}, at(1)), move(None, "Gold", at(2)))

    assert snapshot.counts == {"Gold": 2}


def test_updated_at_is_the_latest_time_seen() -> None:
    state, [first] = apply_count(None, new(at(5)))
    state, [earlier] = apply_count(state, move(None, "Bronze", at(3)))  # arrives late
    state, [later] = apply_count(state, move("Bronze", "Silver", at(7)))

    assert first.updated_at == at(5)
    assert earlier.updated_at == at(5)
    assert later.updated_at == at(7)
    assert state.updated_at == at(7)


def test_a_state_given_is_changed_in_place_and_snapshots_are_copies() -> None:
    state = TierCounts()

    returned, [first] = apply_count(state, new(at(1)))
    _, [second] = apply_count(state, move(None, "Bronze", at(2)))

    assert returned is state
    assert state.counts == {"Bronze": 1}
    assert first.counts == {NO_TIER: 1}  # not changed by what came after
    assert second.counts == {"Bronze": 1}


def test_a_snapshot_is_for_the_changes_merchant() -> None:
    other = "0b0e8a4c-1d2e-5f3a-9b8c-7d6e5f4a3b2c"

    _, [snapshot] = apply_count(None, CountChange(other, None, None, True, at(1)))

    assert snapshot.merchant_id == other
