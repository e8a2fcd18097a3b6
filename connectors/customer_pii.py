"""Customers' personal data in PostgreSQL `customers`, the one place raw PII is kept: the email
encrypted with pgcrypto (under LOYALNEST_SECRETS_KEY, as merchants' webhook secrets are), and
the keyed hashes of the normalized email, name and default address (loyalty/pii.py).

The API writes it when it accepts an order webhook, before producing the order redacted. A row
changes only when a hash does (pgcrypto's ciphertexts differ on every call, the hashes do not),
and what an order does not say is kept.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from loyalty import ids
from loyalty.pii import PersonalData

# Customers whose data this process wrote last, so repeat webhooks of one order (created, paid,
# updated) cost one write: enough for the orders of a few busy minutes.
RECENT = 50_000

UPSERT = """
INSERT INTO customers AS c
    (id, merchant_id, shopify_customer_id, email, email_hash, name_hash, address_hash)
VALUES (%(id)s, %(merchant)s, %(customer)s,
        CASE WHEN %(email)s::text IS NOT NULL THEN pgp_sym_encrypt(%(email)s::text, %(key)s) END,
        %(email_hash)s, %(name_hash)s, %(address_hash)s)
ON CONFLICT (id) DO UPDATE SET
    email = COALESCE(EXCLUDED.email, c.email),
    email_hash = COALESCE(EXCLUDED.email_hash, c.email_hash),
    name_hash = COALESCE(EXCLUDED.name_hash, c.name_hash),
    address_hash = COALESCE(EXCLUDED.address_hash, c.address_hash)
WHERE (EXCLUDED.email_hash IS NOT NULL AND EXCLUDED.email_hash IS DISTINCT FROM c.email_hash)
   OR (EXCLUDED.name_hash IS NOT NULL AND EXCLUDED.name_hash IS DISTINCT FROM c.name_hash)
   OR (EXCLUDED.address_hash IS NOT NULL AND EXCLUDED.address_hash IS DISTINCT FROM c.address_hash)
"""


class PiiStore(Protocol):
    async def save(self, merchant_id: str, data: PersonalData) -> None: ...


Pool = AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]]


@dataclass
class PooledPii:
    """The store on the API's pool (OperationalError or PoolTimeout when PostgreSQL is away)."""

    pool: Pool
    secrets_key: str
    _recent: OrderedDict[tuple[str, int], PersonalData] = field(default_factory=OrderedDict)

    async def save(self, merchant_id: str, data: PersonalData) -> None:
        seen = (merchant_id, data.customer)
        if self._recent.get(seen) == data:
            return
        params = {
            "id": ids.customer_id(merchant_id, data.customer),
            "merchant": merchant_id,
            "customer": data.customer,
            "email": data.email,
            "key": self.secrets_key,
            "email_hash": data.email_hash,
            "name_hash": data.name_hash,
            "address_hash": data.address_hash,
        }
        async with self.pool.connection() as conn:
            await conn.execute(UPSERT, params)
        self._recent[seen] = data
        self._recent.move_to_end(seen)
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
