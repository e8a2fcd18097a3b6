"""Merchants as Shopify and LoyalNest Core see them: signed webhooks and bearer tokens.

The API processes of the harness run with JWT_SECRET and SECRETS_KEY below, so a `Shop`'s
tokens and its merchant row (secret encrypted with SECRETS_KEY) are accepted by them. Both are
made up afresh in every process that imports this module, so no value in the repository can
sign a token that some deployment accepts.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from connectors.merchants import upsert_merchant
from connectors.shopify import (
    API_VERSION_HEADER,
    HMAC_HEADER,
    SHOP_HEADER,
    TOPIC_HEADER,
    WEBHOOK_ID_HEADER,
    sign,
)
from loyalnest import tokens
from loyalty import ids

JWT_SECRET = secrets.token_urlsafe(32)
SECRETS_KEY = secrets.token_urlsafe(32)
API_VERSION = "2025-10"


@dataclass(frozen=True)
class Shop:
    """A merchant: its domain, current webhook secret and earning rate."""

    domain: str
    secret: str
    points_per_unit: Decimal
    locale: str = "en"

    @property
    def merchant_id(self) -> str:
        return str(ids.merchant_id(self.domain))

    def token(self, *scopes: str, secret: str = JWT_SECRET) -> str:
        return tokens.issue(
            secret,
            self.merchant_id,
            self.domain,
            set(scopes),
            now=datetime.now(UTC),
            ttl=timedelta(hours=1),
        )

    def auth(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes)}"}

    def webhook_headers(
        self,
        topic: str,
        body: bytes,
        *,
        webhook_id: str | None = None,
        secret: str | None = None,
    ) -> dict[str, str]:
        """What Shopify sends with `body`; a new delivery id unless one is given."""
        return {
            "Content-Type": "application/json",
            HMAC_HEADER: sign(body, self.secret if secret is None else secret),
            TOPIC_HEADER: topic,
            SHOP_HEADER: self.domain,
            WEBHOOK_ID_HEADER: webhook_id or str(uuid.uuid4()),
            API_VERSION_HEADER: API_VERSION,
        }


def add_merchants(postgres_url: str, *shops: Shop) -> None:
    """Create each merchant, or update it (a new secret is a rotation)."""
    with psycopg.connect(postgres_url) as conn:
        for shop in shops:
            upsert_merchant(
                conn,
                SECRETS_KEY,
                shop=shop.domain,
                secret=shop.secret,
                points_per_unit=shop.points_per_unit,
                locale=shop.locale,
            )
