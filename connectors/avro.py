"""Avro values in the Confluent wire format, with schemas looked up in the registry."""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from loyalnest.schemas import schema_text


class AvroEncoder:
    """Encodes records for a topic with the schema the bootstrap registered for it.

    `use.latest.version` makes the encoder use the registered id instead of registering
    whatever the client holds: registration is the bootstrap's job, with its compatibility
    check, not a side effect of producing.
    """

    def __init__(self, registry: SchemaRegistryClient, contract: str, topic: str) -> None:
        """`contract` names the schema in avro/ (a base topic name); `topic` is the real one."""
        self._topic = topic
        self._serializer = AvroSerializer(
            registry,
            schema_text(contract),
            conf={"auto.register.schemas": False, "use.latest.version": True},
        )

    def __call__(self, record: dict[str, Any]) -> bytes:
        value = self._serializer(record, SerializationContext(self._topic, MessageField.VALUE))
        if value is None:
            raise ValueError(f"record for {self._topic} encoded to nothing")
        return bytes(value)
