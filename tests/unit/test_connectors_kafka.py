"""Header lookup on Kafka records."""

from __future__ import annotations

from bytewax.connectors.kafka import KafkaSourceMessage

from connectors.kafka import SourceMessage, header

HEADERS = [
    ("X-Shopify-Topic", b"orders/create"),
    ("X-Shopify-Shop-Domain", b"demo.myshopify.com"),
    ("x-shopify-shop-domain", b"second.myshopify.com"),
    ("X-Broken", b"\xffok"),
]


def message(headers: list[tuple[str, bytes]] | None = None) -> SourceMessage:
    return KafkaSourceMessage(
        key=b"order-1",
        value=b'{"id": 1}',
        topic="shopify.orders",
        headers=HEADERS if headers is None else headers,
        partition=3,
        offset=42,
        timestamp=(1, 1_700_000_000_000),
    )


def test_header_lookup_ignores_case() -> None:
    msg = message()

    assert header(msg, "x-shopify-topic") == "orders/create"
    assert header(msg, "X-SHOPIFY-TOPIC") == "orders/create"
    assert header(msg, "X-Shopify-Topic") == "orders/create"


def test_header_returns_the_first_of_repeated_headers() -> None:
    assert header(message(), "X-Shopify-Shop-Domain") == "demo.myshopify.com"


def test_missing_header_is_none() -> None:
    assert header(message(), "X-Shopify-Webhook-Id") is None
    assert header(message(headers=[]), "X-Shopify-Topic") is None


def test_header_decodes_invalid_utf8_with_replacement_characters() -> None:
    assert header(message(), "x-broken") == "\ufffdok"
