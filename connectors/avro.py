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
from loyalty.errors import InvalidEventError

MAGIC = b"\x00"
HEADER_BYTES = 5  # the magic byte and a 4-byte schema id
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


class AvroDecoder:
    """Reads values written with any registered version of a contract's schema, resolved to
    the version in `avro/` (the reader's).

    Every version under the topic's subject is fetched once, when the decoder is built, so
    decoding is pure and local like encoding: a record in a schema registered later (a newer
    producer) is refused with a clear reason, to be re-driven from the dead-letter topic once
    the reader has restarted and knows that version.
    """

    def __init__(self, reader: str, writers: dict[int, str], subject: str) -> None:
        self._reader = fastavro.parse_schema(json.loads(reader))
        self._writers = {
            schema_id: fastavro.parse_schema(json.loads(text))
            for schema_id, text in writers.items()
        }
        self._subject = subject

    @classmethod
    def registered(cls, registry: SchemaRegistryClient, contract: str, topic: str) -> AvroDecoder:
        subject = value_subject(topic)
        writers: dict[int, str] = {}
        for version in registry.get_versions(subject):
            found = registry.get_version(subject, version)
            if found.schema_id is not None and found.schema.schema_str is not None:
                writers[found.schema_id] = found.schema.schema_str
        return cls(schema_text(contract), writers, subject)

    def __call__(self, raw: bytes | None) -> dict[str, Any]:
        if raw is None or len(raw) < HEADER_BYTES or raw[:1] != MAGIC:
            raise InvalidEventError("not an Avro value in the Confluent wire format")
        (schema_id,) = struct.unpack(">I", raw[1:HEADER_BYTES])
        writer = self._writers.get(schema_id)
        if writer is None:
            raise InvalidEventError(
                f"schema id {schema_id} was not registered under {self._subject} when this "
                "reader started"
            )
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(raw[HEADER_BYTES:]), writer, self._reader
            )
        except (EOFError, ValueError, fastavro.read.SchemaResolutionError) as exc:
            raise InvalidEventError(f"Avro value does not decode: {exc}") from exc
        if not isinstance(record, dict):
            raise InvalidEventError("Avro value is not a record")
        return record
