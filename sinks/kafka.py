"""Kafka sinks that fail loudly when a message is not delivered.

Bytewax's own KafkaSink flushes without looking at delivery reports, so a message the broker
never acknowledged would be dropped silently. For a ledger that is a lost balance change.
These sinks raise instead: the flow stops, the supervisor restarts it, and recovery replays
what was not acknowledged (the idempotent producer and the consumers' dedup make the repeat
harmless). ReliableKafkaSink waits for every batch; SnapshotKafkaSink only for each epoch's
snapshot, which is all recovery needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)
from confluent_kafka import KafkaError, Message, Producer

from connectors.kafka import SinkMessage, produce_when_room
from loyalnest.topics import DEAD_LETTER_BYTES

FLUSH_TIMEOUT = 60.0


class KafkaDeliveryError(RuntimeError):
    """The broker did not acknowledge every message of a batch (or of an epoch)."""


class _Producing:
    """Produces messages and keeps the broker's refusals until they are checked."""

    def __init__(self, producer: Producer, topic: str | None) -> None:
        self._producer = producer
        self._topic = topic
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def _produce_all(self, items: Iterable[SinkMessage]) -> None:
        for item in items:
            topic = item.topic or self._topic
            if topic is None:
                raise ValueError("message has no topic and the sink has no default")
            self._produce(topic, item)

    def _produce(self, topic: str, item: SinkMessage) -> None:
        produce = partial(
            self._producer.produce,
            topic,
            value=item.value,
            key=item.key,
            headers=list[tuple[str, str | bytes | None]](item.headers),
            on_delivery=self._on_delivery,
        )
        produce_when_room(produce, self._producer.poll)

    def _check(self, remaining: int) -> None:
        """Raise if `remaining` messages are still unacknowledged or any was refused."""
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise KafkaDeliveryError(
                f"{remaining} message(s) unacknowledged, {len(errors)} failed: {errors[:3]}"
            )

    def close(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT)


class _Partition(_Producing, StatelessSinkPartition[SinkMessage]):
    def write_batch(self, items: list[SinkMessage]) -> None:
        self._produce_all(items)
        self._check(self._producer.flush(FLUSH_TIMEOUT))


class _FlushedAtSnapshot(_Producing, StatefulSinkPartition[SinkMessage, None]):
    def write_batch(self, values: list[SinkMessage]) -> None:
        self._produce_all(values)
        self._producer.poll(0)  # delivery reports so far: a refusal stops the flow early
        self._check(0)

    def snapshot(self) -> None:
        # Every message of the epoch is acknowledged before its snapshot is kept, so a flow
        # resumed from that snapshot has nothing of it left to send.
        self._check(self._producer.flush(FLUSH_TIMEOUT))


class ReliableKafkaSink(DynamicSink[SinkMessage]):
    def __init__(
        self, brokers: list[str], topic: str | None = None, config: dict[str, Any] | None = None
    ) -> None:
        self._config = _producer_config(brokers, config)
        self._topic = topic

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[SinkMessage]:
        return _Partition(Producer(self._config), self._topic)


class SnapshotKafkaSink(FixedPartitionedSink[SinkMessage, None]):
    """Like ReliableKafkaSink, but a batch is not waited for: the partition's messages are
    all acknowledged (or the flow stops) when the epoch's snapshot is taken, instead of after
    every batch. A flow whose outputs come back to it, or to another flow, soon (the tiers
    flow's bonuses, which the points flow's balance-write hold should meet) then sends them
    without spending its time waiting for acknowledgements. Values are keyed (the key routes
    them to one of `partitions` producers, spread over the flow's workers)."""

    def __init__(self, brokers: list[str], topic: str | None = None, partitions: int = 1) -> None:
        self._config = _producer_config(brokers)
        self._topic = topic
        self._partitions = partitions

    def list_parts(self) -> list[str]:
        return [f"kafka-{n}" for n in range(self._partitions)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[SinkMessage, None]:
        return _FlushedAtSnapshot(Producer(self._config), self._topic)


def routed(message: SinkMessage) -> str:
    """The routing key of a message for a SnapshotKafkaSink: its record key."""
    return "" if message.key is None else message.key.decode("utf-8", "replace")


def _producer_config(brokers: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "bootstrap.servers": ",".join(brokers),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "log_level": 3,
        **(extra or {}),
    }


def dead_letter_sink(brokers: list[str], topic: str) -> ReliableKafkaSink:
    """The sink of a dead-letter topic: its records are as large as the largest source record
    plus the dead-letter headers, beyond the producer's default limit (1,000,000 bytes)."""
    return ReliableKafkaSink(brokers, topic, {"message.max.bytes": DEAD_LETTER_BYTES})
