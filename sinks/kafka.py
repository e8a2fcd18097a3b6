"""A Kafka sink that fails loudly when a message is not delivered.

Bytewax's own KafkaSink flushes without looking at delivery reports, so a message the broker
never acknowledged would be dropped silently. For a ledger that is a lost balance change.
This sink raises instead: the flow stops, the supervisor restarts it, and recovery replays the
batch (the idempotent producer and the consumers' dedup make the repeat harmless).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from connectors.kafka import SinkMessage, produce_when_room
from loyalnest.topics import DEAD_LETTER_BYTES

FLUSH_TIMEOUT = 60.0


class KafkaDeliveryError(RuntimeError):
    """The broker did not acknowledge every message of a batch."""


class _Partition(StatelessSinkPartition[SinkMessage]):
    def __init__(self, producer: Producer, topic: str | None) -> None:
        self._producer = producer
        self._topic = topic
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def write_batch(self, items: list[SinkMessage]) -> None:
        for item in items:
            topic = item.topic or self._topic
            if topic is None:
                raise ValueError("message has no topic and the sink has no default")
            self._produce(topic, item)
        remaining = self._producer.flush(FLUSH_TIMEOUT)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise KafkaDeliveryError(
                f"{remaining} message(s) unacknowledged, {len(errors)} failed: {errors[:3]}"
            )

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

    def close(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT)


class ReliableKafkaSink(DynamicSink[SinkMessage]):
    def __init__(
        self, brokers: list[str], topic: str | None = None, config: dict[str, Any] | None = None
    ) -> None:
        self._config = {
            "bootstrap.servers": ",".join(brokers),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "log_level": 3,
            **(config or {}),
        }
        self._topic = topic

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[SinkMessage]:
        return _Partition(Producer(self._config), self._topic)


def dead_letter_sink(brokers: list[str], topic: str) -> ReliableKafkaSink:
    """The sink of a dead-letter topic: its records are as large as the largest source record
    plus the dead-letter headers, beyond the producer's default limit (1,000,000 bytes)."""
    return ReliableKafkaSink(brokers, topic, {"message.max.bytes": DEAD_LETTER_BYTES})
