"""The order-archive dataflow on real Kafka, writing through the batched MongoDB sink."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from bytewax.testing import run_main
from confluent_kafka import Consumer, Producer
from pymongo.database import Database

from connectors.dead_letters import DLQ_REASON
from connectors.kafka import source as kafka_source
from connectors.shopify import encode_body, kafka_headers, partition_key
from connectors.store import ORDER_EVENTS
from flows.order_archive import build
from loyalnest.samples import sample_orders
from loyalnest.settings import Settings
from sinks.kafka import ReliableKafkaSink
from sinks.mongo import MongoSink

SHOP = "flow-test.myshopify.com"


def produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes, list[Any]]]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "linger.ms": 5})
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(60) == 0


def consume_all(settings: Settings, topic: str, expected: int) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"t-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    try:
        for _ in range(60):
            message = consumer.poll(1)
            if message is not None and message.error() is None:
                messages.append(message)
            if len(messages) >= expected:
                break
    finally:
        consumer.close()
    return messages


def order_records(count: int, duplicate_every: int) -> list[tuple[bytes, bytes, list[Any]]]:
    """`count` distinct orders; every `duplicate_every`-th is delivered twice (same bytes)."""
    records = []
    for n, webhook in enumerate(sample_orders(SHOP, count, customers=50, seed=11)):
        record = (
            partition_key(SHOP, webhook.topic, webhook.body),
            encode_body(webhook.body),
            kafka_headers(webhook.headers, f"corr-{n}"),
        )
        records.append(record)
        if n % duplicate_every == 0:
            records.append(record)
    return records


def run_archive(settings: Settings, topic: str, dlq: str, db: Database[Any]) -> None:
    flow = build(
        kafka_source(settings.kafka_brokers, [topic], flow="order-archive", tail=False),
        MongoSink(settings.mongo_url, db.name),
        ReliableKafkaSink(settings.kafka_brokers, dlq),
    )
    run_main(flow)  # type: ignore[no-untyped-call]


def test_flow_archives_each_order_once_and_dead_letters_bad_messages(
    settings: Settings, make_topic: Callable[..., str], mongo_db: Database[Any]
) -> None:
    orders, dlq = make_topic("orders", partitions=3), make_topic("dlq")
    records = order_records(2_500, duplicate_every=5)  # 2,500 orders + 500 duplicates
    bad_headers = [("X-Shopify-Topic", b"orders/create"), ("X-Shopify-Shop-Domain", SHOP.encode())]
    records.insert(100, (b"bad", b"{not json", bad_headers))
    produce(settings, orders, records)

    run_archive(settings, orders, dlq, mongo_db)

    assert mongo_db[ORDER_EVENTS].count_documents({}) == 2_500
    assert len(mongo_db[ORDER_EVENTS].distinct("order_id")) == 2_500
    dead = consume_all(settings, dlq, expected=1)
    assert [m.value() for m in dead] == [b"{not json"]
    reason = dict(dead[0].headers())[DLQ_REASON]
    assert reason.startswith(b"not JSON")


def test_replaying_the_topic_changes_nothing(
    settings: Settings, make_topic: Callable[..., str], mongo_db: Database[Any]
) -> None:
    orders, dlq = make_topic("orders", partitions=2), make_topic("dlq")
    produce(settings, orders, order_records(300, duplicate_every=3))

    run_archive(settings, orders, dlq, mongo_db)
    first = sorted(d["_id"] for d in mongo_db[ORDER_EVENTS].find({}, {"_id": 1}))
    run_archive(settings, orders, dlq, mongo_db)  # the whole topic again, from offset 0
    second = sorted(d["_id"] for d in mongo_db[ORDER_EVENTS].find({}, {"_id": 1}))

    assert len(first) == 300
    assert second == first
