"""PII stays at the edge, through the real app on in-memory stores: an order webhook's raw
personal values reach the customers store only; Kafka gets the order with keyed hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from loyalty.pii import Hasher, merchant_key
from tests.unit.api_fakes import MERCHANT, SECRETS_KEY, SHOP, FakeStores

EMAIL = "Alice.Smith+promo@Example.com"
PHONE = "+1 (555) 010-9999"
IP = "203.0.113.77"
RAW = [EMAIL, "alice.smith", "Alice", "Smith", "555", "Baker Street", "Springfield", "90210", IP]
ADDRESS = {
    "first_name": "Alice",
    "last_name": "Smith",
    "address1": "221B Baker Street",
    "city": "Springfield",
    "zip": "90210",
    "phone": PHONE,
    "country_code": "US",
    "latitude": 40.1,
}
HASHER = Hasher(merchant_key(SECRETS_KEY, MERCHANT))


def order_body(order_id: int = 9001, **extra: Any) -> dict[str, Any]:
    return {
        "id": order_id,
        "email": EMAIL,
        "phone": PHONE,
        "browser_ip": IP,
        "client_details": {"browser_ip": IP, "user_agent": "test"},
        "financial_status": "paid",
        "subtotal_price": "40.00",
        "total_tax": "3.20",
        "taxes_included": False,
        "test": False,
        "created_at": "2026-11-20T10:00:00+00:00",
        "tax_lines": [{"rate": 0.080, "price": "3.20"}],
        "customer": {
            "id": 77,
            "email": EMAIL,
            "first_name": "Alice",
            "last_name": "Smith",
            "phone": PHONE,
            "default_address": ADDRESS,
        },
        "billing_address": ADDRESS,
        "shipping_address": ADDRESS,
        **extra,
    }


def post(http: Any, body: bytes, topic: str = "orders/paid", webhook_id: str = "w-1") -> Any:
    signature = base64.b64encode(hmac.new(b"secret", body, hashlib.sha256).digest()).decode()
    headers = {
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": webhook_id,
        "Content-Type": "application/json",
    }
    return http.post("/webhooks/shopify", content=body, headers=headers)


def stores() -> FakeStores:
    fake = FakeStores()
    fake.redis.down = True  # rate limit and dedup fail open: not what these tests are about
    return fake


def test_the_produced_order_holds_hashes_and_no_raw_personal_value() -> None:
    fake = stores()
    raw = json.dumps(order_body()).replace('"rate": 0.08,', '"rate": 0.080,')
    assert '"rate": 0.080,' in raw
    with fake.client() as http:
        reply = post(http, raw.encode())

    assert reply.json()["status"] == "accepted"
    (sent,) = fake.producer.sent
    text = sent.value.decode()
    for raw in RAW:
        assert raw not in text
    produced = json.loads(sent.value)
    assert produced["customer"]["email"] == HASHER.email(EMAIL)
    assert produced["customer"]["name_hash"] == HASHER.name("Alice", "Smith")
    assert produced["shipping_address"]["address_hash"] == HASHER.address(ADDRESS)
    assert produced["browser_ip"] == produced["client_details"]["browser_ip"] == HASHER.ip(IP)
    assert "latitude" not in produced["billing_address"]
    # What the flows read is untouched, and decimals keep their exact text.
    assert (produced["id"], produced["customer"]["id"], produced["subtotal_price"]) == (
        9001,
        77,
        "40.00",
    )
    assert '"rate":0.080' in text


def test_the_raw_values_reach_the_customers_store_only() -> None:
    fake = stores()
    with fake.client() as http:
        post(http, json.dumps(order_body()).encode())

    ((merchant, data),) = fake.pii.saved
    assert merchant == MERCHANT
    assert (data.customer, data.email) == (77, EMAIL)
    assert data.email_hash == HASHER.email("alice.smith@example.com")  # normalized: +tag off
    assert data.name_hash == HASHER.name("Alice", "Smith")
    assert data.address_hash == HASHER.address(ADDRESS)


def test_a_guest_checkout_stores_nobody_and_is_still_redacted() -> None:
    fake = stores()
    body = order_body()
    del body["customer"]
    with fake.client() as http:
        post(http, json.dumps(body).encode())

    assert fake.pii.saved == []
    assert EMAIL not in fake.producer.sent[0].value.decode()


def test_a_dead_lettered_order_is_redacted_too() -> None:
    fake = stores()
    with fake.client() as http:
        reply = post(http, json.dumps(order_body(subtotal_price="forty")).encode())

    assert reply.json()["status"] == "dead_lettered"
    (sent,) = fake.producer.sent
    assert sent.topic.endswith("points.dlq")
    for raw in RAW:
        assert raw not in sent.value.decode()
