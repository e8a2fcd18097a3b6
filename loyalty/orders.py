"""Shopify order webhooks as typed, validated facts.

Only what the points rules read is kept, each field read strictly (`loyalty.fields`), so the
state machines never meet a value of the wrong type or out of bounds: a webhook that cannot be
valid is refused here, with its reason, wherever it is decoded (at the API's edge and in the
flows alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from loyalty import fields, json_input
from loyalty.errors import InvalidEventError
from loyalty.exact import EXACT, ZERO

ORDER_TOPICS = frozenset(
    {"orders/create", "orders/paid", "orders/updated", "orders/cancelled", "refunds/create"}
)
REFUND_TOPIC = "refunds/create"
# Shopify's financial statuses; any other value is refused rather than guessed at.
FINANCIAL_STATUSES = frozenset(
    {
        "pending",
        "authorized",
        "partially_paid",
        "paid",
        "partially_refunded",
        "refunded",
        "voided",
        "expired",
    }
)
PAID_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})

__all__ = ["InvalidEventError", "OrderEvent", "OrderFacts", "RefundFacts", "parse_order_event"]


@dataclass(frozen=True)
class OrderFacts:
    """What an order webhook (create, paid, updated, cancelled) says that points depend on."""

    order_id: int
    customer: int | None  # None: a guest checkout
    financial_status: str | None
    cancelled: bool
    test: bool
    taxes_included: bool
    subtotal: Decimal
    total_tax: Decimal | None
    # When the order happened (`processed_at`, else `created_at`): RFM's event time.
    placed_at: datetime | None = None

    @property
    def paid(self) -> bool:
        return self.financial_status in PAID_STATUSES


@dataclass(frozen=True)
class RefundFacts:
    """What a `refunds/create` webhook says: the order, the refund id and refunded amounts."""

    refund_id: int
    order_id: int
    subtotal: Decimal
    tax: Decimal


Facts = OrderFacts | RefundFacts


@dataclass(frozen=True)
class OrderEvent:
    """One order-related webhook: which shop, which topic, and its facts."""

    shop: str
    topic: str
    facts: Facts

    @property
    def order_id(self) -> int:
        return self.facts.order_id


def parse_order_event(shop: str | None, topic: str | None, raw: bytes | None) -> OrderEvent:
    """Decode a webhook body sent for `topic` by `shop`; raise InvalidEventError if unusable."""
    domain = fields.shop_domain(shop)
    if topic not in ORDER_TOPICS:
        raise InvalidEventError(f"unsupported topic {fields.preview(topic)}")
    if not raw:
        raise InvalidEventError("empty body")
    return OrderEvent(domain, topic, read_facts(topic, json_input.loads(raw)))


def read_facts(topic: str, body: Any) -> Facts:
    if not isinstance(body, dict):
        raise InvalidEventError("body is not a JSON object")
    return read_refund(body) if topic == REFUND_TOPIC else read_order(body)


def read_order(body: dict[str, Any]) -> OrderFacts:
    order_id = fields.identifier(body, "id")
    status = fields.optional_text(body, "financial_status")
    if status is not None and status not in FINANCIAL_STATUSES:
        raise InvalidEventError(f"financial_status is not Shopify's: {fields.preview(status)}")
    taxes_included = fields.flag(body, "taxes_included")
    total_tax = fields.optional_money(body, "total_tax")
    if taxes_included and total_tax is None:
        raise InvalidEventError("total_tax is missing and taxes are included in prices")
    return OrderFacts(
        order_id=order_id,
        customer=_customer(body),
        financial_status=status,
        cancelled=fields.optional_time(body, "cancelled_at") is not None,
        test=fields.flag(body, "test"),
        taxes_included=taxes_included,
        subtotal=fields.money(body, "subtotal_price"),
        total_tax=total_tax,
        placed_at=fields.optional_time(body, "processed_at")
        or fields.optional_time(body, "created_at"),
    )


def _customer(body: dict[str, Any]) -> int | None:
    """A guest checkout has no customer; a customer object must name one by id."""
    customer = fields.object_field(body, "customer")
    return None if customer is None else fields.identifier(customer, "id", "customer.id")


def read_refund(body: dict[str, Any]) -> RefundFacts:
    subtotal = tax = ZERO
    for line in fields.list_of_objects(body, "refund_line_items"):
        subtotal = EXACT.add(subtotal, fields.money(line, "subtotal"))
        tax = EXACT.add(tax, fields.optional_money(line, "total_tax") or ZERO)
    return RefundFacts(
        refund_id=fields.identifier(body, "id"),
        order_id=fields.identifier(body, "order_id"),
        subtotal=subtotal,
        tax=tax,
    )


def counted_refund(
    refunded: Decimal, refund_ids: tuple[int, ...], refund: RefundFacts
) -> tuple[Decimal, tuple[int, ...]]:
    """The refunded subtotal and the refund ids after `refund`: each refund counts once, by its
    id, however often its webhook comes."""
    if refund.refund_id in refund_ids:
        return refunded, refund_ids
    return EXACT.add(refunded, refund.subtotal), (*refund_ids, refund.refund_id)
