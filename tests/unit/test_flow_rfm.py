"""The RFM flow run in-process (Bytewax testing sources and sinks)."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import bson
import fastavro
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.raw_bson import RawBSONDocument
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from connectors.avro import AvroEncoder
from connectors.dead_letters import DLQ_FLOW, DLQ_REASON, DLQ_STEP
from connectors.kafka import SinkMessage, SourceItem, SourceMessage
from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS
from flows.rfm import RfmSinks, build
from loyalnest.schemas import schema_text
from loyalnest.topics import RFM_UPDATED
from loyalty import ids
from loyalty.rfm import EPOCH, Thresholds, threshold_scales
from loyalty.rfm_commands import CustomerTick, DayTick, Settings, encode
from loyalty.rfm_customers import Tick
from sinks.mongo import Latest, RoutedWrite

SHOP = "rfm.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
SCHEMA = fastavro.parse_schema(json.loads(schema_text(RFM_UPDATED)))
MARCH_1 = (date(2026, 3, 1) - EPOCH).days
THRESHOLDS = Thresholds(
    (7, 30, 90, 180), (2, 3, 5, 10), (Decimal(50), Decimal(100), Decimal(250), Decimal(500))
)


def webhook(offset: int, topic: str, body: dict[str, Any], **headers: bytes) -> SourceMessage:
    return KafkaSourceMessage(
        key=b"k",
        value=json.dumps(body).encode(),
        topic="shopify.orders",
        headers=[
            ("X-Shopify-Shop-Domain", SHOP.encode()),
            ("X-Shopify-Topic", topic.encode()),
            *headers.items(),
        ],
        partition=0,
        offset=offset,
        timestamp=(1, 1_772_000_000_000 + offset),
    )


def paid(
    order_id: int, customer: int | None, day: str, subtotal: str = "100.00", **more: Any
) -> dict[str, Any]:
    return {
        "id": order_id,
        "financial_status": "paid",
        "subtotal_price": subtotal,
        "total_tax": "0.00",
        "taxes_included": False,
        "test": False,
        "customer": None if customer is None else {"id": customer},
        "processed_at": f"{day}T10:00:00Z",
        **more,
    }


def command(offset: int, value: bytes) -> SourceMessage:
    return KafkaSourceMessage(
        key=b"k",
        value=value,
        topic="rfm.commands",
        headers=[],
        partition=0,
        offset=offset,
        timestamp=(1, 1),
    )


class Run:
    def __init__(self, orders: list[SourceItem], commands: list[SourceItem]) -> None:
        self.writes: list[RoutedWrite] = []
        self.events: list[SinkMessage] = []
        self.dead_letters: list[SinkMessage] = []
        sinks = RfmSinks(
            TestingSink(self.writes), TestingSink(self.events), TestingSink(self.dead_letters)
        )
        flow = build(
            TestingSource(orders),
            TestingSource(commands),
            sinks,
            AvroEncoder(1, schema_text(RFM_UPDATED)),
        )
        run_main(flow)  # type: ignore[no-untyped-call]  # bytewax's stub leaves it unannotated

    def latest(self, collection: str) -> dict[str, dict[str, Any]]:
        """The newest document of each _id written to `collection`."""
        documents: dict[str, dict[str, Any]] = {}
        for _key, routed in self.writes:
            name, write = routed.write if isinstance(routed, Latest) else routed
            if name != collection:
                continue
            doc = _decoded(getattr(write, "_doc", None))
            doc_id = doc.pop("_id", None) or _decoded(write._filter)["_id"]  # type: ignore[union-attr]
            if doc_id not in documents or documents[doc_id]["v"] < doc["v"]:
                documents[doc_id] = doc
        return documents

    def updates(self) -> list[dict[str, Any]]:
        """The rfm.updated records, read past the wire format's 5-byte prefix."""
        records = []
        for event in self.events:
            assert event.value is not None
            record = fastavro.schemaless_reader(io.BytesIO(event.value[5:]), SCHEMA, None)
            assert isinstance(record, dict)
            records.append(record)
        return records


def _decoded(document: object) -> dict[str, Any]:
    assert isinstance(document, RawBSONDocument)
    return bson.decode(document.raw, CodecOptions(tz_aware=True))


def customer_doc(run: Run, customer: int) -> dict[str, Any]:
    return run.latest(RFM_CUSTOMERS)[f"{MERCHANT}:{customer}"]


def test_orders_make_values_prospects_and_the_merchants_picture() -> None:
    orders: list[SourceItem] = [
        webhook(0, "orders/paid", paid(1, 501, "2026-02-20", "40.00")),
        webhook(1, "orders/paid", paid(2, 501, "2026-02-27", "60.50")),
        webhook(2, "orders/paid", paid(2, 501, "2026-02-27", "60.50")),  # delivered twice
        webhook(3, "orders/paid", paid(3, 502, "2026-02-25")),
        webhook(
            4,
            "refunds/create",
            {"id": 9, "order_id": 3, "refund_line_items": [{"subtotal": "100.00"}]},
        ),
        webhook(5, "orders/create", paid(4, 503, "2026-02-26", financial_status="pending")),
        webhook(6, "orders/paid", paid(5, None, "2026-02-26")),  # a guest
    ]

    run = Run(orders, [])

    regular = customer_doc(run, 501)
    assert (regular["frequency"], regular["monetary"]) == (2, Decimal128("100.50"))
    assert regular["last_order_day"] == datetime(2026, 2, 27, tzinfo=UTC)
    assert regular["r"] is None  # scored by the next tick, not by an order
    assert regular["next_exit"] == datetime(2027, 2, 20, tzinfo=UTC)
    refunded, unpaid = customer_doc(run, 502), customer_doc(run, 503)
    assert (refunded["frequency"], refunded["segment"]) == (0, "prospects")
    assert (unpaid["frequency"], unpaid["segment"]) == (0, "prospects")
    assert len(run.latest(RFM_CUSTOMERS)) == 3
    [picture] = run.latest(RFM_MERCHANTS).values()
    assert picture["total"] == 3
    assert picture["counts"]["prospects"] == 2
    assert picture["counts"]["need_attention"] == 1  # alone, the regular scores 3 and 3
    assert picture["as_of"] == datetime(2026, 2, 27, tzinfo=UTC)
    assert sorted((u["shopify_customer_id"], u["segment"]) for u in run.updates()) == [
        (502, "prospects"),
        (503, "prospects"),
    ]


