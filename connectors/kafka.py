"""Kafka plumbing shared by the flows: sources, headers and dead letters."""

from __future__ import annotations

from typing import TypeAlias

from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage, KafkaSource
from bytewax.connectors.kafka import KafkaSourceMessage as _SourceMessage

SourceMessage: TypeAlias = _SourceMessage[bytes | None, bytes | None]
SourceItem: TypeAlias = SourceMessage | KafkaError[bytes | None, bytes | None]
SinkMessage: TypeAlias = KafkaSinkMessage[bytes | None, bytes | None]

DLQ_REASON = "dlq-reason"
DLQ_STEP = "dlq-step"
DLQ_ORIGIN = "dlq-origin"


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


def dead_letter(message: SourceMessage, reason: str, step: str) -> SinkMessage:
    """The original key, bytes and headers, plus why and where it failed."""
    origin = f"{message.topic}/{message.partition}/{message.offset}"
    headers = [
        *message.headers,
        (DLQ_REASON, reason.encode()),
        (DLQ_STEP, step.encode()),
        (DLQ_ORIGIN, origin.encode()),
    ]
    return KafkaSinkMessage(key=message.key, value=message.value, headers=headers)
