"""Kafka plumbing shared by the flows: sources and headers."""

from __future__ import annotations

from typing import Any, TypeAlias

from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage, KafkaSource
from bytewax.connectors.kafka import KafkaSourceMessage as _SourceMessage

SourceMessage: TypeAlias = _SourceMessage[bytes | None, bytes | None]
SourceItem: TypeAlias = SourceMessage | KafkaError[bytes | None, bytes | None]
SinkMessage: TypeAlias = KafkaSinkMessage[bytes | None, bytes | None]
Headers: TypeAlias = list[tuple[str, Any]]
"""Kafka record headers: (name, bytes or None)."""


def source(brokers: list[str], topics: list[str], *, tail: bool = True) -> KafkaSource:
    """A source that hands consumer errors to the flow instead of crashing it."""
    return KafkaSource(
        brokers, topics, tail=tail, raise_on_errors=False, add_config={"log_level": "3"}
    )


def header(message: SourceMessage, name: str) -> str | None:
    """The first header of that name (case-insensitive), decoded as UTF-8."""
    wanted = name.lower()
    for key, value in message.headers:
        if key.lower() == wanted:
            return value.decode("utf-8", errors="replace") if value is not None else None
    return None
