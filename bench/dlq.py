"""`loyalnest dlq replay` throughput: DEAD_LETTERS order webhooks dead-lettered by the points
flow (real bodies, the flow's dead-letter headers) are re-driven to `shopify.orders`, timed from
the call to its return (marks read, dead letters read, re-drives and marks committed). Then the
same replay again, which must find every mark and re-drive nothing. Every re-drive is counted
on the origin topic afterwards."""

from __future__ import annotations

import io
import random
import time
from datetime import UTC, datetime

from bytewax.connectors.kafka import KafkaSourceMessage
from confluent_kafka import Producer

from bench.kit import produce_patiently
from bench.report import Targets, at_least
from bench.stackenv import bench_env
from connectors.dead_letters import dead_letter
from connectors.kafka import SourceMessage
from connectors.shopify import SHOP_HEADER, TOPIC_HEADER, encode_body
from loyalnest import dlq
from loyalnest.samples import order_body
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_DLQ, SHOPIFY_ORDERS

SHOP = b"bench-dlq.myshopify.com"
TARGETS: Targets = {"redrive_per_s": at_least(5_000)}


def produce_dead_letters(settings: Settings, prefix: str, count: int) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    rng = random.Random(5)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    headers = [(SHOP_HEADER, SHOP), (TOPIC_HEADER, b"orders/paid")]
    for n in range(count):
        body = encode_body(order_body(rng, 7_000_000 + n, 4_000_000 + n, start))
        original: SourceMessage = KafkaSourceMessage(
            key=f"{SHOP.decode()}:{n}".encode(),
            value=body,
            topic=f"{prefix}{SHOPIFY_ORDERS}",
            headers=headers,
            partition=n % 4,
            offset=n // 4,
            timestamp=(1, 1_777_000_000_000 + n),
        )
        letter = dead_letter(original, "unknown merchant", "points", "decode-order")
        produce_patiently(
            producer,
            f"{prefix}{POINTS_DLQ}",
            letter.value or b"",
            letter.key or b"",
            list(letter.headers),
        )
    if producer.flush(120):
        raise RuntimeError("dead letters not all produced")


def measure(settings: Settings, count: int) -> dict[str, float]:
    with bench_env(settings) as env:
        produce_dead_letters(settings, env.prefix, count)
        scoped = settings.model_copy(update={"kafka_topic_prefix": env.prefix})
        everything = dlq.Selection()
        started = time.perf_counter()
        first = dlq.replay(scoped, POINTS_DLQ, everything, dlq.ReplayOptions(), io.StringIO())
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = dlq.replay(scoped, POINTS_DLQ, everything, dlq.ReplayOptions(), io.StringIO())
        again_seconds = time.perf_counter() - started
        # Re-drives are committed in transactions: each commit marker takes an offset too.
        landed = dlq.records_in(settings, [env.topic(SHOPIFY_ORDERS)])
        if first.redriven != count or again.redriven != 0 or landed < count:
            raise RuntimeError(f"replay: {first.document()}, again {again.document()}")
        return {
            "dead_letters": float(count),
            "redrive_seconds": seconds,
            "redrive_per_s": count / seconds,
            "second_replay_seconds": again_seconds,
            "second_replay_redriven": float(again.redriven),
        }
