"""Small pieces the benchmarks share: reading a process's /metrics, producing under load."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from functools import partial

import httpx
from confluent_kafka import Producer

from connectors.kafka import produce_when_room


@functools.cache
def _client() -> httpx.Client:
    """One client for every poll: `httpx.get` builds a client, and with it an SSL context
    loading the CA bundle, on every call, which cost a third of a core at ten polls a second,
    taken from the flow and the store being measured."""
    return httpx.Client()


def metrics_text(port: int, timeout: float = 5.0) -> str:
    """The Prometheus text of the process answering on 127.0.0.1:`port`."""
    return _client().get(f"http://127.0.0.1:{port}/metrics", timeout=timeout).text


def produce_patiently(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes,
    headers: Sequence[tuple[str, str | bytes | None]] | None = None,
) -> None:
    """Produce one record, waiting for deliveries to make room when the local queue is full."""
    record = partial(producer.produce, topic, value=value, key=key, headers=list(headers or []))
    produce_when_room(record, producer.poll)
    producer.poll(0)
