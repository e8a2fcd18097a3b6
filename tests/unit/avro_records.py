"""An event record through its contract's Avro schema (avro/), and back, for unit tests."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fastavro

from loyalnest.schemas import schema_text


def avro_bytes(contract: str, record: dict[str, Any]) -> bytes:
    """The record written with the contract's schema (raises if it does not fit)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _schema(contract), record)
    return out.getvalue()


def avro_round_trip(contract: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record written and read back; uuid logical types (read back as UUIDs) as text, as
    records give them."""
    schema = _schema(contract)
    read: dict[str, Any] = fastavro.schemaless_reader(  # type: ignore[assignment]
        io.BytesIO(avro_bytes(contract, record)), schema, schema
    )
    return {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in read.items()}


def _schema(contract: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_text(contract)))
