"""Referrals in PostgreSQL (`referrals`, migration 0008): how the flow's records are stored.

The friend's state emits each change of a referral in order (pending, then completed or
blocked, maybe later revoked). A batch is one upsert of the latest change per referral,
applied only over an earlier one: earlier by the time of the order change that decided it,
then by status rank. So a batch written again after a crash changes nothing, and never takes a
referral back to an earlier status.
"""

from __future__ import annotations

from typing import Any

from loyalty import ids
from loyalty.referrals import Referral, Status

RANK = {Status.PENDING: 0, Status.COMPLETED: 1, Status.BLOCKED: 1, Status.REVOKED: 2}

UPSERT = """
INSERT INTO referrals AS r
    (id, merchant_id, customer_id, friend_id, code, order_id, advocate_id, status, reason,
     advocate_points, friend_points, release_at, decided_at, status_rank)
SELECT * FROM unnest(%(ids)s::uuid[], %(merchants)s::uuid[], %(customers)s::uuid[],
                     %(friends)s::bigint[], %(codes)s::text[], %(orders)s::bigint[],
                     %(advocates)s::bigint[], %(statuses)s::text[], %(reasons)s::text[],
                     %(advocate_points)s::int[], %(friend_points)s::int[],
                     %(release_at)s::timestamptz[], %(decided_at)s::timestamptz[],
                     %(ranks)s::smallint[])
ON CONFLICT (id) DO UPDATE SET
    advocate_id = EXCLUDED.advocate_id,
    status = EXCLUDED.status,
    reason = EXCLUDED.reason,
    advocate_points = EXCLUDED.advocate_points,
    friend_points = EXCLUDED.friend_points,
    release_at = EXCLUDED.release_at,
    decided_at = EXCLUDED.decided_at,
    status_rank = EXCLUDED.status_rank
WHERE (r.decided_at, r.status_rank) < (EXCLUDED.decided_at, EXCLUDED.status_rank)
"""


def latest_per_referral(records: list[Referral]) -> list[Referral]:
    """Each referral's last change in the batch (a statement may touch a row once)."""
    latest: dict[str, Referral] = {}
    for record in records:
        latest[record.referral_id] = record
    return list(latest.values())


def upsert_params(records: list[Referral]) -> dict[str, list[Any]]:
    return {
        "ids": [r.referral_id for r in records],
        "merchants": [r.merchant_id for r in records],
        "customers": [ids.customer_id(r.merchant_id, r.friend) for r in records],
        "friends": [r.friend for r in records],
        "codes": [r.code for r in records],
        "orders": [r.order_id for r in records],
        "advocates": [r.advocate for r in records],
        "statuses": [r.status.value for r in records],
        "reasons": [None if r.reason is None else r.reason.value for r in records],
        "advocate_points": [r.advocate_points for r in records],
        "friend_points": [r.friend_points for r in records],
        "release_at": [r.release_at for r in records],
        "decided_at": [r.at for r in records],
        "ranks": [RANK[r.status] for r in records],
    }