def test_a_tick_scores_a_customer_and_says_so_once() -> None:
    scales = threshold_scales(THRESHOLDS, MARCH_1)
    tick = CustomerTick(MERCHANT, 777, Tick(MARCH_1, scales, 4), lookback_days=365)

    run = Run([], [command(0, encode(tick)), command(1, encode(tick))])

    doc = customer_doc(run, 777)
    assert (doc["segment"], doc["scales_version"], doc["v"]) == ("prospects", 4, 2)
    [update] = run.updates()
    assert update["previous_segment"] is None
    assert update["as_of"] == date(2026, 3, 1)
    assert update["event_id"] == ids.event_id("rfm.updated", MERCHANT, 777, 1)


def test_settings_and_days_shape_the_picture_whatever_their_order() -> None:
    orders: list[SourceItem] = [webhook(0, "orders/paid", paid(1, 501, "2026-02-27", "60.00"))]
    commands: list[SourceItem] = [
        command(0, encode(Settings(MERCHANT, THRESHOLDS))),
        command(1, encode(DayTick(MERCHANT, MARCH_1))),
    ]

    run = Run(orders, commands)

    [picture] = run.latest(RFM_MERCHANTS).values()
    assert picture["as_of"] == datetime(2026, 3, 1, tzinfo=UTC)
    # Two days ago (R5), one order (F1): a new customer, by the merchant's thresholds.
    assert picture["counts"]["new_customers"] == 1
    assert picture["scales"]["frequency"] == [2, 3, 5, 10]


def test_what_cannot_be_used_is_dead_lettered_with_its_reason() -> None:
    undated = paid(1, 501, "2026-02-27")
    del undated["processed_at"]
    orders: list[SourceItem] = [
        webhook(0, "orders/paid", undated),
        webhook(
            1, "orders/paid", paid(2, 501, "2026-02-27"), **{"LoyalNest-RFM-Lookback-Days": b"0"}
        ),
        webhook(2, "orders/paid", paid(3, 501, "2026-02-27")),
    ]
    commands: list[SourceItem] = [command(0, b'{"type":"rfm.nap","merchant_id":"m"}')]

    run = Run(orders, commands)

    reasons = sorted(
        (dict(d.headers)[DLQ_STEP], dict(d.headers)[DLQ_REASON]) for d in run.dead_letters
    )
    assert reasons == [
        (b"decode-command", b"unknown rfm command type 'rfm.nap'"),
        (b"decode-order", b"lookback days must be from 1 to 3650, got 0"),
        (b"order-state", b"order has neither processed_at nor created_at: RFM cannot date it"),
    ]
    assert {dict(d.headers)[DLQ_FLOW] for d in run.dead_letters} == {b"rfm"}
    assert customer_doc(run, 501)["frequency"] == 1  # the valid order after them counts


def test_the_merchants_window_is_the_one_its_orders_carry() -> None:
    lookback = {"LoyalNest-RFM-Lookback-Days": b"90"}
    orders: list[SourceItem] = [
        webhook(0, "orders/paid", paid(1, 501, "2026-02-27"), **lookback),
        webhook(1, "orders/paid", paid(2, 502, "2025-12-01"), **lookback),  # 88 days before
    ]

    run = Run(orders, [])

    [picture] = run.latest(RFM_MERCHANTS).values()
    assert picture["lookback_days"] == 90
    assert customer_doc(run, 502)["next_exit"] == datetime(2026, 3, 1, tzinfo=UTC)


def test_an_old_order_re_driven_from_a_dead_letter_counts_at_its_own_day() -> None:
    """`loyalnest dlq replay` re-drives an order weeks after it was placed, behind newer ones:
    it is dated by its own `processed_at`, inside the window, not dropped as late."""
    newer = webhook(0, "orders/paid", paid(11, 601, "2026-02-27", "60.00"))
    redriven = webhook(
        1,
        "orders/paid",
        paid(10, 601, "2026-01-15", "40.00"),
        **{"dlq-attempt": b"1", "dlq-replayed-from": b"points.dlq/0/7"},
    )

    run = Run([newer, redriven], [])

    customer = customer_doc(run, 601)
    assert (customer["frequency"], customer["monetary"]) == (2, Decimal128("100.00"))
    assert customer["last_order_day"] == datetime(2026, 2, 27, tzinfo=UTC)
    assert customer["next_exit"] == datetime(2027, 1, 15, tzinfo=UTC)  # its own day + 365
    assert run.dead_letters == []
