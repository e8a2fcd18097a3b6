"""Realistic Shopify order webhooks for demos, tests and load, from a seeded generator."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.shopify import (
    API_VERSION_HEADER,
    SHOP_HEADER,
    TOPIC_HEADER,
    TRIGGERED_AT_HEADER,
    WEBHOOK_ID_HEADER,
)

CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Webhook:
    """One delivery: what Shopify would POST, as headers plus a JSON body."""

    shop: str
    topic: str
    webhook_id: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {
            TOPIC_HEADER: self.topic,
            SHOP_HEADER: self.shop,
            WEBHOOK_ID_HEADER: self.webhook_id,
            API_VERSION_HEADER: "2025-10",
            TRIGGERED_AT_HEADER: datetime.now(UTC).isoformat(),
        }


def order_body(
    rng: random.Random,
    order_id: int,
    customer_id: int | None,
    created_at: datetime,
    *,
    paid: bool = True,
) -> dict[str, Any]:
    subtotal = (Decimal(rng.randint(500, 50_000)) / 100).quantize(CENTS)
    tax = (subtotal * Decimal("0.08")).quantize(CENTS)
    body: dict[str, Any] = {
        "id": order_id,
        "name": f"#{order_id}",
        "currency": "USD",
        "subtotal_price": str(subtotal),
        "current_subtotal_price": str(subtotal),
        "total_tax": str(tax),
        "total_price": str(subtotal + tax),
        "total_discounts": "0.00",
        "taxes_included": False,
        "financial_status": "paid" if paid else "pending",
        "test": False,
        "source_name": "web",
        "created_at": created_at.isoformat(),
        "updated_at": created_at.isoformat(),
        "line_items": [{"id": order_id * 10, "quantity": 1, "price": str(subtotal)}],
    }
    if customer_id is not None:
        body["customer"] = {"id": customer_id}
    return body


def sample_orders(
    shop: str, count: int, *, customers: int = 10, seed: int = 7, first_order_id: int = 5_000_000
) -> Iterator[Webhook]:
    """`count` paid orders/create webhooks spread over `customers` customers."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(count):
        order_id = first_order_id + n
        customer = 1_000 + rng.randrange(customers)
        created = start + timedelta(minutes=17 * n)
        webhook_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield Webhook(
            shop, "orders/create", webhook_id, order_body(rng, order_id, customer, created)
        )
