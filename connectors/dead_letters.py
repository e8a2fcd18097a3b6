"""Dead letters: a record no flow could use, kept whole with why, where and when it failed.

The contract shared by every flow, the API's edge and the DLQ tools:
- key, value and headers are the original record's, byte for byte (so a re-drive is the record
  again);
- `dlq-reason` says why (bounded to MAX_REASON bytes), `dlq-flow` and `dlq-step` which flow and
  step refused it, `dlq-origin` where it came from (`topic/partition/offset`, or just the topic
  when the API refused it before it reached one), `dlq-timestamp` the original record's time
  (ms since the epoch, what the flows read as the time it was received), and `dlq-attempt`
  how many times it has been dead-lettered (a re-driven record that fails again counts up).
A re-driven record (`loyalnest dlq replay`) is the original again, with `dlq-attempt` kept and
`dlq-replayed-from` naming the dead letter (`topic/partition/offset`) it came from; the
re-drives done are marked on the compacted `dlq.replayed` topic, keyed by that same name.
Dead-letter topics are kept as long as their sources and sized to hold the largest source
record plus these headers (`loyalnest.topics`), so any record that fits its topic fits here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE
from prometheus_client import Counter

from connectors.kafka import Headers, SinkMessage, SourceMessage, correlation_of
from loyalnest.logs import CORRELATION_FIELD

log = logging.getLogger("loyalnest.dead_letters")

DLQ_PREFIX = "dlq-"
DLQ_REASON = "dlq-reason"
DLQ_FLOW = "dlq-flow"
DLQ_STEP = "dlq-step"
DLQ_ORIGIN = "dlq-origin"
DLQ_TIMESTAMP = "dlq-timestamp"
DLQ_ATTEMPT = "dlq-attempt"
DLQ_REPLAYED_FROM = "dlq-replayed-from"
MAX_REASON = 1000

# Reasons begin with these when the record is not what was wrong: the consumer failed on it, or
# a step met a value nobody foresaw (a defect). Every other reason is the record's own fault.
KAFKA_ERROR_PREFIX = "kafka error: "
DEFECT_PREFIX = "unexpected "

DEAD_LETTERS = Counter(
    "loyalnest_dead_letters_total",
    "Records sent to a dead-letter topic, by who refused them and why: reason is invalid (the "
    "record), defect (our code) or kafka_error (the consumer)",
    ["flow", "step", "reason"],
)


def reason_class(reason: str) -> str:
    """A dead letter's reason as one of a few classes: a metric label, where the free text of
    the reason (ids, values) would make a series per record."""
    if reason.startswith(KAFKA_ERROR_PREFIX):
        return "kafka_error"
    if reason.startswith(DEFECT_PREFIX):
        return "defect"
    return "invalid"


def dead_letter(message: SourceMessage, reason: str, flow: str, step: str) -> SinkMessage:
    """A record a flow read from Kafka and could not use."""
    origin = f"{message.topic}/{message.partition}/{message.offset}"
    DEAD_LETTERS.labels(flow, step, reason_class(reason)).inc()
    log.warning(
        "dead letter from %s at %s.%s: %s",
        origin,
        flow,
        step,
        reason,
        extra={CORRELATION_FIELD: correlation_of(message)},
    )
    return KafkaSinkMessage(
        key=message.key,
        value=message.value,
        headers=_headers(message.headers, reason, flow, step, origin, _timestamp_ms(message)),
    )


def edge_dead_letter(
    key: bytes,
    value: bytes,
    headers: Sequence[tuple[str, Any]],
    *,
    reason: str,
    step: str,
    origin_topic: str,
    received_at: datetime,
) -> tuple[bytes, bytes, Headers]:
    """A record the API refused before producing it to `origin_topic` (key, value, headers)."""
    ms = int(received_at.timestamp() * 1000)
    return key, value, _headers(headers, reason, "api", step, origin_topic, ms)


def _headers(
    original: Sequence[tuple[str, Any]],
    reason: str,
    flow: str,
    step: str,
    origin: str,
    timestamp_ms: int | None,
) -> Headers:
    kept = [(k, v) for k, v in original if not k.startswith(DLQ_PREFIX)]
    added: Headers = [
        (DLQ_REASON, bounded(reason)),
        (DLQ_FLOW, flow.encode()),
        (DLQ_STEP, step.encode()),
        (DLQ_ORIGIN, origin.encode()),
        (DLQ_ATTEMPT, str(attempt_of(original) + 1).encode()),
    ]
    if timestamp_ms is not None:
        added.append((DLQ_TIMESTAMP, str(timestamp_ms).encode()))
    return [*kept, *added]


def bounded(reason: str) -> bytes:
    """The reason as UTF-8, cut (on a character boundary) to MAX_REASON bytes."""
    raw = reason.encode("utf-8", errors="replace")
    if len(raw) <= MAX_REASON:
        return raw
    return raw[: MAX_REASON - 3].decode("utf-8", errors="ignore").encode() + b"..."


def attempt_of(headers: Sequence[tuple[str, Any]]) -> int:
    """How many times the record was dead-lettered before (a re-drive keeps the count)."""
    for key, value in headers:
        if key == DLQ_ATTEMPT and isinstance(value, bytes) and value.isdigit() and len(value) < 6:
            return int(value)
    return 0


def _timestamp_ms(message: SourceMessage) -> int | None:
    if message.timestamp is None or message.timestamp[0] == TIMESTAMP_NOT_AVAILABLE:
        return None
    return int(message.timestamp[1])


def redriven_headers(headers: Sequence[tuple[str, Any]], replayed_from: str) -> Headers:
    """A dead letter's headers as its re-drive carries them: the original record's, its
    attempt count (so a second failure counts up), and where it was re-driven from."""
    kept = [(k, v) for k, v in headers if not k.startswith(DLQ_PREFIX) or k == DLQ_ATTEMPT]
    return [*kept, (DLQ_REPLAYED_FROM, replayed_from.encode())]


def origin_topic(origin: str | None) -> str | None:
    """The topic a dead letter came from, read from its `dlq-origin` header."""
    if not origin:
        return None
    topic = origin.split("/", 1)[0]
    return topic or None
