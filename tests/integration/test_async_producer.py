"""The API's producer against the real broker: each `send` returns once its record is
acknowledged, delivery reports are served on the event loop (no thread), and the loop stops
polling once nothing awaits a report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from api.producer import AsyncProducer, ProduceError
from loyalnest.settings import Settings
from tests.integration.points_harness import read_log

SENDS = 500


def producer(settings: Settings, **config: object) -> AsyncProducer:
    return AsyncProducer({"bootstrap.servers": settings.kafka_bootstrap_servers, **config})


def test_concurrent_sends_are_each_acknowledged_once(
    settings: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("producer", partitions=3)

    async def send_all() -> None:
        kafka = producer(settings)
        try:
            await asyncio.gather(
                *(
                    kafka.send(topic, key=b"%d" % i, value=b"v%d" % i, headers=[("n", str(i))])
                    for i in range(SENDS)
                )
            )
            async with asyncio.timeout(1):  # the polling task sees nothing awaited, and ends
                while kafka.polling:
                    await asyncio.sleep(0.001)
        finally:
            kafka.close()

    asyncio.run(send_all())

    values = sorted(int(m.value[1:]) for m in read_log(settings, topic))
    assert values == list(range(SENDS))


def test_a_send_the_broker_refuses_raises_produce_error(settings: Settings) -> None:
    async def send_to_missing_topic() -> None:
        # The broker's answer is not final until the topic could have been created: 2 s here
        kafka = producer(settings, **{"topic.metadata.propagation.max.ms": 2000})
        try:
            await kafka.send("no.such.topic.for.the.producer", key=b"k", value=b"v", headers=[])
        finally:
            kafka.close()

    with pytest.raises(ProduceError, match="Unknown topic"):
        asyncio.run(send_to_missing_topic())
