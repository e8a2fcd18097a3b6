"""Referrals in PostgreSQL (`referrals`, migration 0008): how the flow's records are stored.

The friend's state emits each change of a referral in order (pending, then completed or
blocked, maybe later revoked). A batch is one upsert of the latest change per referral,
applied only over an earlier one: earlier by the time of the order change that decided it,
then by status rank. So a batch written again after a crash changes nothing, and never takes a
referral back to an earlier status.

After the upsert the batch's referrals are read back as they stand (`ReferralRow`, BY_IDS), and
refresh the Redis cache (connectors/referral_cache.py): all of them, not only those the upsert
changed, so a refresh lost to a crash after the commit is made by the batch written again
(the cache's version guard drops what it already holds). The API reads the same rows, and
both show a referral as `ReferralRow.document()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from psycopg.rows import class_row

from connectors.merchants import Pool
from loyalnest.topics import REFERRAL_COMPLETED, REFERRAL_REVOKED
from loyalty import ids
from loyalty.referrals import Referral, Status
from loyalty.times import iso_z

RANK = {Status.PENDING: 0, Status.COMPLETED: 1, Status.BLOCKED: 1, Status.REVOKED: 2}
# What a stored referral is read as (ReferralRow's fields, in order).
COLUMNS = """id::text AS referral_id, code, friend_id AS friend, order_id, advocate_id AS advocate,
    status, reason, advocate_points, friend_points, release_at, decided_at, status_rank,
    created_at, updated_at"""

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
# COLUMNS is a constant and every value a parameter: the f-strings build no query from input.
# The batch's referrals as they stand after its upsert, to refresh their cache entries.
BY_IDS = f"""
SELECT merchant_id::text AS merchant_id, {COLUMNS} FROM referrals WHERE id = ANY(%(ids)s::uuid[])
"""  # noqa: S608
BY_ID = f"""
SELECT merchant_id::text AS merchant_id, {COLUMNS} FROM referrals
WHERE id = %(id)s AND merchant_id = %(merchant)s
"""  # noqa: S608
# An advocate's referrals, newest first; (created_at, id) after the previous page's last.
BY_ADVOCATE = f"""
SELECT merchant_id::text AS merchant_id, {COLUMNS} FROM referrals
WHERE merchant_id = %(merchant)s AND advocate_id = %(advocate)s
  AND (created_at, id) < (%(before_at)s::timestamptz, %(before_id)s::uuid)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
"""  # noqa: S608
# Versions count microseconds from here, so (decided_at, rank) fits in a double's 53 bits
# (Redis's Lua compares numbers as doubles) until the 2090s.
VERSION_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


SCHEMA_VERSION = "1.0.0"


def referral_event(r: Referral) -> tuple[str, dict[str, Any]] | None:
    """The event a change of a referral announces, as (contract, record): `referral.completed`
    (avro/referral_completed.avsc) or `referral.revoked` (avro/referral_revoked.avsc); None for
    a pending or blocked one. The id is one per referral and status, so a replay's events are
    recognisable repeats."""
    if r.status not in (Status.COMPLETED, Status.REVOKED) or r.advocate is None:
        return None
    contract = REFERRAL_COMPLETED if r.status is Status.COMPLETED else REFERRAL_REVOKED
    record: dict[str, Any] = {
        "event_id": ids.event_key(contract, r.referral_id),
        "referral_id": r.referral_id,
        "merchant_id": r.merchant_id,
        "code": r.code,
        "advocate_customer_id": r.advocate,
        "friend_customer_id": r.friend,
        "order_id": r.order_id,
        "advocate_points": r.advocate_points,
        "friend_points": r.friend_points,
        "schema_version": SCHEMA_VERSION,
    }
    if r.status is Status.COMPLETED:
        record |= {"release_at": r.release_at, "completed_at": r.at}
    else:
        record |= {"reason": None if r.reason is None else r.reason.value, "revoked_at": r.at}
    return contract, record


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


@dataclass(frozen=True)
class ReferralRow:
    """A referral as stored."""

    merchant_id: str
    referral_id: str
    code: str
    friend: int
    order_id: int
    advocate: int | None
    status: str
    reason: str | None
    advocate_points: int
    friend_points: int
    release_at: datetime | None
    decided_at: datetime
    status_rank: int
    created_at: datetime
    updated_at: datetime

    @property
    def version(self) -> int:
        """Grows with every change the upsert lets through: (decided_at, status_rank)."""
        micros = (self.decided_at - VERSION_EPOCH) // _MICROSECOND
        return micros * 4 + self.status_rank

    def document(self) -> dict[str, Any]:
        """The referral as the API shows it (and the cache holds it). Customers are their
        Shopify ids; the advocate is null while the code's answer is awaited."""
        return {
            "referral_id": self.referral_id,
            "code": self.code,
            "status": self.status,
            "reason": self.reason,
            "advocate": None if self.advocate is None else {"customer_id": self.advocate},
            "friend": {"customer_id": self.friend},
            "order_id": self.order_id,
            "rewards": {
                "advocate_points": self.advocate_points,
                "friend_points": self.friend_points,
                "pending_until": None if self.release_at is None else iso_z(self.release_at),
                "reversed": self.status == Status.REVOKED.value,
            },
            "decided_at": iso_z(self.decided_at),
            "created_at": iso_z(self.created_at),
            "updated_at": iso_z(self.updated_at),
        }


_MICROSECOND = timedelta(microseconds=1)


# The first page's bound: after every referral ever created.
NEWEST = (datetime(9999, 1, 1, tzinfo=UTC), "ffffffff-ffff-ffff-ffff-ffffffffffff")
Page = tuple[datetime, str]  # (created_at, referral_id) of the previous page's last row


class ReferralReads(Protocol):
    async def by_id(self, merchant_id: str, referral_id: str) -> ReferralRow | None: ...

    async def by_advocate(
        self, merchant_id: str, advocate: int, before: Page, limit: int
    ) -> list[ReferralRow]:
        """The advocate's referrals created before `before`, newest first."""


@dataclass(frozen=True)
class PooledReferrals:
    """Reads on the API's connection pool (PoolTimeout or OperationalError when PostgreSQL
    cannot be reached: the API answers 503)."""

    pool: Pool

    async def by_id(self, merchant_id: str, referral_id: str) -> ReferralRow | None:
        rows = await self._rows(BY_ID, {"id": referral_id, "merchant": merchant_id})
        return rows[0] if rows else None

    async def by_advocate(
        self, merchant_id: str, advocate: int, before: Page, limit: int
    ) -> list[ReferralRow]:
        params = {
            "merchant": merchant_id,
            "advocate": advocate,
            "before_at": before[0],
            "before_id": before[1],
            "limit": limit,
        }
        return await self._rows(BY_ADVOCATE, params)

    async def _rows(self, query: str, params: dict[str, object]) -> list[ReferralRow]:
        async with (
            self.pool.connection() as conn,
            conn.cursor(row_factory=class_row(ReferralRow)) as cur,
        ):
            await cur.execute(query, params)
            return await cur.fetchall()
