"""VIP tiers: what they cost the points pipeline, how fast a customer's tier is read, and how
long a what-if preview of a large merchant takes.

1. Pipeline, in the same run: the same orders through the points flow alone, then through the
   points flow with the tiers flow beside it and three tiers with multipliers in force. Each
   customer's first order is a warm-up, so that many customers hold a tier (and their timed
   orders earn multiplied) when the ORDERS_PER_CUSTOMER timed ones per customer are produced.
   A run is done when every earn is in the ledger, and with tiers also when the tiers flow has
   read every order change and every entry bonus it sent is in the ledger. The figure to hold:
   with / without.
2. `GET /v1/customers/{id}/tier` on stored customers (`customer_tiers` rows as the tiers flow
   writes them): closed loop, then open loop at RATE req/s; every reply is checked against
   `api.tiers.tier_status` for that customer.
3. `POST /v1/tiers/preview` of a proposed configuration for the same customers, end to end
   through the API (read them all, evaluate, answer); the reply must equal the pure `preview`
   of the same rows.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pymongo
from confluent_kafka import Producer

from api.tiers import tier_status
from bench.http import Pool, build_request, closed_loop, paced, percentile
from bench.kit import metrics_text, produce_patiently
from bench.proc import MachineCpu, cpu_seconds, store_pid
from bench.report import Targets, at_least, at_most, require_status
from bench.stackenv import API_WORKERS, bench_env
from connectors.shopify import SHOP_HEADER, TOPIC_HEADER, encode_body, kafka_headers, partition_key
from connectors.store import BALANCES, LEDGER
from connectors.tier_configs import save_tiers
from connectors.tier_records import UPSERT_CUSTOMER_TIERS, upsert_params
from loyalnest.harness.deployment import Deployment, fresh_postgres
from loyalnest.harness.processes import ApiProcess, FlowProcess, wait_until
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.samples import order_body
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_TIERS_MANAGE, SCOPE_VIEW
from loyalnest.topics import SHOPIFY_ORDERS
from loyalty import ids
from loyalty.policy import Policy
from loyalty.tier_config import TierConfig, parse_tiers
from loyalty.tier_customers import TierSnapshot
from loyalty.tier_preview import StoredCustomer, preview
from loyalty.tiers import CustomerMetric, OrderMetric, qualified

SHOP = Shop("bench-tiers.myshopify.com", "bench-tiers-secret", Decimal(1))
MERCHANT = str(ids.merchant_id(SHOP.domain))
ORDERS_PER_CUSTOMER = 4
RATE = 1_000  # requests per second, open loop
PACED_CONNECTIONS = 64
AS_OF = "2030-01-01"  # the preview's moment (lifetime tiers: every stored order counts)
TARGETS: Targets = {
    "with_vs_without": at_least(0.8),
    "tier_read_at_rate_p99_ms": at_most(20),
    "preview_seconds": at_most(10),
}


def tiers(silver: int, gold: int, platinum: int) -> TierConfig:
    return parse_tiers(
        {
            "metric": "points_earned",
            "period": "lifetime",
            "tiers": [
                {"name": "Silver", "threshold": silver, "multiplier": "1.25", "entry_bonus": 20},
                {"name": "Gold", "threshold": gold, "multiplier": "1.5", "entry_bonus": 50},
                {"name": "Platinum", "threshold": platinum, "multiplier": "2", "entry_bonus": 100},
            ],
        }
    )


CONFIG = tiers(500, 1_200, 2_000)
PROPOSED = tiers(400, 1_000, 2_200)


def save_config(postgres_url: str, config: TierConfig) -> None:
    """The merchant's tiers, in force since long before any order here."""
    with psycopg.connect(postgres_url) as conn:
        version = save_tiers(conn, MERCHANT, config).version
        conn.execute(
            "UPDATE vip_tier_programs SET effective_at = %s WHERE version = %s",
            (datetime(2020, 1, 1, tzinfo=UTC), version),
        )
        conn.commit()


# ------------------------------------------------------------------------------ pipeline


