"""Archive every Shopify order event exactly once in MongoDB (`order_events`).

The smallest complete flow: Kafka in, decode with errors to the dead-letter topic, batched
idempotent writes out. The document id is derived from the event's content, so duplicate
deliveries and replays of the topic land on the same document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from pymongo import InsertOne

from connectors.kafka import SinkMessage, SourceItem, SourceMessage, header
from connectors.kafka import source as kafka_source
from connectors.shopify import SHOP_HEADER, TOPIC_HEADER, WEBHOOK_ID_HEADER, order_key
from connectors.store import ORDER_EVENTS
from flows.common import Rejected, broker_time, guarded_decode, only, to_dead_letter
from loyalnest import logs
from loyalnest.priority import apply_priority
from loyalnest.settings import Settings
from loyalnest.topics import ORDER_ARCHIVE_DLQ, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.orders import parse_order_event
from sinks.kafka import dead_letter_sink
from sinks.mongo import MongoSink, RoutedWrite, encoded

FLOW = "order-archive"
DECODE_STEP = "decode"


@dataclass(frozen=True)
class Archived:
    """The archive write of one order event (built in full while decoding: a record whose
    document cannot be built is that record's dead letter)."""

    write: RoutedWrite


def archive(message: SourceMessage) -> Archived:
    event = parse_order_event(
        header(message, SHOP_HEADER), header(message, TOPIC_HEADER), message.value
    )
    raw = message.value or b""
    doc_id = ids.event_id(event.shop, event.topic, hashlib.sha256(raw).hexdigest())
    document = {
        "_id": str(doc_id),
        "merchant_id": str(ids.merchant_id(event.shop)),
        "shop": event.shop,
        "topic": event.topic,
        "order_id": event.order_id,
        "webhook_id": header(message, WEBHOOK_ID_HEADER),
        "received_at": broker_time(message),
        # Raw text, not a parsed document: BSON has no exact Decimal for stray JSON numbers.
        "payload": raw.decode("utf-8"),
    }
    return Archived(
        (order_key(event.shop, event.order_id), (ORDER_EVENTS, InsertOne(encoded(document))))
    )


def build(
    source: Source[SourceItem], archive_sink: Sink[RoutedWrite], dead_letters: Sink[SinkMessage]
) -> Dataflow:
    flow = Dataflow("order-archive")
    messages = op.input("orders-in", flow, source)
    decoded = op.map("decode", messages, guarded_decode(DECODE_STEP, archive))
    accepted = op.filter_map("accepted", decoded, only(Archived))
    rejected = op.filter_map("rejected", decoded, only(Rejected))
    op.output("archive-out", op.map("to-write", accepted, lambda a: a.write), archive_sink)
    op.output(
        "dlq-out",
        op.map("to-dead-letter", rejected, lambda r: to_dead_letter(r, FLOW)),
        dead_letters,
    )
    return flow


def flow() -> Dataflow:
    """The production wiring, for `python -m bytewax.run "flows.order_archive:flow()"`."""
    settings = Settings()
    logs.configure_job(settings)
    apply_priority(settings, FLOW)
    return build(
        kafka_source(settings.kafka_brokers, [settings.topic(SHOPIFY_ORDERS)], flow=FLOW),
        MongoSink(settings.mongo_url, settings.mongo_database),
        dead_letter_sink(settings.kafka_brokers, settings.topic(ORDER_ARCHIVE_DLQ)),
    )
