"""Customers' personal data in PostgreSQL `customers`, the one place raw PII is kept: the email
encrypted with pgcrypto (under LOYALNEST_SECRETS_KEY, as merchants' webhook secrets are), and
the keyed hashes of the normalized email, name and default address (loyalty/pii.py).

The API hands each order's data to a `PiiWriter` and goes on: the writer upserts what came in
the last moments as one statement (a write per webhook halved the API's ingest rate). It is
best effort by design: ingestion never waits for PostgreSQL, and data lost to an outage or a
crash comes again with the customer's next order. A row changes only when a hash does
(pgcrypto's ciphertexts differ on every call, the hashes do not); what an order does not say is
kept. The rows a write creates or changes are announced (`customer.created`,
`customer.updated`), as best effort as the write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from prometheus_client import Counter
from psycopg.rows import class_row

from connectors.customer_records import COLUMNS, CustomerRow
from connectors.merchants import Pool
from loyalty import ids
from loyalty.pii import PersonalData

log = logging.getLogger("loyalnest.customer_pii")

# Customers whose data this process wrote last, so repeat webhooks of one order (created, paid,
# updated) cost one write: enough for the orders of a few busy minutes.
RECENT = 50_000
MAX_BATCH = 500
DELAY_SECONDS = 0.05  # what the API gathers before writing
MAX_WAITING = 20_000  # beyond this (PostgreSQL stalled), new data is dropped, and counted

NOT_KEPT = Counter(
    "loyalnest_customer_pii_errors_total",
    "Customers' personal data not stored (PostgreSQL away, or too much waiting)",
)

# Unique ids per statement (ON CONFLICT may touch a row once): the writer keeps the latest.
UPSERT = f"""
INSERT INTO customers AS c
    (id, merchant_id, shopify_customer_id, email, email_hash, name_hash, address_hash)
SELECT u.id, u.merchant, u.customer,
       CASE WHEN u.email IS NOT NULL THEN pgp_sym_encrypt(u.email, %(key)s) END,
       u.email_hash, u.name_hash, u.address_hash
FROM unnest(%(ids)s::uuid[], %(merchants)s::uuid[], %(customers)s::bigint[], %(emails)s::text[],
            %(email_hashes)s::text[], %(name_hashes)s::text[], %(address_hashes)s::text[])
     AS u(id, merchant, customer, email, email_hash, name_hash, address_hash)
ON CONFLICT (id) DO UPDATE SET
    email = COALESCE(EXCLUDED.email, c.email),
    email_hash = COALESCE(EXCLUDED.email_hash, c.email_hash),
    name_hash = COALESCE(EXCLUDED.name_hash, c.name_hash),
    address_hash = COALESCE(EXCLUDED.address_hash, c.address_hash)
WHERE (EXCLUDED.email_hash IS NOT NULL AND EXCLUDED.email_hash IS DISTINCT FROM c.email_hash)
   OR (EXCLUDED.name_hash IS NOT NULL AND EXCLUDED.name_hash IS DISTINCT FROM c.name_hash)
   OR (EXCLUDED.address_hash IS NOT NULL AND EXCLUDED.address_hash IS DISTINCT FROM c.address_hash)
RETURNING {COLUMNS}, (xmax = 0) AS created
"""  # noqa: S608 - COLUMNS is a constant; every value is a parameter

Owned = tuple[str, PersonalData]  # (merchant id, the customer's data)
Write = Callable[[list[Owned]], Awaitable[None]]
# Told the rows a write created or changed (to announce them); never raises.
Announce = Callable[[list[CustomerRow]], Awaitable[None]]


def upsert_params(batch: list[Owned], secrets_key: str) -> dict[str, Any]:
    return {
        "key": secrets_key,
        "ids": [ids.customer_id(m, d.customer) for m, d in batch],
        "merchants": [m for m, _ in batch],
        "customers": [d.customer for _, d in batch],
        "emails": [d.email for _, d in batch],
        "email_hashes": [d.email_hash for _, d in batch],
        "name_hashes": [d.name_hash for _, d in batch],
        "address_hashes": [d.address_hash for _, d in batch],
    }


def postgres_write(pool: Pool, secrets_key: str, announce: Announce | None = None) -> Write:
    async def write(batch: list[Owned]) -> None:
        async with (
            pool.connection() as conn,
            conn.cursor(row_factory=class_row(CustomerRow)) as cur,
        ):
            await cur.execute(UPSERT, upsert_params(batch, secrets_key))
            changed = await cur.fetchall()
        if changed and announce is not None:
            await announce(changed)

    return write


class PiiKeeper(Protocol):
    def keep(self, merchant_id: str, data: PersonalData) -> None: ...

    async def close(self) -> None: ...


@dataclass
class PiiWriter:
    """Gathers customers' data for DELAY_SECONDS, then writes it, at most MAX_BATCH a time."""

    write: Write
    delay: float = DELAY_SECONDS
    _waiting: dict[tuple[str, int], PersonalData] = field(default_factory=dict)
    _recent: OrderedDict[tuple[str, int], PersonalData] = field(default_factory=OrderedDict)
    _task: asyncio.Task[None] | None = None

    def keep(self, merchant_id: str, data: PersonalData) -> None:
        """Queue the data (the latest per customer wins); never waits, never raises."""
        key = (merchant_id, data.customer)
        if self._recent.get(key) == data:
            return
        if len(self._waiting) >= MAX_WAITING and key not in self._waiting:
            NOT_KEPT.inc()
            return
        self._waiting[key] = data
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def flush(self) -> None:
        """Write everything waiting now (at shutdown, and in tests)."""
        while self._waiting:
            batch = list(self._waiting.items())[:MAX_BATCH]
            for key, _ in batch:
                del self._waiting[key]
            await self._write([(key[0], data) for key, data in batch])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.flush()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.delay)
        await self.flush()

    async def _write(self, batch: list[Owned]) -> None:
        try:
            await self.write(batch)
        except psycopg.Error as exc:  # PoolTimeout is an OperationalError too
            NOT_KEPT.inc(len(batch))
            log.warning("%d customers' personal data not stored: %s", len(batch), exc)
            return
        for merchant_id, data in batch:
            key = (merchant_id, data.customer)
            self._recent[key] = data
            self._recent.move_to_end(key)
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)
