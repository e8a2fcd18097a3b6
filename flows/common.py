"""Small pieces every flow uses: rejected messages, typed splits, record times."""

from __future__ import annotations

import gc
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


def collect_garbage_less_often() -> None:
    """Run the cycle collector every 100,000 net allocations instead of every 700.

    A stateful flow allocates hundreds of short-lived objects per message (parsed JSON, records)
    while holding a large, growing state. With Python's default the collector ran every few
    messages and took about a third of the worker thread (py-spy); with this the points flow
    reached 0.79-0.81 of the store's ceiling instead of 0.74-0.75 (`python -m bench --only
    pipeline --orders 40000`, two runs each). Cyclic garbage just waits a little longer.
    """
    gc.set_threshold(100_000, 50, 100)
