"""The Kafka sinks: when they wait for the broker's acknowledgements, and that a refused or
unacknowledged message always stops the flow (a fake producer stands in for the broker; the
flows' integration tests run them against Kafka)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSinkMessage

from sinks.kafka import (
    KafkaDeliveryError,
    ReliableKafkaSink,
    SnapshotKafkaSink,
    _FlushedAtSnapshot,
    _Partition,
    routed,
)

Report = Callable[[Any, Any], None]


@dataclass
class Refusal:
    def __str__(self) -> str:
        return "Broker: Message size too large"


@dataclass
class FakeProducer:
    """Keeps what is produced; `flush` (and `poll`, if `polls_deliver`) delivers it, refusing
    the topics in `refused`; `flush` leaves `stuck` messages unacknowledged."""

    refused: set[str] = field(default_factory=set)
    polls_deliver: bool = True
    stuck: int = 0
    produced: list[tuple[str, bytes | None]] = field(default_factory=list)
    pending: list[tuple[str, Report]] = field(default_factory=list)
    flushes: int = 0

    def produce(self, topic: str, *, value: bytes | None, on_delivery: Report, **_: Any) -> None:
        self.produced.append((topic, value))
        self.pending.append((topic, on_delivery))

    def poll(self, _timeout: float) -> int:
        return self._deliver() if self.polls_deliver else 0

    def _deliver(self) -> int:
        served, self.pending = self.pending, []
        for topic, report in served:
            message = type("M", (), {"topic": lambda _self, t=topic: t})()
            report(Refusal() if topic in self.refused else None, message)
        return len(served)

    def flush(self, _timeout: float) -> int:
        self.flushes += 1
        self._deliver()
        return self.stuck


def message(value: bytes, topic: str | None = None) -> KafkaSinkMessage[bytes, bytes]:
    return KafkaSinkMessage(key=b"m:1", value=value, topic=topic)


def test_the_reliable_sink_waits_for_every_batch() -> None:
    producer = FakeProducer()
    part = _Partition(producer, "points.commands")  # type: ignore[arg-type]

    part.write_batch([message(b"a"), message(b"b", "other")])

    assert producer.produced == [("points.commands", b"a"), ("other", b"b")]
    assert producer.flushes == 1


def test_the_snapshot_sink_waits_only_at_the_snapshot() -> None:
    producer = FakeProducer()
    part = _FlushedAtSnapshot(producer, "points.commands")  # type: ignore[arg-type]

    part.write_batch([message(b"a")])
    part.write_batch([message(b"b")])
    assert (producer.flushes, len(producer.produced)) == (0, 2)

    part.snapshot()  # nothing to resume with: every message is acknowledged
    assert producer.flushes == 1


def test_a_message_unacknowledged_at_the_snapshot_stops_the_flow() -> None:
    producer = FakeProducer(stuck=1)
    part = _FlushedAtSnapshot(producer, "points.commands")  # type: ignore[arg-type]
    part.write_batch([message(b"a")])

    with pytest.raises(KafkaDeliveryError, match="1 message"):
        part.snapshot()


def test_a_refusal_stops_the_flow_at_the_next_batch_or_the_snapshot() -> None:
    producer = FakeProducer(refused={"points.commands"})
    part = _FlushedAtSnapshot(producer, "points.commands")  # type: ignore[arg-type]

    with pytest.raises(KafkaDeliveryError, match="too large"):
        part.write_batch([message(b"a")])  # its report arrives in the batch's poll

    slow = FakeProducer(refused={"x"}, polls_deliver=False)  # the report comes later
    refused_late = _FlushedAtSnapshot(slow, "x")  # type: ignore[arg-type]
    refused_late.write_batch([message(b"b")])
    with pytest.raises(KafkaDeliveryError, match="too large"):
        refused_late.snapshot()


def test_a_message_without_a_topic_is_refused_before_it_is_sent() -> None:
    producer = FakeProducer()
    with pytest.raises(ValueError, match="no topic"):
        _FlushedAtSnapshot(producer, None).write_batch([message(b"a")])  # type: ignore[arg-type]
    assert producer.produced == []


def test_messages_are_routed_by_their_key() -> None:
    assert routed(message(b"a")) == "m:1"
    assert routed(KafkaSinkMessage(key=None, value=b"a")) == ""
    sink = SnapshotKafkaSink(["localhost:9092"], "t", partitions=3)
    assert sink.list_parts() == ["kafka-0", "kafka-1", "kafka-2"]
    assert ReliableKafkaSink(["localhost:9092"])._config["acks"] == sink._config["acks"] == "all"
