"""Merchants in PostgreSQL. Webhook secrets are stored encrypted (pgcrypto) and the previous
one is kept after a rotation, because Shopify may sign with it for up to an hour."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from loyalty import ids

UPSERT = """
INSERT INTO merchants (id, shop_domain, webhook_secret, points_per_unit, locale)
VALUES (%(id)s, %(shop)s, pgp_sym_encrypt(%(secret)s, %(key)s), %(ppu)s, %(locale)s)
ON CONFLICT (shop_domain) DO UPDATE SET
    previous_webhook_secret = CASE
        WHEN pgp_sym_decrypt(merchants.webhook_secret, %(key)s) = %(secret)s
        THEN merchants.previous_webhook_secret ELSE merchants.webhook_secret END,
    secret_rotated_at = CASE
        WHEN pgp_sym_decrypt(merchants.webhook_secret, %(key)s) = %(secret)s
        THEN merchants.secret_rotated_at ELSE now() END,
    webhook_secret = EXCLUDED.webhook_secret,
    points_per_unit = EXCLUDED.points_per_unit,
    locale = EXCLUDED.locale,
    updated_at = now()
RETURNING id::text AS merchant_id, shop_domain AS shop, points_per_unit, locale,
          secret_rotated_at IS NOT NULL AS rotated
"""

SELECT = """
SELECT id::text AS merchant_id, shop_domain AS shop, points_per_unit, locale,
       pgp_sym_decrypt(webhook_secret, %(key)s) AS secret,
       CASE WHEN secret_rotated_at > now() - interval '1 hour'
            THEN pgp_sym_decrypt(previous_webhook_secret, %(key)s) END AS previous_secret
FROM merchants WHERE {where}
"""


@dataclass(frozen=True)
class MerchantSummary:
    merchant_id: str
    shop: str
    points_per_unit: Decimal
    locale: str
    rotated: bool


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    shop: str
    points_per_unit: Decimal
    locale: str
    secret: str
    previous_secret: str | None

    @property
    def secrets(self) -> list[str]:
        """Secrets a webhook may be signed with: the current one, then the previous one."""
        return [self.secret] + ([self.previous_secret] if self.previous_secret else [])


def upsert_merchant(
    conn: psycopg.Connection[tuple[object, ...]],
    key: str,
    *,
    shop: str,
    secret: str,
    points_per_unit: Decimal,
    locale: str,
) -> MerchantSummary:
    if not secret:
        raise ValueError("the webhook secret must not be empty")
    if points_per_unit < 0:
        raise ValueError("points per unit must not be negative")
    shop = ids.normalize_shop(shop)
    with conn.cursor(row_factory=class_row(MerchantSummary)) as cur:
        row = cur.execute(
            UPSERT,
            {
                "id": ids.merchant_id(shop),
                "shop": shop,
                "secret": secret,
                "key": key,
                "ppu": points_per_unit,
                "locale": locale,
            },
        ).fetchone()
    conn.commit()
    assert row is not None
    return row


BY_SHOP = SELECT.format(where="shop_domain = %(shop)s")


def _by_shop(key: str, shop: str) -> dict[str, str]:
    return {"key": key, "shop": ids.normalize_shop(shop)}


def merchant_by_shop(
    conn: psycopg.Connection[tuple[object, ...]], key: str, shop: str
) -> Merchant | None:
    with conn.cursor(row_factory=class_row(Merchant)) as cur:
        return cur.execute(BY_SHOP, _by_shop(key, shop)).fetchone()


async def merchant_by_shop_pooled(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]], key: str, shop: str
) -> Merchant | None:
    """The same lookup on a connection of the API's pool (PoolTimeout if none frees up in time,
    an OperationalError if PostgreSQL cannot be reached)."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(Merchant)) as cur:
        await cur.execute(BY_SHOP, _by_shop(key, shop))
        return await cur.fetchone()
