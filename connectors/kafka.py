"""Kafka plumbing shared by the flows: sources and headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage, KafkaSource
from bytewax.connectors.kafka import KafkaSourceMessage as _SourceMessage

SourceMessage: TypeAlias = _SourceMessage[bytes | None, bytes | None]
SourceItem: TypeAlias = SourceMessage | KafkaError[bytes | None, bytes | None]
SinkMessage: TypeAlias = KafkaSinkMessage[bytes | None, bytes | None]
Headers: TypeAlias = list[tuple[str, Any]]
"""Kafka record headers: (name, bytes or None)."""


_CLIENT_PREFIX = "loyalnest-"
# What each partition's consumer fetches ahead of the flow. Bytewax opens one consumer per
# partition, and librdkafka's defaults (100,000 messages or 64 MiB each) let a flow that starts
# behind (a backlog after downtime) pull whole partitions into memory, whose pages the
# allocator then keeps. 1 MiB each is still about three polls ahead (BATCH records of
# 1-2 KB); 4 MiB let the points flow's 8 partitions hold up to 32 MiB, for the same
# throughput (`python -m bench --only pipeline --orders 100000`: 121 MiB per 100,000
# customers, 1,185 orders/s, against 137-160 MiB at 60,000 orders with 4 MiB).
PREFETCH = {"queued.min.messages": "2000", "queued.max.messages.kbytes": "1024"}
# Records each partition hands the flow per poll (Bytewax's default is 1,000). A flow's sinks
# get one batch per poll of all partitions: smaller ones keep the store's writes flowing
# while the worker computes the next, and bound what waits in memory and in the Mongo sink's
# snapshot (at 60,000 orders: 146-147 against 188-219 MiB per 100,000 customers, the same
# throughput within the run-to-run noise; `python -m bench --only pipeline`).
BATCH = 250


def source(brokers: list[str], topics: list[str], *, flow: str, tail: bool = True) -> KafkaSource:
    """A source that hands consumer errors to the flow instead of crashing it. It reads
    committed records only: a `loyalnest dlq replay` stopped inside a transaction leaves
    re-drives that no flow must see (the replay marks only committed ones as done). Its
    consumers are named after `flow` (`client.id`, in the brokers' logs and quotas). Bytewax
    reports each partition's lag as `bytewax_kafka_consumer_lag{step_id,topic,partition}` on
    the flow's /metrics (the last stable offset minus the flow's next offset)."""
    config = {
        "log_level": "3",
        "isolation.level": "read_committed",
        "client.id": f"{_CLIENT_PREFIX}{flow}",
        **PREFETCH,
    }
    return KafkaSource(
        brokers, topics, tail=tail, raise_on_errors=False, add_config=config, batch_size=BATCH
    )


def produce_when_room(produce: Callable[[], object], poll: Callable[[float], object]) -> None:
    """`produce()` one record; while the producer's local queue is full (BufferError), `poll`
    its deliveries a tenth of a second at a time and try again."""
    while True:
        try:
            produce()
            return
        except BufferError:
            poll(0.1)


CORRELATION_HEADER = "X-Correlation-Id"
"""The id a webhook's order keeps through every topic it leads to, and in every log line."""


def correlation_of(message: SourceMessage) -> str | None:
    """The record's correlation id, if it carries one."""
    return header(message, CORRELATION_HEADER)


def correlation_headers(correlation_id: str | None) -> Headers:
    """Headers passing a correlation id on to a record a flow writes (none without one)."""
    return [] if correlation_id is None else [(CORRELATION_HEADER, correlation_id.encode())]


def header(message: SourceMessage, name: str) -> str | None:
    """The first header of that name (case-insensitive), decoded as UTF-8."""
    wanted = name.lower()
    for key, value in message.headers:
        if key.lower() == wanted:
            return _text(value)
    return None


def header_map(message: SourceMessage) -> dict[str, str | None]:
    """Every header by lower-cased name (the first of a repeated name wins), decoded as UTF-8:
    one pass over the record's headers for a step that reads several of them."""
    found: dict[str, str | None] = {}
    for key, value in message.headers:
        found.setdefault(key.lower(), _text(value))
    return found


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", errors="replace") if value is not None else None