def produce_orders(env: Deployment, first: int, count: int, customers: int) -> None:
    """Orders `first` to `first + count - 1`, order n by customer n mod `customers`."""
    producer = Producer(
        {
            "bootstrap.servers": env.settings.kafka_bootstrap_servers,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    rng = random.Random(first)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    headers = kafka_headers(
        {TOPIC_HEADER: "orders/create", SHOP_HEADER: SHOP.domain}, "bench", Policy()
    )
    for n in range(first, first + count):
        body = order_body(rng, 8_000_000 + n, 3_000_000 + n % customers, start)
        key = partition_key(SHOP.domain, "orders/create", body)
        produce_patiently(producer, env.topic(SHOPIFY_ORDERS), encode_body(body), key, headers)
    if producer.flush(120):
        raise RuntimeError("orders not all produced")


def metric(port: int, sample: str) -> float:
    for line in metrics_text(port).splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


EARNS = 'points_transactions_total{locale="en",type="earn"}'
BONUS_ENTRIES = 'points_transactions_total{locale="en",type="bonus"}'
READ = 'tier_inputs_total{kind="order_change"}'
SENT = "tier_entry_bonuses_total"
WRITES = 'loyalnest_mongo_sink_writes_total{{collection="{}",outcome="applied"}}'
COMMANDS = 'loyalnest_mongo_sink_commands_total{{collection="{}"}}'


@dataclass
class Done:
    orders: int
    points_port: int
    tiers_port: int | None

    def __call__(self) -> bool:
        if metric(self.points_port, EARNS) < self.orders:
            return False
        if self.tiers_port is None:
            return True
        if metric(self.tiers_port, READ) < self.orders:
            return False
        return metric(self.points_port, BONUS_ENTRIES) >= metric(self.tiers_port, SENT)


def pipeline_run(settings: Settings, orders: int, with_tiers: bool, port: int) -> dict[str, float]:
    """A warm-up order per customer (so that many hold a tier when the timed orders come),
    then `orders` more, timed from their first produced to the last decision applied."""
    customers = max(1, orders // ORDERS_PER_CUSTOMER)
    with (
        bench_env(settings) as env,
        fresh_postgres(settings, "bench") as postgres_url,
        ExitStack() as running,
    ):
        add_merchants(postgres_url, SHOP)
        if with_tiers:
            save_config(postgres_url, CONFIG)
        produce_orders(env, 0, customers, customers)
        flows = [flow(env, "points", port, postgres_url)]
        if with_tiers:
            flows.append(flow(env, "tiers", port + 1, postgres_url))
        for process in flows:
            running.callback(process.stop)
        tiers_port = port + 1 if with_tiers else None
        wait_until(Done(customers, port, tiers_port), 1800, "the warm-up", flows[0], 0.25)
        store = store_pid(settings)
        pids = [p.pid for p in flows] + ([store] if store else [])
        cpu = [cpu_seconds(pid) for pid in pids]
        writes = store_writes(port)
        commands = store_commands(port)
        machine = MachineCpu.now()
        started = time.perf_counter()
        produce_orders(env, customers, orders, customers)
        done = Done(customers + orders, port, tiers_port)
        wait_until(done, 1800, "every earn (and every tier decision) in", flows[0], 0.25)
        elapsed = time.perf_counter() - started
        spent = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu, strict=True)]
        figures = {
            "orders_per_s": orders / elapsed,
            "points_cpu_s_per_1k": 1000 * spent[0] / orders,
            "store_cpu_s_per_1k": 1000 * spent[-1] / orders if store else float("nan"),
            # The store is one single-threaded process: near 1 core busy, it is the ceiling.
            "store_cores": spent[-1] / elapsed if store else float("nan"),
            "busy_cores": machine.busy_cores(MachineCpu.now()),
        }
        for collection, count in store_writes(port).items():
            figures[f"{collection}_writes_per_order"] = (count - writes[collection]) / orders
            sent = store_commands(port)[collection] - commands[collection]
            applied = count - writes[collection]  # retried commands count, retried writes not
            figures[f"{collection}_writes_per_command"] = applied / max(sent, 1)
        if with_tiers:
            figures["tiers_cpu_s_per_1k"] = 1000 * spent[1] / orders
            figures["entry_bonuses"] = metric(port + 1, SENT)
            figures["multiplied_earns"] = multiplied(env)
        return figures


def store_writes(port: int) -> dict[str, float]:
    """Writes the points flow's store sink has had applied, by collection."""
    return {c: metric(port, WRITES.format(c)) for c in (BALANCES, LEDGER)}


def store_commands(port: int) -> dict[str, float]:
    """Bulk write commands the points flow's store sink has sent, by collection."""
    return {c: metric(port, COMMANDS.format(c)) for c in (BALANCES, LEDGER)}


def flow(env: Deployment, name: str, port: int, postgres_url: str) -> FlowProcess:
    return FlowProcess(
        env,
        env.workdir / f"{name}.log",
        flow=name,
        recovery=env.workdir / f"{name}-recovery",
        snapshot_seconds=5,
        recovery_partitions=1,
        api_port=port,
        POSTGRES_URL=postgres_url,
    )


def multiplied(env: Deployment) -> float:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(env.settings.mongo_url)
    try:
        ledger = client[env.database].points_transactions
        return float(ledger.count_documents({"multiplier": {"$exists": True}}))
    finally:
        client.close()


# ------------------------------------------------------------------------ stored customers


def stored(customers: int) -> list[TierSnapshot]:
    """Customers as the tiers flow stores them: 1 to 6 orders each, their tier by the rules."""
    rng = random.Random(9)
    at = datetime(2026, 6, 1, tzinfo=UTC)
    snapshots = []
    for n in range(customers):
        orders = {
            10 * n + i: OrderMetric(at, Decimal(rng.randint(20, 500)))
            for i in range(rng.randint(1, 6))
        }
        points = CustomerMetric(orders)
        index = qualified(points.total(), CONFIG.tiers)
        name = None if index is None else CONFIG.tiers[index].name
        paid = {t.name.casefold(): at for t in CONFIG.tiers[: (index or -1) + 1]}
        snapshots.append(TierSnapshot(MERCHANT, 1 + n, name, 1, points, points, at, None, paid))
    return snapshots


def write_stored(postgres_url: str, snapshots: Sequence[TierSnapshot]) -> None:
    with psycopg.connect(postgres_url) as conn:
        for i in range(0, len(snapshots), 5_000):
            conn.execute(UPSERT_CUSTOMER_TIERS, upsert_params(list(snapshots[i : i + 5_000])))
        conn.commit()
    # As a table that has been live a while: its statistics known, its dead rows vacuumed
    # (an autovacuum of the fresh table would otherwise run during the timed reads).
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE customer_tiers")


def as_stored(snapshot: TierSnapshot) -> StoredCustomer:
    return StoredCustomer(snapshot.tier, snapshot.points, snapshot.spent, snapshot.paid)


@dataclass
class Stack:
    api: ApiProcess
    postgres_url: str


@contextmanager
def running_stack(settings: Settings) -> Iterator[Stack]:
    with (
        bench_env(settings) as env,
        fresh_postgres(settings, "bench") as postgres_url,
        ExitStack() as running,
    ):
        add_merchants(postgres_url, SHOP)
        save_config(postgres_url, CONFIG)
        api = ApiProcess(env, postgres_url, env.workdir / "api.log", API_WORKERS=API_WORKERS)
        running.callback(api.stop)
        api.wait_healthy()
        yield Stack(api, postgres_url)


def read_figures(
    stack: Stack, snapshots: Sequence[TierSnapshot], requests: int
) -> dict[str, float]:
    auth = {"Authorization": f"Bearer {SHOP.token(SCOPE_VIEW)}"}
    rng = random.Random(4)
    asked = [rng.choice(snapshots) for _ in range(requests)]
    wire = [build_request("GET", f"/v1/customers/{s.customer}/tier", auth) for s in asked]
    warm = asyncio.run(closed_loop(stack.api.http_port, wire[:500], 8))
    require_status("tier read warm-up", warm.replies)
    run = asyncio.run(closed_loop(stack.api.http_port, wire, 8))
    check_replies([r.body for r in run.replies], asked)

    async def open_loop() -> list[bytes]:
        pool = await Pool.open(stack.api.http_port, PACED_CONNECTIONS)
        try:
            sent = await paced(pool, wire, RATE, lambda _i, _reply: None)
        finally:
            await pool.close()
        latencies = sorted(r.latency for r in sent.replies)
        figures["tier_read_at_rate_per_s"] = sent.rate
        figures["tier_read_at_rate_p50_ms"] = percentile(latencies, 0.50) * 1000
        figures["tier_read_at_rate_p99_ms"] = percentile(latencies, 0.99) * 1000
        figures["tier_read_at_rate_max_lag_ms"] = sent.max_lag * 1000
        return [r.body for r in sent.replies]

    summary = run.summary()
    figures: dict[str, float] = {
        "tier_read_per_s": summary["req_per_s"],
        "tier_read_p50_ms": summary["p50_ms"],
        "tier_read_p99_ms": summary["p99_ms"],
    }
    check_replies(asyncio.run(open_loop()), asked)
    return figures


def check_replies(bodies: Sequence[bytes], asked: Sequence[TierSnapshot]) -> None:
    """Each reply is its customer's status (the moment it was asked aside)."""
    for body, snapshot in zip(bodies, asked, strict=True):
        got = json.loads(body)
        at = datetime.fromisoformat(got.pop("as_of"))
        want = tier_status(MERCHANT, snapshot.customer, as_stored(snapshot), CONFIG, at)
        want.pop("as_of")
        if got != want:
            raise RuntimeError(f"customer {snapshot.customer}: got {got}, expected {want}")


def preview_figures(stack: Stack, snapshots: Sequence[TierSnapshot]) -> dict[str, float]:
    auth = {"Authorization": f"Bearer {SHOP.token(SCOPE_TIERS_MANAGE)}"}
    body = json.dumps(PROPOSED.document())
    url = f"{stack.api.url}/v1/tiers/preview?as_of={AS_OF}"
    started = time.perf_counter()
    reply = httpx.post(url, content=body, headers=auth, timeout=300)
    seconds = time.perf_counter() - started
    if reply.status_code != 200:
        raise RuntimeError(f"preview: {reply.status_code} {reply.text[:200]}")
    got = reply.json()
    as_of = datetime.fromisoformat(got["as_of"])
    want = preview([as_stored(s) for s in snapshots], PROPOSED, as_of).document(PROPOSED)
    if {k: v for k, v in got.items() if k != "merchant_id"} != want:
        raise RuntimeError(f"preview: got {got}, expected {want}")
    return {
        "preview_customers": float(got["customers"]),
        "preview_seconds": seconds,
        "preview_moved_up": float(got["moved_up"]),
        "preview_moved_down": float(got["moved_down"]),
    }


def measure(settings: Settings, orders: int, customers: int, requests: int) -> dict[str, float]:
    without = pipeline_run(settings, orders, False, 3140)
    with_tiers = pipeline_run(settings, orders, True, 3142)
    runs = (("without", without), ("with", with_tiers))
    figures = {
        "orders": float(orders),
        "without_orders_per_s": without["orders_per_s"],
        "with_orders_per_s": with_tiers["orders_per_s"],
        "with_vs_without": with_tiers["orders_per_s"] / without["orders_per_s"],
        "without_points_cpu_s_per_1k": without["points_cpu_s_per_1k"],
        "with_points_cpu_s_per_1k": with_tiers["points_cpu_s_per_1k"],
        "with_tiers_cpu_s_per_1k": with_tiers["tiers_cpu_s_per_1k"],
        "without_store_cpu_s_per_1k": without["store_cpu_s_per_1k"],
        "with_store_cpu_s_per_1k": with_tiers["store_cpu_s_per_1k"],
        **{f"{run}_{k}": f[k] for run, f in runs for k in ("store_cores", "busy_cores")},
        **{f"without_{k}": v for k, v in without.items() if k.endswith("_per_order")},
        **{f"with_{k}": v for k, v in with_tiers.items() if k.endswith("_per_order")},
        **{f"without_{k}": v for k, v in without.items() if k.endswith("_per_command")},
        **{f"with_{k}": v for k, v in with_tiers.items() if k.endswith("_per_command")},
        "entry_bonuses": with_tiers["entry_bonuses"],
        "multiplied_earns": with_tiers["multiplied_earns"],
    }
    snapshots = stored(customers)
    with running_stack(settings) as stack:
        write_stored(stack.postgres_url, snapshots)
        figures |= read_figures(stack, snapshots, requests)
        figures |= preview_figures(stack, snapshots)
    return figures
