"""Shopify order webhooks as typed, validated values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

ORDER_TOPICS = frozenset(
    {"orders/create", "orders/paid", "orders/updated", "orders/cancelled", "refunds/create"}
)


class InvalidEventError(ValueError):
    """An event that cannot be processed; the message says why (it goes to a dead letter)."""


@dataclass(frozen=True)
class OrderEvent:
    """One order-related webhook: which shop, which topic, and the decoded body."""

    shop: str
    topic: str
    body: dict[str, Any]

    @property
    def order_id(self) -> int:
        key = "order_id" if self.topic == "refunds/create" else "id"
        return require_int(self.body, key)


def parse_order_event(shop: str | None, topic: str | None, raw: bytes | None) -> OrderEvent:
    """Decode a webhook body sent for `topic` by `shop`; raise InvalidEventError if unusable."""
    if not shop:
        raise InvalidEventError("missing shop domain")
    if topic not in ORDER_TOPICS:
        raise InvalidEventError(f"unsupported topic {topic!r}")
    if not raw:
        raise InvalidEventError("empty body")
    try:
        text = raw.decode("utf-8")  # Shopify sends UTF-8; anything else is not a webhook body
        # Money arrives as strings; any stray JSON number becomes a Decimal, never a float.
        body = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InvalidEventError(f"body is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidEventError("body is not a JSON object")
    event = OrderEvent(shop=shop, topic=topic, body=body)
    event.order_id  # noqa: B018 - validates that the order id is present
    return event


def _reject_constant(name: str) -> object:
    raise InvalidEventError(f"body is not JSON: {name} is not a number")


def require_int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEventError(f"{key} must be an integer, got {value!r}")
    return value


def money(body: dict[str, Any], key: str) -> Decimal:
    """A money field as Decimal; Shopify sends decimal strings."""
    value = body.get(key)
    if value is None:
        raise InvalidEventError(f"{key} is missing")
    if isinstance(value, float):
        raise InvalidEventError(f"{key} must be a decimal string, not a float")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidEventError(f"{key} is not a decimal amount: {value!r}") from exc
    if not amount.is_finite():
        raise InvalidEventError(f"{key} is not a finite amount: {value!r}")
    return amount


MAX_ID = 2**63 - 1  # Shopify ids are 64-bit; MongoDB stores signed 64-bit integers


def parse_id(text: str) -> int | None:
    """A positive 64-bit id written in ASCII digits, or None (`"²".isdigit()` is True)."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
