"""Webhook ingest: signed `orders/create` webhooks to the real API, each answered 200 only once
Kafka acknowledged it.

Every delivery has its own X-Shopify-Webhook-Id, so none is a duplicate: each one costs the
full path (HMAC, rate limit, delivery claim, produce and ack, delivery settled). The load is
spread round-robin over many shops, so the per-shop rate limit runs as configured
(WEBHOOK_RATE_LIMIT) and never refuses: `shops` shops allow `shops` x limit requests per
second. Afterwards the records on the run's `shopify.orders` topic must equal the 200s.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.http import build_request, closed_loop
from bench.report import Targets, at_least, at_most, require_status
from bench.stackenv import bench_shops, running_api
from connectors.shopify import encode_body
from loyalnest.harness.shops import Shop
from loyalnest.samples import order_body
from loyalnest.settings import Settings
from loyalnest.topics import SHOPIFY_ORDERS

WEBHOOK_PATH = "/webhooks/shopify"
TARGETS: Targets = {"req_per_s": at_least(1_000), "p99_ms": at_most(50)}


def webhook_requests(shops: list[Shop], count: int, first_order: int) -> list[bytes]:
    """Paid orders of new customers, signed by their shop, round-robin over the shops."""
    rng = random.Random(first_order)
    start = datetime(2026, 4, 1, tzinfo=UTC)
    requests = []
    for n in range(count):
        order = first_order + n
        body = encode_body(order_body(rng, order, order, start + timedelta(seconds=n)))
        headers = shops[n % len(shops)].webhook_headers("orders/create", body)
        requests.append(build_request("POST", WEBHOOK_PATH, headers, body))
    return requests


def records_on(settings: Settings, topic: str) -> int:
    """Records ever written to `topic`: the sum of its partitions' high watermarks (a fresh
    topic, no transactions, so no offset is a gap or a marker)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "bench-watermarks"}
    )
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def measure(settings: Settings, requests: int, connections: int, shops: int) -> dict[str, float]:
    merchants = bench_shops(shops)
    # Two per shop: every merchant is looked up and cached before the clock starts.
    warmup = webhook_requests(merchants, 2 * shops, first_order=10_000_000)
    load = webhook_requests(merchants, requests, first_order=20_000_000)
    with running_api(settings, merchants) as running:
        port = running.api.http_port
        warm = asyncio.run(closed_loop(port, warmup, connections))
        require_status("ingest warm-up", warm.replies)
        run = asyncio.run(closed_loop(port, load, connections))
        require_status("ingest", run.replies)
        produced = records_on(settings, running.env.topic(SHOPIFY_ORDERS))
    if produced != len(warmup) + len(load):
        raise RuntimeError(
            f"{produced} records on {SHOPIFY_ORDERS} for {len(warmup) + len(load)} 200s"
        )
    return {
        **run.summary(),
        "connections": connections,
        "shops": shops,
        "rate_limit_per_shop": settings.webhook_rate_limit,
        "records_on_topic": produced,
    }
