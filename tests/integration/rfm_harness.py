"""The RFM flow's integration tests' shared parts: a merchant's shopping (webhooks, and every
customer's values as of any day, computed directly), rounds run to convergence, and the batch
recomputation the flow's documents must equal."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer
from pymongo.database import Database

from connectors.rfm_records import stale_customers
from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS
from loyalnest.clock import kafka_producer
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.rfm_round import RescoringJob
from loyalnest.settings import Settings
from loyalnest.topics import RFM_COMMANDS, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.rfm import EPOCH, Values, day_number, midpoint_scale, monetary_bucket, segment_for
from loyalty.rfm_commands import scales_from

SHOP = "rfm-e2e.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
LOOKBACK = 365
LAST_DAY = date(2026, 6, 30)  # the tests' shopping ends here
AS_OF = (LAST_DAY - EPOCH).days
TIMEOUT = 180.0
Hook = tuple[str, dict[str, Any]]  # (Shopify topic, body)


@dataclass(frozen=True)
class Shopping:
    hooks: list[Hook]  # in arrival order
    orders: list[tuple[int, int, Decimal | None]]  # customer, day, net spend (None: not counted)

    def values(self, as_of: int) -> dict[int, Values]:
        """Every known customer's values as of `as_of`, straight from the orders' final facts."""
        values = {customer: Values(None, 0, Decimal(0)) for customer, _, _ in self.orders}
        for customer, day, net in self.orders:
            if net is None or not as_of - LOOKBACK < day <= as_of:
                continue
            v = values[customer]
            last = day if v.last_order_day is None else max(day, v.last_order_day)
            values[customer] = Values(last, v.frequency + 1, v.monetary + net)
        return values


def shopping(rng: random.Random, orders: int, customers: int, days: int, last: date) -> Shopping:
    """`orders` orders of `customers` customers over `days` days up to `last`: a tenth
    cancelled, a tenth half refunded, a tenth delivered twice; arrival order shuffled, so late
    orders are the rule."""
    hooks: list[Hook] = []
    facts: list[tuple[int, int, Decimal | None]] = []
    for order_id in range(1, orders + 1):
        customer = rng.randint(1, customers)
        day = last - timedelta(days=rng.randrange(days))
        subtotal = Decimal(rng.randint(500, 30_000)) / 100
        body = {
            "id": order_id,
            "financial_status": "paid",
            "subtotal_price": str(subtotal),
            "total_tax": "0.00",
            "taxes_included": False,
            "test": False,
            "customer": {"id": customer},
            "processed_at": f"{day.isoformat()}T12:00:00Z",
        }
        hooks.append(("orders/paid", body))
        net: Decimal | None = subtotal
        fate = rng.random()
        if fate < 0.1:
            hooks.append(("orders/cancelled", {**body, "cancelled_at": f"{last}T13:00:00Z"}))
            net = None
        elif fate < 0.2:
            refund = (subtotal / 2).quantize(Decimal("0.01"))
            lines = [{"subtotal": str(refund)}]
            hooks.append(
                (
                    "refunds/create",
                    {"id": order_id * 10, "order_id": order_id, "refund_line_items": lines},
                )
            )
            net = subtotal - refund
        elif fate < 0.3:
            hooks.append(("orders/paid", body))  # delivered twice
        facts.append((customer, (day - EPOCH).days, net))
    rng.shuffle(hooks)
    return Shopping(hooks, facts)


def produce_hooks(settings: Settings, env: Deployment, hooks: list[Hook]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 10,
        }
    )
    for topic, body in hooks:
        order_id = body.get("order_id", body["id"])
        producer.produce(
            env.topic(SHOPIFY_ORDERS),
            key=f"{SHOP}:{order_id}".encode(),
            value=json.dumps(body).encode(),
            headers=[("X-Shopify-Shop-Domain", SHOP.encode()), ("X-Shopify-Topic", topic.encode())],
        )
    assert producer.flush(60) == 0


def wait_for(condition: Callable[[], bool], flow: FlowProcess, what: str) -> None:
    wait_until(condition, TIMEOUT, what, flow, 0.25)


def midnight(day: int) -> datetime:
    return datetime.combine(date.fromordinal(EPOCH.toordinal() + day), time(), tzinfo=UTC)


def picture(db: Database[Any]) -> dict[str, Any] | None:
    return db[RFM_MERCHANTS].find_one({"_id": MERCHANT})


def converge(
    settings: Settings, env: Deployment, db: Database[Any], flow: FlowProcess, as_of: int
) -> None:
    """Rescoring rounds as of `as_of` (an hour into that day) until one finds nothing to do
    and the merchant's picture stays as it was: every round waits until the flow has applied
    all it sent."""
    job = RescoringJob(db, kafka_producer(settings), env.topic(RFM_COMMANDS))
    now = midnight(as_of) + timedelta(hours=1)
    last_version = -2
    while True:
        version = _version(db)
        if _round(job, db, flow, now, as_of) == 0 and version == _version(db) == last_version:
            return
        last_version = _version(db)


def total(db: Database[Any]) -> int:
    """Customers in the merchant's picture (-1: no picture yet)."""
    found = picture(db)
    return -1 if found is None else int(found["total"])


