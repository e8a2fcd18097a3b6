"""Order webhooks that once stopped the points flow (issue 7), one per class of defect.

Each is a record as it could sit on `shopify.orders`: headers (shop, topic, the merchant's
terms) and a body. None of them may crash a flow; each must become a dead letter whose reason
contains `reason`. Shared by the in-process flow tests and the integration test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SHOP = "hostile.myshopify.com"
VALID_BODY: dict[str, Any] = {
    "id": 1,
    "subtotal_price": "100.00",
    "total_tax": "0.00",
    "taxes_included": False,
    "financial_status": "paid",
    "test": False,
    "customer": {"id": 77},
}


@dataclass(frozen=True)
class Hostile:
    name: str
    body: bytes
    reason: str
    topic: str = "orders/create"
    extra_headers: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)

    def headers(self, shop: str = SHOP) -> list[tuple[str, bytes]]:
        return [
            ("X-Shopify-Shop-Domain", shop.encode()),
            ("X-Shopify-Topic", self.topic.encode()),
            *self.extra_headers,
        ]


def order(order_id: int, **fields: Any) -> bytes:
    return json.dumps({**VALID_BODY, "id": order_id, **fields}).encode()


def raw_order(order_id: int, replace: str, with_text: str) -> bytes:
    """A body whose JSON text holds `with_text` where the valid body holds `replace`."""
    text = order(order_id).decode()
    assert replace in text
    return text.replace(replace, with_text, 1).encode()


BIG = 2**63
ARABIC_100 = "\u0661\u0660\u0660"  # Python's Decimal() reads these as 100
FULLWIDTH_100 = "\uff11\uff10\uff10"
RICH = (("LoyalNest-Points-Per-Unit", b"10000"),)

CORPUS: tuple[Hostile, ...] = (
    Hostile(
        "status-list", order(101, financial_status=["paid"]), "financial_status must be a string"
    ),
    Hostile(
        "status-object", order(102, financial_status={"s": "paid"}), "financial_status must be"
    ),
    Hostile(
        "subtotal-20-digits", order(103, subtotal_price="99999999999999999999"), "subtotal_price"
    ),
    Hostile("subtotal-exponent-text", order(104, subtotal_price="1e400"), "subtotal_price"),
    Hostile(
        "subtotal-exponent-number",
        raw_order(105, '"subtotal_price": "100.00"', '"subtotal_price": 1e400'),
        "subtotal_price",
    ),
    Hostile("order-id-2^63", order(BIG), "id must be an id from 1 to 2^63-1"),
    Hostile("customer-id-2^63", order(107, customer={"id": BIG}), "customer.id must be an id"),
    # Two orders whose points together would pass 2^63: each alone passes the per-change limit.
    Hostile(
        "points-over-limit-1",
        order(108, subtotal_price="999999999999999"),
        "limit",
        extra_headers=RICH,
    ),
    Hostile(
        "points-over-limit-2",
        order(109, subtotal_price="999999999999999"),
        "limit",
        extra_headers=RICH,
    ),
    Hostile(
        "refund-id-10^30",
        json.dumps({"id": 10**30, "order_id": 110, "refund_line_items": []}).encode(),
        "not JSON: an integer longer than 20 digits",
        topic="refunds/create",
    ),
    Hostile(
        "refund-id-2^64",
        json.dumps({"id": 2**64, "order_id": 110, "refund_line_items": []}).encode(),
        "id must be an id from 1 to 2^63-1",
        topic="refunds/create",
    ),
    Hostile(
        "subtotal-decimal-overflow", order(111, subtotal_price="1e1000000000"), "subtotal_price"
    ),
    Hostile("subtotal-5000-digits", order(112, subtotal_price="9" * 5_000), "subtotal_price"),
    Hostile(
        "integer-4301-digits",
        raw_order(113, '"total_tax": "0.00"', '"total_tax": ' + "9" * 4_301),
        "not JSON: an integer longer than 20 digits",
    ),
    Hostile(
        "nested-1000-deep",
        raw_order(114, '"test": false', '"note": ' + "[" * 1_000 + "]" * 1_000),
        "not JSON: nested",
    ),
    Hostile("brackets-200000", b"[" * 200_000, "not JSON"),
    Hostile("utf8-bom", b"\xef\xbb\xbf" + order(116), "not JSON: UTF-8 with a byte order mark"),
    Hostile("utf16", order(117).decode().encode("utf-16"), "not JSON"),
    Hostile("utf32", order(118).decode().encode("utf-32"), "not JSON"),
    Hostile(
        "lone-surrogate",
        raw_order(119, '"financial_status": "paid"', '"financial_status": "pa\\ud800id"'),
        "lone UTF-16 surrogate",
    ),
    Hostile("order-id-zero", order(0), "id must be an id from 1"),
    Hostile("order-id-negative", order(-5), "id must be an id from 1"),
    Hostile("subtotal-arabic-indic", order(121, subtotal_price=ARABIC_100), "subtotal_price"),
    Hostile("subtotal-fullwidth", order(122, subtotal_price=FULLWIDTH_100), "subtotal_price"),
    Hostile("subtotal-underscore", order(123, subtotal_price="1_000"), "subtotal_price"),
    Hostile("test-as-string", order(124, test="true"), "test must be true or false"),
    Hostile(
        "customer-id-true", order(125, customer={"id": True}), "customer.id must be an integer id"
    ),
    Hostile(
        "customer-id-string",
        order(126, customer={"id": "126"}),
        "customer.id must be an integer id",
    ),
    Hostile("not-json", b"{not json", "not JSON"),
    Hostile("not-an-object", b"[1, 2]", "body is not a JSON object"),
    Hostile("empty", b"", "empty body"),
    Hostile("unknown-topic", order(127), "unsupported topic", topic="orders/exploded"),
    Hostile(
        "rate-header-garbage",
        order(128),
        "points per unit",
        extra_headers=(("LoyalNest-Points-Per-Unit", b"1e9"),),
    ),
    Hostile(
        "locale-header-garbage",
        order(129),
        "LoyalNest-Locale",
        extra_headers=(("LoyalNest-Locale", b"x" * 300),),
    ),
    Hostile(
        "over-a-megabyte",
        raw_order(130, '"test": false', '"test": "no", "note": "' + "x" * 1_100_000 + '"'),
        "test must be true or false",
    ),
)
