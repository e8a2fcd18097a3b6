"""Avro events travel through Kafka, described by schemas held in the real registry."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from loyalnest.bootstrap.kafka import register_schemas
from loyalnest.schemas import schema_text, value_subject
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_EARNED


def points_earned_record() -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(),
        "merchant_id": uuid.uuid4(),
        "customer_id": uuid.uuid4(),
        "shopify_customer_id": 1042,
        "points": 125,
        "balance": 300,
        "type": "earn",
        "locale": "he",
        "description": "צברת 125 נקודות",
        "order_id": 5_000_001,
        "refund_id": None,
        "schema_version": "1.0.0",
        "created_at": datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        "correlation_id": "c-1",
        "source": "order",
        "source_id": "5000001",
        "pending": None,
        "delta": 125,
    }


def test_avro_record_round_trips_through_kafka_with_registered_schema(
    settings: Settings, registry: SchemaRegistryClient, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("avro")
    subject = value_subject(topic)
    schema_id = registry.register_schema(subject, Schema(schema_text(POINTS_EARNED), "AVRO"))
    serializer = AvroSerializer(
        registry,
        schema_text(POINTS_EARNED),
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    record = points_earned_record()

    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    value = serializer(record, SerializationContext(topic, MessageField.VALUE))
    assert value is not None
    producer.produce(topic, value=value, key=b"k")
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"t-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        message = consumer.poll(30)
    finally:
        consumer.close()
    assert message is not None
    assert message.error() is None
    raw = message.value()
    assert raw is not None
    # Confluent wire format: magic byte 0, then the registry's schema id.
    assert raw[0] == 0
    assert int.from_bytes(raw[1:5], "big") == schema_id
    decoded = AvroDeserializer(registry)(raw, SerializationContext(topic, MessageField.VALUE))
    assert decoded == record


def test_registry_rejects_a_backward_incompatible_change(registry: SchemaRegistryClient) -> None:
    subject = value_subject(f"compat.{uuid.uuid4().hex[:10]}")
    registry.set_compatibility(subject, "BACKWARD")
    registry.register_schema(subject, Schema(schema_text(POINTS_EARNED), "AVRO"))
    # A new required field without a default cannot read old records.
    breaking = schema_text(POINTS_EARNED).replace(
        '"fields": [', '"fields": [\n    {"name": "tier", "type": "string"},', 1
    )
    assert registry.test_compatibility(subject, Schema(breaking, "AVRO")) is False
    with pytest.raises(SchemaRegistryError):
        registry.register_schema(subject, Schema(breaking, "AVRO"))


def test_schema_registration_is_idempotent(registry: SchemaRegistryClient) -> None:
    first = register_schemas(registry)
    second = register_schemas(registry)
    assert first == second
    assert registry.get_compatibility(value_subject(POINTS_EARNED)) == "BACKWARD"
