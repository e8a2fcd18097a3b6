"""Shopify webhooks as Kafka records on `shopify.orders`: the contract between ingest and flows.

The value is the webhook body exactly as Shopify sent it (so its HMAC can be checked again);
the delivery headers travel as Kafka headers; the key keeps one customer's events in order.
"""

from __future__ import annotations

import json
from typing import Any

from loyalty.ids import normalize_shop

FORWARDED_HEADERS = (
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Event-Id",
    "X-Shopify-Triggered-At",
    "X-Shopify-API-Version",
)
CORRELATION_HEADER = "X-Correlation-Id"


def partition_key(shop: str, body: dict[str, Any]) -> bytes:
    """shop:customer when the body names a customer, else shop:order:<id>."""
    customer = body.get("customer")
    if isinstance(customer, dict) and isinstance(customer.get("id"), int):
        return f"{normalize_shop(shop)}:{customer['id']}".encode()
    order_id = body.get("order_id", body.get("id"))
    return f"{normalize_shop(shop)}:order:{order_id}".encode()


def kafka_headers(
    delivery: dict[str, str], correlation_id: str
) -> list[tuple[str, str | bytes | None]]:
    """The Shopify delivery headers we keep, plus our correlation id."""
    lowered = {k.lower(): v for k, v in delivery.items()}
    kept = [
        (name, lowered[name.lower()].encode())
        for name in FORWARDED_HEADERS
        if name.lower() in lowered
    ]
    return [*kept, (CORRELATION_HEADER, correlation_id.encode())]


def encode_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
