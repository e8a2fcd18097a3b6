"""Pipeline throughput: orders/s from Kafka to ledger + balances, against the store's ceiling.

Every order is a paid order of its own customer, so N orders are N ledger entries, N balances
and N customers held in flow state: the same run gives the flow's memory per customer. The
merchant has pending points and lot expiry turned on (the costlier terms: every earn is held,
dated and due), as POLICY says.

Besides the rate with start-up (flow start to last balance), the run reports the steady rate
(first to last balance written) and what each 1,000 orders cost in CPU seconds, of the flow
process and of the store process (from /proc, over the same window).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from confluent_kafka import Producer

from bench.earns import first_earn_writes
from bench.kit import metrics_text, produce_patiently
from bench.proc import cpu_seconds, store_pid
from bench.report import Targets, at_least, at_most
from bench.stackenv import bench_env, flow_process
from connectors.shopify import SHOP_HEADER, TOPIC_HEADER, encode_body, kafka_headers, partition_key
from connectors.store import BALANCES
from loyalnest.bootstrap.mongo import ensure_collections
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import wait_until
from loyalnest.samples import order_body
from loyalnest.settings import Settings
from loyalnest.topics import SHOPIFY_ORDERS
from loyalty import ids
from loyalty.policy import Expiry, Policy
from sinks.mongo import MongoWrite, MongoWriter

SHOP = "bench.myshopify.com"
POLICY = Policy(pending_days=2, expiry=Expiry.parse("lot:365"))
TARGETS: Targets = {
    "pipeline_orders_per_s": at_least(1_000),
    "pipeline_vs_ceiling": at_least(0.70),
    "flow_mib_per_100k_customers": at_most(150),
    "flow_cpu_s_per_1k_orders": at_most(0.20),
    "store_cpu_s_per_1k_orders": at_most(0.60),
}


def produce_orders(env: Deployment, count: int) -> None:
    producer = Producer(
        {
            "bootstrap.servers": env.settings.kafka_bootstrap_servers,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    rng = random.Random(1)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    headers = kafka_headers({TOPIC_HEADER: "orders/create", SHOP_HEADER: SHOP}, "bench", POLICY)
    for n in range(count):
        body = order_body(rng, 9_000_000 + n, 2_000_000 + n, start + timedelta(seconds=n))
        key = partition_key(SHOP, "orders/create", body)
        produce_patiently(producer, env.topic(SHOPIFY_ORDERS), encode_body(body), key, headers)
    if producer.flush(120):
        raise RuntimeError("orders not all produced")


def balances_written(port: int) -> float:
    """Balances the flow's sink has had acknowledged, from the flow's own metrics.

    Counting in the store instead would distort the run: SecantusDB counts by scanning.
    """
    labels = f'collection="{BALANCES}",outcome="applied"'
    return metric(port, f"loyalnest_mongo_sink_writes_total{{{labels}}}")


def ceiling_writes(count: int) -> list[MongoWrite]:
    """The documents the flow writes for `count` first orders, built by the flow's own code."""
    merchant = str(ids.merchant_id(SHOP))
    at = datetime(2026, 3, 1, tzinfo=UTC)
    writes: list[MongoWrite] = []
    for n in range(count):
        writes.extend(
            first_earn_writes(
                ids.event_key("ceiling", n),
                merchant,
                2_000_000 + n,
                9_000_000 + n,
                100,
                at,
                str(uuid.UUID(int=n)),
            )
        )
    return writes


def store_ceiling(settings: Settings, count: int) -> float:
    """Orders/s the store takes when the same writes are bulk-written directly."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    db = client[f"bench_ceiling_{uuid.uuid4().hex[:8]}"]
    ensure_collections(db)
    writes = ceiling_writes(count)
    writer = MongoWriter(db)
    try:
        started = time.perf_counter()
        for i in range(0, len(writes), 2000):  # batches as the flow's sink sees them
            stats = writer.write(writes[i : i + 2000])
            if stats.duplicates:
                raise RuntimeError(f"ceiling run hit {stats.duplicates} duplicate keys")
        return count / (time.perf_counter() - started)
    finally:
        client.drop_database(db.name)
        client.close()


@dataclass
class Progress:
    """When the first and the last balance write were acknowledged (perf_counter seconds)."""

    orders: int
    port: int
    first: float | None = None
    last: float | None = None

    def done(self) -> bool:
        written = balances_written(self.port)
        now = time.perf_counter()
        if written > 0 and self.first is None:
            self.first = now
        if written >= self.orders:
            self.last = now
        return self.last is not None


def measure(settings: Settings, orders: int, port: int = 3130) -> dict[str, float]:
    with bench_env(settings) as env:
        produce_orders(env, orders)
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
        db = client[env.database]
        idle = flow_process_idle_rss(settings, port + 1)
        store = store_pid(settings)
        started = time.perf_counter()
        flow = flow_process(env, port)
        flow_cpu, store_cpu = cpu_seconds(flow.pid), cpu_seconds(store) if store else 0.0
        try:
            progress = Progress(orders, port)
            wait_until(progress.done, 1800, "all balances", flow, 0.25)
            flow_cpu = cpu_seconds(flow.pid) - flow_cpu
            store_cpu = cpu_seconds(store) - store_cpu if store else float("nan")
            assert progress.first is not None
            assert progress.last is not None
            elapsed, steady = progress.last - started, progress.last - progress.first
            rss = flow.rss_bytes()
            busy = metric(port, "loyalnest_mongo_sink_busy_seconds_total")
            batch = metric(port, "loyalnest_mongo_sink_batch_size_sum") / metric(
                port, "loyalnest_mongo_sink_batch_size_count"
            )
            stored = db[BALANCES].count_documents({})
            if stored != orders:
                raise RuntimeError(f"{stored} balances stored for {orders} orders")
        finally:
            flow.stop()
            client.close()
    ceiling = store_ceiling(settings, orders)
    rate = orders / elapsed
    return {
        "orders": orders,
        "pipeline_orders_per_s": rate,
        "pipeline_steady_orders_per_s": orders / steady,
        "store_ceiling_orders_per_s": ceiling,
        "pipeline_vs_ceiling": rate / ceiling,
        "flow_cpu_s_per_1k_orders": flow_cpu * 1000 / orders,
        "store_cpu_s_per_1k_orders": store_cpu * 1000 / orders,
        "flow_rss_mib": rss / 2**20,
        "flow_idle_rss_mib": idle / 2**20,
        "flow_mib_per_100k_customers": (rss - idle) / 2**20 * 100_000 / orders,
        "mongo_sink_mean_batch": batch,
        "mongo_sink_busy_share": busy / elapsed,
    }


def metric(port: int, sample: str) -> float:
    """One sample's value from the flow's /metrics (0 when it has not been recorded yet)."""
    text = metrics_text(port)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


def flow_process_idle_rss(settings: Settings, port: int) -> int:
    """Resident size of the flow with empty topics and empty state: the baseline."""
    with bench_env(settings) as env:
        flow = flow_process(env, port)
        try:
            return flow.rss_bytes()
        finally:
            flow.stop()
