"""How referral records become rows: every status ranked, each referral's last change kept."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from connectors.referral_records import RANK, latest_per_referral, upsert_params
from loyalty.referrals import Reason, Referral, Status

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
