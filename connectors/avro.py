"""Avro values in the Confluent wire format: magic byte 0, the schema's registry id, the body.

The id is looked up once, when the encoder is built (the bootstrap registered the schema, with
its compatibility check; producing never registers anything). After that, encoding is pure and
local, so a flow can encode inside a step and treat a record that does not fit the schema as a
dead letter rather than as an outage.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from loyalnest.schemas import schema_text, value_subject

MAGIC = b"\x00"
# What a flow step encodes an event record with (an AvroEncoder, or a fake in tests).
Encoder = Callable[[dict[str, Any]], bytes]


class AvroEncoder:
    def __init__(self, schema_id: int, schema: str) -> None:
        self._prefix = MAGIC + struct.pack(">I", schema_id)
        self._schema = fastavro.parse_schema(json.loads(schema))

    @classmethod
    def registered(cls, registry: SchemaRegistryClient, contract: str, topic: str) -> AvroEncoder:
        """The encoder for `topic` with the id under which the schema of `contract` (a base
        topic name, naming its file in avro/) is registered for it."""
        text = schema_text(contract)
        found = registry.lookup_schema(value_subject(topic), Schema(text, "AVRO"))
        if found.schema_id is None:
            raise LookupError(f"schema of {contract} is not registered for {topic}")
        return cls(found.schema_id, text)

    def __call__(self, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(self._prefix)
        fastavro.schemaless_writer(out, self._schema, record)
        return out.getvalue()
