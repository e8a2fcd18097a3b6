"""Balance API: `GET /v1/customers/{id}/balance` with a bearer token (merchant:points:view),
answered from the Redis cache (hits) or, when the cache has no entry, from MongoDB, which then
fills the cache (misses).

The balances are the documents the points flow writes, built by the flow's own code
(`entry_writes` of one earn per customer) and written through its MongoWriter. Misses are
measured first: each customer read once while no cache entry exists; the API fills the cache
in the background, and once every entry is present the hits cycle over the same customers.

Cache entries live BALANCE_CACHE_SECONDS (5 s by default), less than a run of misses and hits
takes: this benchmark's private API runs with BALANCE_CACHE_SECONDS=3600, so that the hits
measured are hits. It checks that they were, from the API's own points_balance_latency_seconds
counts (every hit answered from the cache, none from MongoDB).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pymongo
import redis

from bench.earns import first_earn_writes
from bench.http import Run, build_request, closed_loop
from bench.kit import metrics_text
from bench.report import Targets, at_least, at_most, require_status
from bench.stackenv import bench_shops, running_api
from connectors.balance_cache import cache_key
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_VIEW
from loyalty import ids
from sinks.mongo import MongoWrite, MongoWriter

TARGETS: Targets = {"hit_req_per_s": at_least(2_000), "hit_p99_ms": at_most(20)}
FIRST_CUSTOMER = 5_000_000
# Longer than the whole run, for this benchmark's private deployment only (see above).
CACHE_SECONDS = 3600
FILL_TIMEOUT = 30.0


def earned_balances(count: int) -> dict[int, int]:
    """Customer id -> balance, varied so that a reply for the wrong customer shows."""
    return {FIRST_CUSTOMER + n: 10 + (n * 7_919) % 100_000 for n in range(count)}


def balance_writes(merchant_id: str, balances: dict[int, int]) -> list[MongoWrite]:
    """What the flow writes for each customer's first earn: a ledger entry and its balance."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    writes: list[MongoWrite] = []
    for customer, points in balances.items():
        writes.extend(
            first_earn_writes(
                ids.event_key("balance-bench", customer),
                merchant_id,
                customer,
                customer,
                points,
                at,
                str(uuid.UUID(int=customer)),
            )
        )
    return writes


def write_balances(settings: Settings, database: str, writes: list[MongoWrite]) -> None:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    try:
        stats = MongoWriter(client[database]).write(writes)
    finally:
        client.close()
    if stats.duplicates:
        raise RuntimeError(f"{stats.duplicates} balance writes were duplicates")


def cached(settings: Settings, prefix: str, merchant_id: str, customers: Sequence[int]) -> int:
    """How many of the customers have a balance cache entry."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = [cache_key(prefix, merchant_id, c) for c in customers]
        return sum(int(client.exists(*keys[i : i + 1000])) for i in range(0, len(keys), 1000))
    finally:
        client.close()


def wait_filled(settings: Settings, prefix: str, merchant_id: str, customers: list[int]) -> None:
    """Until every customer's entry is cached: the API fills them after answering."""
    deadline = time.monotonic() + FILL_TIMEOUT
    while (filled := cached(settings, prefix, merchant_id, customers)) != len(customers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"misses filled {filled} of {len(customers)} cache entries")
        time.sleep(0.1)


def lookups(port: int) -> dict[str, float]:
    """The API's balance lookups so far by source (cache, mongo)."""
    text = metrics_text(port, timeout=10)
    pattern = r'^points_balance_latency_seconds_count\{source="(\w+)"\} ([0-9.e+]+)$'
    return {source: float(n) for source, n in re.findall(pattern, text, re.M)}


def require_balances(
    what: str, run: Run, customers: Sequence[int], balances: dict[int, int]
) -> None:
    """Every reply 200 and the balance of the customer it was asked for."""
    require_status(what, run.replies)
    for customer, reply in zip(customers, run.replies, strict=True):
        got = json.loads(reply.body)
        if (got["customer_id"], got["balance"]) != (customer, balances[customer]):
            raise RuntimeError(f"{what}: customer {customer} got {got}, not {balances[customer]}")


def measure(settings: Settings, hits: int, misses: int, connections: int) -> dict[str, float]:
    shop = bench_shops(1)[0]
    warm = 4 * connections  # read before the clock starts: opens the API's MongoDB pool
    balances = earned_balances(warm + misses)
    customers = list(balances)
    warm_customers, miss_customers = customers[:warm], customers[warm:]
    hit_customers = [miss_customers[n % len(miss_customers)] for n in range(hits)]
    auth = {"Authorization": f"Bearer {shop.token(SCOPE_VIEW)}"}

    def requests(of: Sequence[int]) -> list[bytes]:
        return [build_request("GET", f"/v1/customers/{c}/balance", auth) for c in of]

    environ = {"BALANCE_CACHE_SECONDS": str(CACHE_SECONDS)}
    with running_api(settings, [shop], api_environ=environ) as running:
        port, prefix = running.api.http_port, running.env.redis_prefix
        write_balances(settings, running.env.database, balance_writes(shop.merchant_id, balances))
        if cached(settings, prefix, shop.merchant_id, customers):
            raise RuntimeError("cache entries exist before the first read: misses would be hits")
        warmup = asyncio.run(closed_loop(port, requests(warm_customers), connections))
        require_balances("balance warm-up", warmup, warm_customers, balances)
        miss = asyncio.run(closed_loop(port, requests(miss_customers), connections))
        require_balances("balance misses", miss, miss_customers, balances)
        wait_filled(settings, prefix, shop.merchant_id, miss_customers)
        before = lookups(port)
        hit = asyncio.run(closed_loop(port, requests(hit_customers), connections))
        require_balances("balance hits", hit, hit_customers, balances)
        after = lookups(port)
    from_cache = after.get("cache", 0) - before.get("cache", 0)
    from_mongo = after.get("mongo", 0) - before.get("mongo", 0)
    if (from_cache, from_mongo) != (len(hit_customers), 0):
        raise RuntimeError(f"hits: {from_cache:.0f} from the cache, {from_mongo:.0f} from MongoDB")
    return {
        **{f"hit_{k}": v for k, v in hit.summary().items()},
        **{f"miss_{k}": v for k, v in miss.summary().items()},
        "connections": connections,
        "cache_seconds": CACHE_SECONDS,
    }
