"""VIP tiers on the API's connection pool: the merchant's versions (read and added), one
customer's stored tier, the merchant's counts, and every customer for a preview. Each call
raises PoolTimeout or OperationalError when PostgreSQL cannot be reached (the API: 503)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connectors.merchants import Pool
from connectors.tier_configs import (
    ADD_PROGRAM,
    ADD_TIER,
    LOCK_MERCHANT,
    VERSIONS,
    TierVersion,
    UnknownMerchantError,
    program_params,
    tier_params,
)
from connectors.tier_records import metrics_from_document, paid_from_document
from loyalty.tier_config import TierConfig, parse_tiers
from loyalty.tier_preview import StoredCustomer

CUSTOMER = """
SELECT tier, metric, updated_at FROM customer_tiers
WHERE merchant_id = %(merchant)s AND customer_id = %(customer)s
"""
# Every customer of a merchant, the metric as text: parsed one by one while a preview runs, so
# that 100,000 customers are never all objects at once (the collector would chase them).
CUSTOMERS = "SELECT tier, metric::text FROM customer_tiers WHERE merchant_id = %(merchant)s"
COUNTS = "SELECT counts, updated_at FROM vip_tier_counts WHERE merchant_id = %(merchant)s"


@dataclass(frozen=True)
class StoredTier:
    customer: StoredCustomer
    updated_at: datetime


@dataclass(frozen=True)
class StoredCounts:
    counts: Mapping[str, int]
    updated_at: datetime


class TierStore(Protocol):
    async def versions(self, merchant_id: str) -> list[TierVersion]: ...

    async def save(self, merchant_id: str, config: TierConfig) -> TierVersion: ...

    async def customer(self, merchant_id: str, customer: int) -> StoredTier | None: ...

    async def counts(self, merchant_id: str) -> StoredCounts | None: ...

    async def customers(self, merchant_id: str) -> list[StoredRow]: ...


StoredRow = tuple[str | None, str]  # a customer_tiers row's tier and metric (JSON text)


def stored_customer(tier: str | None, metric: dict[str, Any]) -> StoredCustomer:
    points, spent = metrics_from_document(metric)
    return StoredCustomer(tier, points, spent, paid_from_document(metric))


def stored_customers(rows: Iterable[StoredRow]) -> Iterator[StoredCustomer]:
    for tier, metric in rows:
        yield stored_customer(tier, json.loads(metric))


@dataclass(frozen=True)
class PooledTiers:
    pool: Pool

    async def versions(self, merchant_id: str) -> list[TierVersion]:
        query = VERSIONS.format(where="WHERE p.merchant_id = %(merchant)s")
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(query, {"merchant": merchant_id})
            rows: list[Any] = await cur.fetchall()
        return [
            TierVersion(
                version, effective_at, parse_tiers({"metric": m, "period": p, "tiers": tiers})
            )
            for _merchant, version, m, p, effective_at, tiers in rows
        ]

    async def save(self, merchant_id: str, config: TierConfig) -> TierVersion:
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(LOCK_MERCHANT, {"merchant": merchant_id})
            if await cur.fetchone() is None:
                raise UnknownMerchantError(f"no merchant {merchant_id}")
            await cur.execute(ADD_PROGRAM, program_params(merchant_id, config))
            added: Any = await cur.fetchone()
            assert added is not None
            version, effective_at = added
            await cur.executemany(ADD_TIER, tier_params(merchant_id, version, config))
        return TierVersion(version, effective_at, config)

    async def customer(self, merchant_id: str, customer: int) -> StoredTier | None:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(CUSTOMER, {"merchant": merchant_id, "customer": customer})
            row: Any = await cur.fetchone()
        if row is None:
            return None
        tier, metric, updated_at = row
        return StoredTier(stored_customer(tier, metric), updated_at)

    async def counts(self, merchant_id: str) -> StoredCounts | None:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(COUNTS, {"merchant": merchant_id})
            row: Any = await cur.fetchone()
        return None if row is None else StoredCounts(row[0], row[1])

    async def customers(self, merchant_id: str) -> list[StoredRow]:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(CUSTOMERS, {"merchant": merchant_id})
            rows: list[Any] = await cur.fetchall()
        return rows
