"""Customers in PostgreSQL as Core shows and announces them: the row (`CustomerRow`), its
`customer.created` / `customer.updated` events, creating a customer from an email alone, and
reading one back (the raw email decrypted only when the caller may see it).

Raw personal data never leaves this module except as `CustomerView.email`, which the API sends
only to a caller with scope merchant:customers:pii; events carry the keyed hashes alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from psycopg.rows import class_row

from connectors.merchants import Pool
from loyalnest.topics import CUSTOMER_CREATED, CUSTOMER_UPDATED
from loyalty import ids

SCHEMA_VERSION = "1.0.0"
# What a stored customer is read as (CustomerRow's fields, in order).
COLUMNS = """id::text AS customer_id, merchant_id::text AS merchant_id,
    shopify_customer_id AS shopify_id, email_hash, name_hash, address_hash, created_at,
    updated_at"""
# The customer with this email, one with a Shopify id first (an email-only customer is the
# import of someone who may have ordered since).
BY_EMAIL = f"""
SELECT {COLUMNS}, false AS created FROM customers
WHERE merchant_id = %(merchant)s AND email_hash = %(email_hash)s
ORDER BY shopify_customer_id IS NULL, created_at, shopify_customer_id
LIMIT 1
"""  # noqa: S608 - COLUMNS is a constant; every value is a parameter
INSERT_BY_EMAIL = f"""
INSERT INTO customers (id, merchant_id, email, email_hash)
VALUES (%(id)s, %(merchant)s, pgp_sym_encrypt(%(email)s, %(key)s), %(email_hash)s)
ON CONFLICT DO NOTHING
RETURNING {COLUMNS}, true AS created
"""  # noqa: S608
# The customer asked for; or, for one created by email alone who has since ordered, the
# customer their orders made (the same email, with a Shopify id): the same person, as Core now
# knows them.
BY_ID = f"""
WITH asked AS (
    SELECT * FROM customers WHERE id = %(id)s AND merchant_id = %(merchant)s
), ordered AS (
    SELECT c.* FROM customers c JOIN asked a
        ON c.merchant_id = a.merchant_id AND c.email_hash = a.email_hash
    WHERE a.shopify_customer_id IS NULL AND c.shopify_customer_id IS NOT NULL
    ORDER BY c.created_at, c.shopify_customer_id  -- rows of one write share created_at
    LIMIT 1
), answered AS (
    SELECT * FROM ordered
    UNION ALL
    SELECT * FROM asked WHERE NOT EXISTS (SELECT 1 FROM ordered)
)
SELECT {COLUMNS}, false AS created,
       CASE WHEN %(pii)s AND email IS NOT NULL THEN pgp_sym_decrypt(email, %(key)s) END AS email
FROM answered
"""  # noqa: S608


@dataclass(frozen=True)
class CustomerRow:
    customer_id: str
    merchant_id: str
    shopify_id: int | None
    email_hash: str | None
    name_hash: str | None
    address_hash: str | None
    created_at: datetime
    updated_at: datetime
    created: bool  # the statement that returned it inserted it


@dataclass(frozen=True)
class CustomerView(CustomerRow):
    email: str | None  # raw; None unless asked for (and stored)


def customer_event(row: CustomerRow) -> tuple[str, dict[str, Any]]:
    """(contract, record) of `customer.created` or `customer.updated`. A creation's id is one
    per customer (announcing it again is a recognisable repeat); an update's, one per change."""
    if row.created:
        contract, event = CUSTOMER_CREATED, ids.event_id(CUSTOMER_CREATED, row.customer_id)
    else:
        contract = CUSTOMER_UPDATED
        event = ids.event_id(CUSTOMER_UPDATED, row.customer_id, row.updated_at.isoformat())
    return contract, {
        "event_id": str(event),
        "merchant_id": row.merchant_id,
        "customer_id": row.customer_id,
        "shopify_customer_id": row.shopify_id,
        "email_hash": row.email_hash,
        "name_hash": row.name_hash,
        "address_hash": row.address_hash,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "schema_version": SCHEMA_VERSION,
    }


class CustomerStore(Protocol):
    async def create_by_email(self, merchant_id: str, email: str, email_hash: str) -> CustomerRow:
        """The merchant's customer with this email, created (`created` true) if none is."""

    async def get(
        self, merchant_id: str, customer_id: str, with_email: bool
    ) -> CustomerView | None: ...


@dataclass(frozen=True)
class PooledCustomers:
    """On the API's connection pool (PoolTimeout or OperationalError when PostgreSQL cannot
    be reached: the API answers UNAVAILABLE)."""

    pool: Pool
    secrets_key: str

    async def create_by_email(self, merchant_id: str, email: str, email_hash: str) -> CustomerRow:
        found = {"merchant": merchant_id, "email_hash": email_hash}
        new = found | {
            "id": ids.email_customer_id(merchant_id, email_hash),
            "email": email,
            "key": self.secrets_key,
        }
        async with (
            self.pool.connection() as conn,
            conn.cursor(row_factory=class_row(CustomerRow)) as cur,
        ):
            for query, params in ((BY_EMAIL, found), (INSERT_BY_EMAIL, new), (BY_EMAIL, found)):
                await cur.execute(query, params)
                row = await cur.fetchone()
                if row is not None:
                    return row
        raise LookupError("customer neither found nor created")  # a concurrent delete

    async def get(
        self, merchant_id: str, customer_id: str, with_email: bool
    ) -> CustomerView | None:
        params = {
            "id": customer_id,
            "merchant": merchant_id,
            "pii": with_email,
            "key": self.secrets_key,
        }
        async with (
            self.pool.connection() as conn,
            conn.cursor(row_factory=class_row(CustomerView)) as cur,
        ):
            await cur.execute(BY_ID, params)
            return await cur.fetchone()
