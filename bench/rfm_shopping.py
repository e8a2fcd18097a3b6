"""The RFM benchmarks' shopping: one merchant's paid orders over the past year, produced to
`shopify.orders` as the API produces webhooks, and what every customer's values and scores
must then be, recomputed in one batch from the orders themselves (never from the flow).

Every customer has at least one order; the orders beyond one per customer go to customers
drawn at random, so frequencies spread. Orders arrive in the order of their day, as a live
shop's do: the points flow, running alongside, refuses an earn dated more than 30 days before
its customer's latest, and a real stream never delivers a year out of order.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer

from bench.kit import produce_patiently
from connectors.shopify import SHOP_HEADER, TOPIC_HEADER, encode_body, kafka_headers, partition_key
from loyalnest.harness.deployment import Deployment
from loyalnest.samples import order_body
from loyalnest.topics import SHOPIFY_ORDERS
from loyalty import ids
from loyalty.policy import Expiry, Policy
from loyalty.rfm import EPOCH, Segment, Values, midpoint_scale, monetary_bucket, segment_for

SHOP = "bench-rfm.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
# The points flow's costlier terms, as bench/pipeline.py runs it; the RFM window the default.
POLICY = Policy(pending_days=2, expiry=Expiry.parse("lot:365"))
LOOKBACK = POLICY.rfm_lookback_days
LAST_DAY = date(2026, 6, 30)  # the shopping's last day: the as-of day it is scored at
AS_OF = (LAST_DAY - EPOCH).days
FIRST_CUSTOMER = 3_000_000
FIRST_ORDER = 70_000_000


@dataclass(frozen=True)
class Order:
    order_id: int
    customer: int
    day: int  # day number (loyalty.rfm): the order's event day, UTC
    body: dict[str, Any]

    @property
    def subtotal(self) -> Decimal:
        return Decimal(self.body["subtotal_price"])


def midnight(day: int) -> datetime:
    return datetime.combine(EPOCH + timedelta(days=day), time(), tzinfo=UTC)


def shopping(customers: int, orders: int, seed: int = 9) -> list[Order]:
    """`orders` paid orders (at least `customers`) of `customers` customers, each on one of
    the LOOKBACK days up to LAST_DAY, sorted by day."""
    if orders < customers:
        raise ValueError(f"{orders} orders cannot give each of {customers} customers one")
    rng = random.Random(seed)
    owners = list(range(customers)) + [rng.randrange(customers) for _ in range(orders - customers)]
    made = []
    for n, owner in enumerate(owners):
        day = AS_OF - rng.randrange(LOOKBACK)
        at = midnight(day) + timedelta(seconds=rng.randrange(86_400))
        order_id = FIRST_ORDER + n
        customer = FIRST_CUSTOMER + owner
        made.append(Order(order_id, customer, day, order_body(rng, order_id, customer, at)))
    made.sort(key=lambda o: (o.day, o.order_id))
    return made


def produce(env: Deployment, orders: Iterable[Order]) -> None:
    """The orders as `orders/create` records with the API's headers (policy included)."""
    producer = Producer(
        {
            "bootstrap.servers": env.settings.kafka_bootstrap_servers,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    delivery = {TOPIC_HEADER: "orders/create", SHOP_HEADER: SHOP}
    headers = kafka_headers(delivery, "bench-rfm", POLICY)
    topic = env.topic(SHOPIFY_ORDERS)
    for order in orders:
        key = partition_key(SHOP, "orders/create", order.body)
        value = encode_body(order.body)
        produce_patiently(producer, topic, value, key, headers)
    if producer.flush(120):
        raise RuntimeError("orders not all produced")


def values_as_of(orders: Sequence[Order], as_of: int) -> dict[int, Values]:
    """Every customer's values as of `as_of` (a prospect when no order is in the window)."""
    totals: dict[int, Values] = {o.customer: Values(None, 0, Decimal(0)) for o in orders}
    for o in orders:
        if not as_of - LOOKBACK < o.day <= as_of:
            continue
        v = totals[o.customer]
        last = o.day if v.last_order_day is None else max(o.day, v.last_order_day)
        totals[o.customer] = Values(last, v.frequency + 1, v.monetary + o.subtotal)
    return totals


Expected = tuple[int | None, int | None, int | None, str]  # r, f, m, segment


def expected_scores(values: dict[int, Values]) -> tuple[dict[int, Expected], dict[str, int]]:
    """Each customer's (r, f, m, segment) by the midpoint rule over all of them (README: RFM
    segments), and the count of every segment: what the flow must have stored."""
    scored = [v for v in values.values() if v.last_order_day is not None]
    r = midpoint_scale(Counter(v.last_order_day or 0 for v in scored))
    f = midpoint_scale(Counter(v.frequency for v in scored))
    m = midpoint_scale(Counter(monetary_bucket(v.monetary) for v in scored))
    scores: dict[int, Expected] = {}
    counts = dict.fromkeys((s.value for s in Segment), 0)
    for customer, v in values.items():
        if v.last_order_day is None:
            scores[customer] = (None, None, None, Segment.PROSPECTS.value)
        else:
            rs, fs = r.score(v.last_order_day), f.score(v.frequency)
            ms = m.score(monetary_bucket(v.monetary))
            scores[customer] = (rs, fs, ms, segment_for(rs, fs).value)
        counts[scores[customer][3]] += 1
    return scores, counts
