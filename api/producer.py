"""An asyncio face for confluent-kafka's Producer: `await send(...)` returns once the broker
acknowledged the write (acks=all), or raises.

Delivery reports are served on the event loop itself: while any send awaits its report, a
task polls the producer every millisecond. A polling thread would hand each report back
through `call_soon_threadsafe` (a self-pipe write and a wake-up per message) and contend for
the GIL with the requests being served, which under load showed as a long latency tail.
"""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

Headers = list[tuple[str, str | bytes | None]]

POLL_INTERVAL = 0.001  # seconds between polls while a delivery report is awaited


class ProduceError(RuntimeError):
    """The broker did not acknowledge the message in time."""


class AsyncProducer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(
            {"enable.idempotence": True, "acks": "all", "linger.ms": 2, "log_level": 3, **config}
        )
        self._awaited = 0  # sends waiting for their delivery report
        self._pump: asyncio.Task[None] | None = None

    async def send(self, topic: str, *, key: bytes, value: bytes, headers: Headers) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            _settle(done, err)  # called by poll(), on this loop

        try:
            self._producer.produce(
                topic, key=key, value=value, headers=headers, on_delivery=on_delivery
            )
        except (BufferError, KafkaException) as exc:
            raise ProduceError(str(exc)) from exc
        self._awaited += 1
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._poll_while_awaited())
        try:
            await done
        finally:
            self._awaited -= 1

    @property
    def polling(self) -> bool:
        """Whether delivery reports are being polled for (only while a send awaits one)."""
        return self._pump is not None and not self._pump.done()

    async def _poll_while_awaited(self) -> None:
        while self._awaited:
            self._producer.poll(0)
            await asyncio.sleep(POLL_INTERVAL)

    def list_topics(self, timeout: float) -> None:
        """Raise unless the cluster answers a metadata request in time."""
        self._producer.list_topics(timeout=timeout)

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self._producer.flush(5)


def _settle(done: asyncio.Future[None], err: KafkaError | None) -> None:
    if done.done():  # the awaiting request was cancelled
        return
    if err is None:
        done.set_result(None)
    else:
        done.set_exception(ProduceError(str(err)))
