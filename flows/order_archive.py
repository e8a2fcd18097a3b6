"""Archive every Shopify order event exactly once in MongoDB (`order_events`).

The smallest complete flow: Kafka in, decode with errors to the dead-letter topic, batched
idempotent writes out. The document id is derived from the event's content, so duplicate
deliveries and replays of the topic land on the same document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from pymongo import InsertOne

from connectors.kafka import SinkMessage, SourceItem, SourceMessage, header
from connectors.kafka import source as kafka_source
from flows.common import Rejected, broker_time, only, to_dead_letter
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_DLQ, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.orders import InvalidEventError, OrderEvent, parse_order_event
from sinks.kafka import ReliableKafkaSink
from sinks.mongo import MongoSink, RoutedWrite

COLLECTION = "order_events"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_HEADER = "X-Shopify-Shop-Domain"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
DECODE_STEP = "order-archive.decode"


@dataclass(frozen=True)
class Decoded:
    message: SourceMessage
    event: OrderEvent


def decode(item: SourceItem) -> Decoded | Rejected:
    if isinstance(item, KafkaError):
        return Rejected(item.msg, f"kafka error: {item.err}", DECODE_STEP)
    try:
        event = parse_order_event(header(item, SHOP_HEADER), header(item, TOPIC_HEADER), item.value)
    except InvalidEventError as exc:
        return Rejected(item, str(exc), DECODE_STEP)
    return Decoded(item, event)


def archive_write(decoded: Decoded) -> RoutedWrite:
    event, message = decoded.event, decoded.message
    raw = message.value or b""
    shop = ids.normalize_shop(event.shop)
    doc_id = ids.event_id(shop, event.topic, hashlib.sha256(raw).hexdigest())
    return f"{shop}:{event.order_id}", (
        COLLECTION,
        InsertOne(
            {
                "_id": str(doc_id),
                "merchant_id": str(ids.merchant_id(event.shop)),
                "shop": shop,
                "topic": event.topic,
                "order_id": event.order_id,
                "webhook_id": header(message, WEBHOOK_ID_HEADER),
                "received_at": broker_time(message),
                # Raw text, not a parsed document: BSON has no exact Decimal for stray JSON numbers.
                "payload": raw.decode("utf-8"),
            }
        ),
    )


def build(
    source: Source[SourceItem], archive: Sink[RoutedWrite], dead_letters: Sink[SinkMessage]
) -> Dataflow:
    flow = Dataflow("order-archive")
    messages = op.input("orders-in", flow, source)
    decoded = op.map("decode", messages, decode)
    accepted = op.filter_map("accepted", decoded, only(Decoded))
    rejected = op.filter_map("rejected", decoded, only(Rejected))
    op.output("archive-out", op.map("to-archive-write", accepted, archive_write), archive)
    op.output("dlq-out", op.map("to-dead-letter", rejected, to_dead_letter), dead_letters)
    return flow


def flow() -> Dataflow:
    """The production wiring, for `python -m bytewax.run "flows.order_archive:flow()"`."""
    settings = Settings()
    return build(
        kafka_source(settings.kafka_brokers, [settings.topic(SHOPIFY_ORDERS)]),
        MongoSink(settings.mongo_url, settings.mongo_database),
        ReliableKafkaSink(settings.kafka_brokers, settings.topic(POINTS_DLQ)),
    )
