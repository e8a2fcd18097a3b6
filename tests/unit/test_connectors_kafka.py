"""Header lookup and dead-letter messages."""

from __future__ import annotations

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage

from connectors.kafka import DLQ_ORIGIN, DLQ_REASON, DLQ_STEP, SourceMessage, dead_letter, header

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


def test_dead_letter_keeps_key_value_and_headers_and_adds_reason_step_and_origin() -> None:
    msg = message()

    dlq = dead_letter(msg, "body is not JSON", "order-archive.decode")

    assert dlq == KafkaSinkMessage(
        key=b"order-1",
        value=b'{"id": 1}',
        headers=[
            *HEADERS,
            (DLQ_REASON, b"body is not JSON"),
            (DLQ_STEP, b"order-archive.decode"),
            (DLQ_ORIGIN, b"shopify.orders/3/42"),
        ],
    )
    assert dlq.topic is None  # the sink's configured dead-letter topic is used


def test_dead_letter_header_names() -> None:
    assert (DLQ_REASON, DLQ_STEP, DLQ_ORIGIN) == ("dlq-reason", "dlq-step", "dlq-origin")


def test_dead_letter_does_not_modify_the_original_headers() -> None:
    headers = [("X-Shopify-Topic", b"orders/create")]
    msg = message(headers=headers)

    dead_letter(msg, "why", "step")

    assert msg.headers == [("X-Shopify-Topic", b"orders/create")]


def test_dead_letter_encodes_a_non_ascii_reason_as_utf8() -> None:
    dlq = dead_letter(message(headers=[]), "unsupported topic 'commandes/créer'", "s")

    assert dict(dlq.headers)[DLQ_REASON] == "unsupported topic 'commandes/créer'".encode()