def _version(db: Database[Any]) -> int:
    found = picture(db)
    return -1 if found is None else int(found["v"])


def _round(
    job: RescoringJob, db: Database[Any], flow: FlowProcess, now: datetime, as_of: int
) -> int:
    seen: dict[str, int] = {}
    for doc in db[RFM_MERCHANTS].find():
        queries = stale_customers(MERCHANT, scales_from(doc["scales"]), day_number(doc["as_of"]))
        for query in queries:
            seen |= {d["_id"]: d["v"] for d in db[RFM_CUSTOMERS].find(query, {"v": 1})}
    # The flow may change a document between this query and the job's: then its version
    # moves anyway, and whatever the job ticked that this did not see, a later round checks.
    counts = job.run_round(now)

    def applied() -> bool:
        found = picture(db)
        if counts.days and (found is None or day_number(found["as_of"]) < as_of):
            return False
        if not seen:
            return True
        # One pass over the merchant's documents: an `$in` of thousands of ids costs this
        # store far more, and the store is what the flow is waiting on too.
        versions = {d["_id"]: d["v"] for d in db[RFM_CUSTOMERS].find({}, {"v": 1})}
        return all(versions[doc_id] > v for doc_id, v in seen.items())

    wait_until(applied, TIMEOUT, "a round to be applied", flow, 0.5)
    return counts.ticks + counts.days


def expected_scores(
    values: dict[int, Values],
) -> tuple[dict[int, tuple[int, int, int, str] | None], dict[str, int]]:
    """Each customer's (r, f, m, segment) by the README's rules (None: a prospect), and the
    merchant's counts per segment."""
    scored = [v for v in values.values() if v.scored]
    r = midpoint_scale(Counter(v.last_order_day or 0 for v in scored))
    f = midpoint_scale(Counter(v.frequency for v in scored))
    m = midpoint_scale(Counter(monetary_bucket(v.monetary) for v in scored))
    scores: dict[int, tuple[int, int, int, str] | None] = {}
    counts: Counter[str] = Counter()
    for customer, v in values.items():
        if v.last_order_day is None:
            scores[customer] = None
            counts["prospects"] += 1
            continue
        rfm = (
            r.score(v.last_order_day),
            f.score(v.frequency),
            m.score(monetary_bucket(v.monetary)),
        )
        segment = segment_for(rfm[0], rfm[1]).value
        scores[customer] = (*rfm, segment)
        counts[segment] += 1
    return scores, dict(counts)


def assert_as_batch(db: Database[Any], values: dict[int, Values], as_of: int) -> dict[str, int]:
    """Every customer's document and the merchant's picture equal the batch recomputation as
    of `as_of`; the counts, for more checks."""
    scores, counts = expected_scores(values)
    docs = {d["shopify_customer_id"]: d for d in db[RFM_CUSTOMERS].find({"merchant_id": MERCHANT})}
    assert set(docs) == set(values)
    for customer, v in values.items():
        doc = docs[customer]
        got_values = (doc["last_order_day"], doc["frequency"], doc["monetary"].to_decimal())
        last = None if v.last_order_day is None else midnight(v.last_order_day)
        assert got_values == (last, v.frequency, v.monetary), customer
        want = scores[customer]
        got = (doc["r"], doc["f"], doc["m"], doc["segment"])
        assert got == ((None, None, None, "prospects") if want is None else want), customer
    found = picture(db)
    assert found is not None
    assert found["as_of"] == midnight(as_of)
    assert {k: n for k, n in found["counts"].items() if n} == counts
    assert found["total"] == len(values)
    return counts
