"""Advocates' referral codes in PostgreSQL (`referral_links`), below the API and the CLI.

An advocate's code is derived (loyalty/referral_codes.py), so asking twice, or two requests
racing, end with the same code: the first insert wins and everyone else reads it back. Should a
code already be another advocate's, the next attempt's code is tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from psycopg.rows import class_row

from connectors.merchants import Pool
from loyalty import ids
from loyalty.referral_codes import LINK_PARAMETER, advocate_code
from loyalty.referral_fraud import Identity

MAX_ATTEMPTS = 8  # 31^8 codes: even a merchant with millions of advocates needs two at most

# A link comes back with its advocate's hashes, kept by the API from their own orders
# (connectors/customer_pii.py): what the referrals flow's self-referral check compares.
LINK = """l.code, l.advocate_id AS advocate, l.created_at, c.email_hash, c.name_hash,
    c.address_hash"""
# The advocate's link: theirs if they have one, else this code's, inserted; nothing when the
# code is another advocate's (or a concurrent request inserted theirs first). One round trip.
CLAIM = f"""
WITH existing AS (
    SELECT merchant_id, code, advocate_id, customer_id, created_at FROM referral_links
    WHERE merchant_id = %(merchant)s AND advocate_id = %(advocate)s
), inserted AS (
    INSERT INTO referral_links (merchant_id, code, advocate_id, customer_id)
    SELECT %(merchant)s::uuid, %(code)s::text, %(advocate)s::bigint, %(customer)s::uuid
    WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT DO NOTHING
    RETURNING merchant_id, code, advocate_id, customer_id, created_at
), found AS (
    SELECT *, false AS created FROM existing UNION ALL SELECT *, true AS created FROM inserted
)
SELECT {LINK}, l.created FROM found l LEFT JOIN customers c ON c.id = l.customer_id
"""  # noqa: S608 - LINK is a constant; every value is a parameter
BY_ADVOCATE = f"""
SELECT {LINK} FROM referral_links l LEFT JOIN customers c ON c.id = l.customer_id
WHERE l.merchant_id = %(merchant)s AND l.advocate_id = %(advocate)s
"""  # noqa: S608
# The code with how its referrals stand (the referrals flow keeps `referrals`).
BY_CODE = f"""
SELECT {LINK},
       (SELECT COALESCE(jsonb_object_agg(status, n), '{{}}'::jsonb)
        FROM (SELECT status, count(*) AS n FROM referrals r
              WHERE r.merchant_id = l.merchant_id AND r.code = l.code
              GROUP BY status) AS counted) AS referrals
FROM referral_links l LEFT JOIN customers c ON c.id = l.customer_id
WHERE l.merchant_id = %(merchant)s AND l.code = %(code)s
"""  # noqa: S608


@dataclass(frozen=True)
class ReferralLink:
    code: str
    advocate: int  # the advocate's Shopify customer id
    created_at: datetime
    # The advocate's keyed hashes as Core knows them (None: unknown)
    email_hash: str | None = None
    name_hash: str | None = None
    address_hash: str | None = None
    referrals: dict[str, int] | None = None  # by status; read with the code only
    created: bool = False  # by the statement that returned it

    @property
    def identity(self) -> Identity:
        addresses = frozenset({self.address_hash}) if self.address_hash else frozenset()
        return Identity(self.advocate, self.email_hash, self.name_hash, addresses)

    def url(self, shop: str) -> str:
        """The link an advocate shares: the store's home page naming the code, which a
        friend's order then carries in `landing_site`."""
        return f"https://{shop}/?{LINK_PARAMETER}={self.code}"


class LinkStore(Protocol):
    async def claim(self, merchant_id: str, advocate: int, code: str) -> ReferralLink | None:
        """The advocate's link if they have one, else a new one with `code` (`created`); None
        if the code is another advocate's, or the advocate's link was being created."""

    async def by_advocate(self, merchant_id: str, advocate: int) -> ReferralLink | None: ...

    async def by_code(self, merchant_id: str, code: str) -> ReferralLink | None:
        """With `referrals` counted by status (statuses without any left out)."""


class CodeSpaceError(RuntimeError):
    """No attempt gave a free code: far beyond any real merchant's number of advocates."""


async def advocate_link(
    store: LinkStore, key: bytes, merchant_id: str, advocate: int
) -> tuple[ReferralLink, bool]:
    """The advocate's link, and whether this call created it."""
    for attempt in range(MAX_ATTEMPTS):
        link = await store.claim(merchant_id, advocate, advocate_code(key, advocate, attempt))
        if link is not None:
            return link, link.created
        # Either the advocate's link was created meanwhile (found on the next round), or this
        # code is another advocate's (the next attempt's code is tried).
    raise CodeSpaceError(f"no free referral code for advocate {advocate} in {MAX_ATTEMPTS} tries")


@dataclass(frozen=True)
class PooledLinks:
    """The store on the API's connection pool (PoolTimeout or OperationalError when
    PostgreSQL cannot be reached: the API answers 503)."""

    pool: Pool

    async def claim(self, merchant_id: str, advocate: int, code: str) -> ReferralLink | None:
        customer = ids.customer_id(merchant_id, advocate)
        params = {"merchant": merchant_id, "code": code, "advocate": advocate, "customer": customer}
        return await self._one(CLAIM, params)

    async def by_advocate(self, merchant_id: str, advocate: int) -> ReferralLink | None:
        return await self._one(BY_ADVOCATE, {"merchant": merchant_id, "advocate": advocate})

    async def by_code(self, merchant_id: str, code: str) -> ReferralLink | None:
        return await self._one(BY_CODE, {"merchant": merchant_id, "code": code})

    async def _one(self, query: str, params: dict[str, object]) -> ReferralLink | None:
        async with (
            self.pool.connection() as conn,
            conn.cursor(row_factory=class_row(ReferralLink)) as cur,
        ):
            await cur.execute(query, params)
            return await cur.fetchone()
