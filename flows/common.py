"""Small pieces every flow uses: rejected messages, typed splits, record times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from connectors.kafka import SinkMessage, SourceMessage, dead_letter

T = TypeVar("T")


@dataclass(frozen=True)
class Rejected:
    """A message the flow cannot use, and why; it goes to the dead-letter topic."""

    message: SourceMessage
    reason: str
    step: str


def to_dead_letter(rejected: Rejected) -> SinkMessage:
    return dead_letter(rejected.message, rejected.reason, rejected.step)


def only(kind: type[T]) -> Callable[[object], T | None]:
    """A filter_map mapper keeping the items of one type (a typed split of a stream)."""
    return lambda item: item if isinstance(item, kind) else None


def broker_time(message: SourceMessage) -> datetime | None:
    """When the record was stamped (producer or broker); None when Kafka has no timestamp.

    It is part of the log, so a replay sees the same time: flows use it, not the clock.
    """
    if message.timestamp is None or message.timestamp[0] == TIMESTAMP_NOT_AVAILABLE:
        return None
    return datetime.fromtimestamp(message.timestamp[1] / 1000, tz=UTC)
