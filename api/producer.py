"""An asyncio face for confluent-kafka's Producer: `await send(...)` returns once the broker
acknowledged the write (acks=all), or raises. A daemon thread serves delivery callbacks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

Headers = list[tuple[str, str | bytes | None]]


class ProduceError(RuntimeError):
    """The broker did not acknowledge the message in time."""


class AsyncProducer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(
            {"enable.idempotence": True, "acks": "all", "linger.ms": 2, "log_level": 3, **config}
        )
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    async def send(self, topic: str, *, key: bytes, value: bytes, headers: Headers) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, done, err)

        try:
            self._producer.produce(
                topic, key=key, value=value, headers=headers, on_delivery=on_delivery
            )
        except (BufferError, KafkaException) as exc:
            raise ProduceError(str(exc)) from exc
        await done

    def list_topics(self, timeout: float) -> None:
        """Raise unless the cluster answers a metadata request in time."""
        self._producer.list_topics(timeout=timeout)

    def close(self) -> None:
        self._running = False
        self._poller.join(timeout=2)
        self._producer.flush(5)


def _settle(done: asyncio.Future[None], err: KafkaError | None) -> None:
    if done.done():
        return
    if err is None:
        done.set_result(None)
    else:
        done.set_exception(ProduceError(str(err)))
