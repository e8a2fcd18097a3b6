"""End to end: from a paid order's webhook answered 200 to the customer's new balance being
readable from the balance API, with the API and the points flow both running.

Webhooks are sent open loop: order i is due at start + i / rate, whatever the earlier replies
are doing. Every order is its customer's first, so the balance it must produce follows from
the pure rules: points_for(earn_basis(order), the shop's points per unit). For every
`sample_every`-th order, the balance API is polled from the webhook's 200 on, every `poll`
seconds, until it shows that balance; latency = the first reply showing it - the 200.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.http import Paced, Pool, Reply, build_request, paced, percentile
from bench.ingest import WEBHOOK_PATH
from bench.report import Targets, at_most, require_status
from bench.stackenv import bench_shops, running_api
from connectors.shopify import encode_body
from loyalnest.harness.processes import free_port
from loyalnest.harness.shops import Shop
from loyalnest.samples import order_body
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_VIEW
from loyalty.orders import read_order
from loyalty.rules import earn_basis, points_for

TARGETS: Targets = {"p99_ms": at_most(1_000)}
WEBHOOK_CONNECTIONS = 64  # more than can be in flight at once, so no send waits for one
POLL_CONNECTIONS = 16
VISIBLE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Sample:
    """An order whose customer is polled: the balance request, and the balance to wait for."""

    balance_request: bytes
    balance: int


@dataclass
class Orders:
    webhooks: list[bytes]
    samples: dict[int, Sample]  # by index into webhooks


def paid_orders(shops: list[Shop], count: int, first_order: int, sample_every: int) -> Orders:
    rng = random.Random(first_order)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    tokens = {s.domain: {"Authorization": f"Bearer {s.token(SCOPE_VIEW)}"} for s in shops}
    orders = Orders([], {})
    for n in range(count):
        shop, order = shops[n % len(shops)], first_order + n
        body = order_body(rng, order, order, start + timedelta(seconds=n))  # a new customer
        raw = encode_body(body)
        headers = shop.webhook_headers("orders/create", raw)
        orders.webhooks.append(build_request("POST", WEBHOOK_PATH, headers, raw))
        if n % sample_every == 0:
            path = f"/v1/customers/{order}/balance"
            orders.samples[n] = Sample(
                build_request("GET", path, tokens[shop.domain]),
                points_for(earn_basis(read_order(body)), shop.points_per_unit),
            )
    return orders


async def send_and_watch(port: int, orders: Orders, rate: float, poll: float) -> Watched:
    """Send the webhooks at `rate`; poll each sample's balance from its 200 until it shows."""
    webhooks = await Pool.open(port, WEBHOOK_CONNECTIONS)
    polls = await Pool.open(port, POLL_CONNECTIONS)
    visible_after: dict[int, float] = {}
    watchers: set[asyncio.Task[None]] = set()

    async def watch(i: int, sample: Sample, accepted: float) -> None:
        while True:
            reply = await polls.exchange(sample.balance_request)
            if _shows(reply, sample.balance, i):
                visible_after[i] = reply.received - accepted
                return
            if reply.received - accepted > VISIBLE_TIMEOUT:
                raise TimeoutError(f"order {i}: balance not visible after {VISIBLE_TIMEOUT}s")
            await asyncio.sleep(poll)

    def on_reply(i: int, reply: Reply) -> None:
        sample = orders.samples.get(i)
        if sample is not None and reply.status == 200:
            task = asyncio.get_running_loop().create_task(watch(i, sample, reply.received))
            watchers.add(task)

    try:
        sent = await paced(webhooks, orders.webhooks, rate, on_reply)
        await asyncio.gather(*watchers)
    finally:
        await webhooks.close()
        await polls.close()
    return Watched(sent, visible_after)


def _shows(reply: Reply, balance: int, i: int) -> bool:
    """True once the balance is there; 404 until the flow wrote it; anything else is wrong."""
    if reply.status == 404:
        return False
    if reply.status != 200:
        raise RuntimeError(f"order {i}: balance answered {reply.status}: {reply.body[:300]!r}")
    got = json.loads(reply.body)["balance"]
    if got != balance:
        raise RuntimeError(f"order {i}: balance {got}, expected {balance}")
    return True


@dataclass
class Watched:
    sent: Paced
    visible_after: dict[int, float]  # sample index -> seconds from the 200 to visible


def watch_run(port: int, orders: Orders, rate: float, poll: float, what: str) -> Watched:
    watched = asyncio.run(send_and_watch(port, orders, rate, poll))
    require_status(what, watched.sent.replies)
    if len(watched.visible_after) != len(orders.samples):
        raise RuntimeError(f"{what}: {len(watched.visible_after)} of {len(orders.samples)} seen")
    return watched


def measure(
    settings: Settings, seconds: float, rate: float, sample_every: int, poll: float, shops: int
) -> dict[str, float]:
    if rate / shops > settings.webhook_rate_limit / 2:  # half: one-second windows are ragged
        raise ValueError(
            f"{rate}/s over {shops} shops would meet the rate limit of "
            f"{settings.webhook_rate_limit}/s per shop: send over more shops"
        )
    merchants = bench_shops(shops)
    # One order per shop, watched until visible, before the clock starts: by then the flow
    # reads its topics and the API has every merchant cached.
    warmup = paid_orders(merchants, shops, first_order=30_000_000, sample_every=1)
    load = paid_orders(merchants, round(seconds * rate), 40_000_000, sample_every)
    with running_api(settings, merchants, flow_port=free_port()) as running:
        port = running.api.http_port
        started = time.monotonic()
        watch_run(port, warmup, rate=shops, poll=0.1, what="end-to-end warm-up")
        warm_seconds = time.monotonic() - started
        run = watch_run(port, load, rate, poll, "end to end")
    latencies = sorted(run.visible_after.values())
    return {
        "orders": len(run.sent.replies),
        "send_rate_per_s": run.sent.rate,
        "max_send_lag_ms": run.sent.max_lag * 1000,
        "samples": len(latencies),
        "sample_every": sample_every,
        "poll_ms": poll * 1000,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": latencies[-1] * 1000,
        "warmup_s": warm_seconds,
    }
