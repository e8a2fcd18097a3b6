"""The order-archive dataflow run in-process with testing sources and sinks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson.codec_options import CodecOptions
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import KafkaError as ConfluentKafkaError
from pymongo import InsertOne

from connectors.dead_letters import DLQ_FLOW, DLQ_ORIGIN, DLQ_REASON, DLQ_STEP
from connectors.kafka import SinkMessage, SourceItem, SourceMessage
from connectors.store import ORDER_EVENTS
from flows.common import Rejected, guarded_decode, to_dead_letter
from flows.order_archive import DECODE_STEP, FLOW, Archived, archive, build
from loyalty import ids
from sinks.mongo import Latest, RoutedWrite

SHOP = "demo.myshopify.com"
RECEIVED_MS = 1_700_000_000_123
HEADERS = [
    ("X-Shopify-Topic", b"orders/create"),
    ("X-Shopify-Shop-Domain", SHOP.encode()),
    ("X-Shopify-Webhook-Id", b"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
    ("X-Shopify-Hmac-Sha256", b"c2lnbmF0dXJl"),
]


def order_body(order_id: int, total: str = "10.00") -> bytes:
    return json.dumps({"id": order_id, "subtotal_price": total}).encode()


def message(
    value: bytes | None, offset: int = 0, headers: list[tuple[str, bytes]] | None = None
) -> SourceMessage:
    return KafkaSourceMessage(
        key=f"key-{offset}".encode(),
        value=value,
        topic="shopify.orders",
        headers=list(HEADERS) if headers is None else headers,
        partition=0,
        offset=offset,
        timestamp=(1, RECEIVED_MS + offset),
    )


def run(items: list[SourceItem]) -> tuple[list[RoutedWrite], list[SinkMessage]]:
    writes: list[RoutedWrite] = []
    dead_letters: list[SinkMessage] = []
    flow = build(TestingSource(items), TestingSink(writes), TestingSink(dead_letters))
    run_main(flow)  # type: ignore[no-untyped-call]  # bytewax's stub leaves it unannotated
    return writes, dead_letters


def document(write: RoutedWrite) -> dict[str, Any]:
    key, routed = write
    assert not isinstance(routed, Latest)  # every insert of the archive is kept
    collection, operation = routed
    assert collection == ORDER_EVENTS
    assert isinstance(operation, InsertOne)
    doc: dict[str, Any] = bson.decode(operation._doc.raw, CodecOptions(tz_aware=True))
    assert key == f"{doc['shop']}:{doc['order_id']}"  # one order's writes stay in order
    return doc


def headers_of(dlq: SinkMessage) -> dict[str, bytes]:
    return dict(dlq.headers)


def test_valid_message_becomes_an_insert_into_order_events() -> None:
    raw = order_body(1001)

    writes, dead_letters = run([message(raw, offset=0)])

    assert dead_letters == []
    assert len(writes) == 1
    doc = document(writes[0])
    assert doc == {
        "_id": doc["_id"],
        "merchant_id": str(ids.merchant_id(SHOP)),
        "shop": SHOP,
        "topic": "orders/create",
        "order_id": 1001,
        "webhook_id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "received_at": datetime.fromtimestamp(RECEIVED_MS / 1000, tz=UTC),
        "payload": raw.decode(),
    }
    assert isinstance(doc["_id"], str)


def test_byte_identical_deliveries_get_the_same_document_id() -> None:
    raw = order_body(1001)

    writes, _ = run([message(raw, offset=0), message(raw, offset=7)])

    assert len(writes) == 2
    assert document(writes[0])["_id"] == document(writes[1])["_id"]


def test_different_bodies_get_different_document_ids() -> None:
    writes, _ = run(
        [
            message(order_body(1001), 0),
            message(order_body(1001, "10.01"), 1),
            message(order_body(1002), 2),
        ]
    )

    assert len({document(w)["_id"] for w in writes}) == 3


def test_same_body_under_a_different_topic_gets_a_different_document_id() -> None:
    raw = order_body(1001)
    paid = [("X-Shopify-Topic", b"orders/paid"), ("X-Shopify-Shop-Domain", SHOP.encode())]

    writes, _ = run([message(raw, 0), message(raw, 1, headers=paid)])

    assert document(writes[0])["_id"] != document(writes[1])["_id"]


def test_invalid_json_and_missing_shop_go_to_dead_letters_with_original_bytes_and_headers() -> None:
    not_json = b'{"id": 1001, '
    no_shop_headers = [h for h in HEADERS if h[0] != "X-Shopify-Shop-Domain"]
    no_shop_value = order_body(1002)

    writes, dead_letters = run(
        [
            message(order_body(1000), offset=0),
            message(not_json, offset=1),
            message(no_shop_value, offset=2, headers=no_shop_headers),
        ]
    )

    assert [document(w)["order_id"] for w in writes] == [1000]
    by_origin = {headers_of(d)[DLQ_ORIGIN]: d for d in dead_letters}
    assert set(by_origin) == {b"shopify.orders/0/1", b"shopify.orders/0/2"}

    bad_json = by_origin[b"shopify.orders/0/1"]
    assert (bad_json.key, bad_json.value) == (b"key-1", not_json)
    assert bad_json.headers[: len(HEADERS)] == HEADERS
    assert headers_of(bad_json)[DLQ_REASON].startswith(b"not JSON")
    assert headers_of(bad_json)[DLQ_STEP] == b"decode"
    assert headers_of(bad_json)[DLQ_FLOW] == b"order-archive"

    no_shop = by_origin[b"shopify.orders/0/2"]
    assert (no_shop.key, no_shop.value) == (b"key-2", no_shop_value)
    assert no_shop.headers[: len(no_shop_headers)] == no_shop_headers
    assert headers_of(no_shop)[DLQ_REASON] == b"missing shop domain"


def test_kafka_error_item_goes_to_dead_letters() -> None:
    err = ConfluentKafkaError(ConfluentKafkaError._MSG_TIMED_OUT)
    failed = message(b"partial", offset=5)

    writes, dead_letters = run([KafkaError(err, failed)])

    assert writes == []
    assert len(dead_letters) == 1
    dlq = dead_letters[0]
    assert (dlq.key, dlq.value) == (b"key-5", b"partial")
    assert dlq.headers[: len(HEADERS)] == HEADERS
    assert headers_of(dlq)[DLQ_REASON] == f"kafka error: {err}".encode()
    assert b"_MSG_TIMED_OUT" in headers_of(dlq)[DLQ_REASON]
    assert headers_of(dlq)[DLQ_ORIGIN] == b"shopify.orders/0/5"


# --- the steps as plain functions ---------------------------------------------------------------


decode = guarded_decode(DECODE_STEP, archive)


def test_decode_accepts_a_valid_message() -> None:
    decoded = decode(message(order_body(1001)))

    assert isinstance(decoded, Archived)
    assert document(decoded.write)["order_id"] == 1001


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (None, None, "empty body"),
        (b"[]", None, "body is not a JSON object"),
        (b'{"name": "#1001"}', None, "id must be an integer id, got None"),
        (
            order_body(1),
            [("X-Shopify-Topic", b"products/create"), ("X-Shopify-Shop-Domain", SHOP.encode())],
            "unsupported topic 'products/create'",
        ),
        (order_body(1), [("X-Shopify-Shop-Domain", SHOP.encode())], "unsupported topic None"),
    ],
    ids=["empty", "array", "no-id", "other-topic", "no-topic"],
)
def test_decode_rejects_unusable_messages_with_a_reason(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, reason: str
) -> None:
    msg = message(value, headers=headers)

    assert decode(msg) == Rejected(msg, reason, DECODE_STEP)


def test_decode_reads_headers_case_insensitively() -> None:
    msg = message(
        order_body(1),
        headers=[("x-shopify-topic", b"orders/paid"), ("x-shopify-shop-domain", SHOP.encode())],
    )

    decoded = decode(msg)

    assert isinstance(decoded, Archived)
    assert document(decoded.write)["topic"] == "orders/paid"


def test_archive_write_normalizes_the_shop_and_tolerates_missing_timestamp_and_webhook_id() -> None:
    msg: SourceMessage = KafkaSourceMessage(
        key=None,
        value=order_body(9),
        topic="shopify.orders",
        headers=[
            ("X-Shopify-Topic", b"orders/create"),
            ("X-Shopify-Shop-Domain", b"Demo.MyShopify.com"),
        ],
        partition=0,
        offset=0,
    )
    decoded = decode(msg)
    assert isinstance(decoded, Archived)

    doc = document(decoded.write)

    assert doc["shop"] == SHOP
    assert doc["merchant_id"] == str(ids.merchant_id(SHOP))
    assert doc["webhook_id"] is None
    assert doc["received_at"] is None


def test_to_dead_letter_names_the_decode_step() -> None:
    msg = message(b"x", offset=3)

    dlq = to_dead_letter(Rejected(msg, "not JSON: boom", DECODE_STEP), FLOW)

    assert headers_of(dlq)[DLQ_STEP] == b"decode"
    assert headers_of(dlq)[DLQ_FLOW] == b"order-archive"
    assert headers_of(dlq)[DLQ_REASON] == b"not JSON: boom"
    assert headers_of(dlq)[DLQ_ORIGIN] == b"shopify.orders/0/3"
    assert dlq.value == b"x"


def test_body_that_is_json_but_not_utf8_goes_to_dead_letters_instead_of_crashing() -> None:
    raw = json.dumps({"id": 1001}).encode("utf-16")

    writes, dead_letters = run([message(raw, offset=0)])

    assert writes == []
    assert [d.value for d in dead_letters] == [raw]
