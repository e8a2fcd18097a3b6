"""How referral records become rows: every status ranked, each referral's last change kept."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from connectors.referral_records import RANK, latest_per_referral, referral_event, upsert_params
from loyalnest.topics import REFERRAL_COMPLETED, REFERRAL_REVOKED
from loyalty.referrals import Reason, Referral, Status, referral_id
from tests.unit.avro_records import avro_round_trip

AT = datetime(2026, 5, 1, tzinfo=UTC)
MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
FIRST = Referral("r1", MERCHANT, "ABCD2345", 9, 1, Status.PENDING, AT)


def test_every_status_has_a_rank_and_revoked_comes_last() -> None:
    assert set(RANK) == set(Status)
    assert RANK[Status.PENDING] < RANK[Status.COMPLETED] < RANK[Status.REVOKED]


def test_each_referrals_last_change_is_kept_in_arrival_order() -> None:
    done = replace(FIRST, status=Status.BLOCKED, reason=Reason.SELF_REFERRAL)
    other = replace(FIRST, referral_id="r2")

    latest = latest_per_referral([FIRST, other, done])

    assert latest == [done, other]
    params = upsert_params(latest)
    assert params["statuses"] == ["blocked", "pending"]
    assert params["reasons"] == ["self_referral", None]
    assert params["ranks"] == [1, 0]


def test_a_completion_and_a_revocation_are_events_that_fit_their_schemas() -> None:
    rid = referral_id(MERCHANT, 9, 1)
    completed = replace(
        FIRST,
        referral_id=rid,
        status=Status.COMPLETED,
        advocate=5,
        advocate_points=500,
        friend_points=50,
        release_at=AT + timedelta(days=14),
    )
    revoked = replace(
        completed, status=Status.REVOKED, reason=Reason.REFUNDED, at=AT + timedelta(1)
    )

    events = [referral_event(completed), referral_event(revoked)]

    assert [e[0] for e in events if e] == [REFERRAL_COMPLETED, REFERRAL_REVOKED]
    (_, done), (_, taken) = (e for e in events if e)
    assert avro_round_trip(REFERRAL_COMPLETED, done) == done
    assert avro_round_trip(REFERRAL_REVOKED, taken) == taken
    assert (done["release_at"], done["completed_at"]) == (AT + timedelta(days=14), AT)
    assert (taken["reason"], taken["revoked_at"], taken["advocate_points"]) == (
        "refunded",
        AT + timedelta(1),
        500,
    )
    assert done["event_id"] != taken["event_id"]
    assert referral_event(completed) == events[0]  # a replay's event is the same


def test_pending_and_blocked_referrals_announce_nothing() -> None:
    blocked = replace(FIRST, status=Status.BLOCKED, reason=Reason.IP_VELOCITY, advocate=5)

    assert referral_event(FIRST) is None
    assert referral_event(blocked) is None
