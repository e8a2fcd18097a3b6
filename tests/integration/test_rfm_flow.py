"""The RFM flow on the real stack: orders in, rescoring rounds, and every customer's scores and
the merchant's counts as a batch recomputation gives them."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
import pymongo
import pytest
from confluent_kafka import Producer
from pymongo.database import Database

from connectors.rfm_records import stale_customers
from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS
from loyalnest.clock import kafka_producer
from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import ApiProcess, FlowProcess, wait_until
from loyalnest.harness.shops import Shop
from loyalnest.rfm_round import RescoringJob
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_ANALYTICS
from loyalnest.topics import RFM_COMMANDS, SHOPIFY_ORDERS
from loyalnest_grpc.core.v1 import core_pb2, core_pb2_grpc
from loyalnest_grpc.rfm.v1 import rfm_pb2, rfm_pb2_grpc
from loyalty import ids
from loyalty.rfm import (
    EPOCH,
    Segment,
    Values,
    day_number,
    midpoint_scale,
    monetary_bucket,
    segment_for,
)
from loyalty.rfm_commands import scales_from

pytestmark = pytest.mark.integration
Record = tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]

SHOP = "rfm-e2e.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
TIMEOUT = 90.0
LAST_DAY = date(2026, 6, 30)
LOOKBACK = 365


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    with isolated_deployment(settings, "rfm", tmp_path) as deployment:
        yield deployment


@pytest.fixture
def db(settings: Settings, env: Deployment) -> Iterator[Database[Any]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo_url, tz_aware=True
    )
    yield client[env.database]
    client.close()


def webhooks(rng: random.Random) -> tuple[list[tuple[str, dict[str, Any]]], dict[int, Values]]:
    """Orders over 420 days for 80 customers, some refunded, cancelled or sent twice; and
    every customer's values as of LAST_DAY, computed directly."""
    hooks: list[tuple[str, dict[str, Any]]] = []
    counted: dict[int, list[tuple[int, Decimal]]] = {}
    known: set[int] = set()
    for order_id in range(1, 401):
        customer = rng.randint(1, 80)
        day = LAST_DAY - timedelta(days=rng.randrange(420))
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
        known.add(customer)
        hooks.append(("orders/paid", body))
        fate = rng.random()
        net = subtotal
        if fate < 0.1:
            hooks.append(("orders/cancelled", {**body, "cancelled_at": "2026-06-30T13:00:00Z"}))
            net = Decimal(-1)
        elif fate < 0.2:
            refund = (subtotal / 2).quantize(Decimal("0.01"))
            hooks.append(
                (
                    "refunds/create",
                    {
                        "id": order_id * 10,
                        "order_id": order_id,
                        "refund_line_items": [{"subtotal": str(refund)}],
                    },
                )
            )
            net = subtotal - refund
        elif fate < 0.3:
            hooks.append(("orders/paid", body))  # delivered twice
        if net >= 0 and (LAST_DAY - day).days < LOOKBACK:
            counted.setdefault(customer, []).append(((day - EPOCH).days, net))
    values = {}
    for customer in known:
        orders = counted.get(customer, [])
        if not orders:
            values[customer] = Values(None, 0, Decimal(0))
        else:
            values[customer] = Values(
                max(d for d, _ in orders), len(orders), sum((n for _, n in orders), Decimal(0))
            )
    rng.shuffle(hooks)  # arrival order is not event order: late orders are the rule
    return hooks, values


def produce(settings: Settings, topic: str, items: list[Record]) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True}
    )
    for key, value, headers in items:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0


def wait_for(condition: Callable[[], bool], flow: FlowProcess, what: str) -> None:
    """Until `condition` holds on the stores; fail early if the flow died."""
    wait_until(condition, TIMEOUT, what, flow, 0.25)


def test_scores_and_counts_converge_to_a_batch_recomputation(
    settings: Settings, env: Deployment, db: Database[Any], tmp_path: Path
) -> None:
    hooks, values = webhooks(random.Random(9))
    produce(
        settings,
        env.topic(SHOPIFY_ORDERS),
        [
            (
                f"{SHOP}:{body.get('order_id', body['id'])}".encode(),
                json.dumps(body).encode(),
                [("X-Shopify-Shop-Domain", SHOP.encode()), ("X-Shopify-Topic", topic.encode())],
            )
            for topic, body in hooks
        ],
    )
    flow = FlowProcess(env, tmp_path / "rfm.log", flow="rfm")
    try:
        wait_for(
            lambda: db[RFM_CUSTOMERS].count_documents({}) == len(values), flow, "every customer"
        )
        now = datetime.combine(LAST_DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)

        def picture_version() -> int:
            picture = db[RFM_MERCHANTS].find_one({"_id": MERCHANT})
            return -1 if picture is None else int(picture["v"])

        job = RescoringJob(db, kafka_producer(settings), env.topic(RFM_COMMANDS))

        def one_round() -> int:
            """Run a round of the job and wait until the flow has applied all it sent."""
            seen = {
                d["_id"]: d["v"]
                for picture in db[RFM_MERCHANTS].find()
                for d in db[RFM_CUSTOMERS].find(
                    stale_customers(MERCHANT, scales_from(picture["scales"]), as_of_day(picture)),
                    {"v": 1},
                )
            }
            counts = job.run_round(now)
            assert counts.ticks == len(seen)
            wait_for(lambda: applied(db, seen) and day_applied(db, counts.days), flow, "a round")
            return counts.ticks + counts.days

        wait_for(lambda: total(db) == len(values), flow, "the merchant's picture")
        last_version = -2
        while True:
            version = picture_version()
            if one_round() == 0 and version == picture_version() == last_version:
                break
            last_version = picture_version()
    finally:
        flow.stop()

    scored = [v for v in values.values() if v.scored]
    r = midpoint_scale(Counter(v.last_order_day or 0 for v in scored))
    f = midpoint_scale(Counter(v.frequency for v in scored))
    m = midpoint_scale(Counter(monetary_bucket(v.monetary) for v in scored))
    expected_counts: Counter[str] = Counter()
    for customer, v in values.items():
        doc = db[RFM_CUSTOMERS].find_one({"_id": f"{MERCHANT}:{customer}"})
        assert doc is not None
        assert doc["frequency"] == v.frequency
        assert doc["monetary"].to_decimal() == v.monetary
        if v.last_order_day is None:
            assert doc["segment"] == "prospects"
            expected_counts["prospects"] += 1
            continue
        rfm = (
            r.score(v.last_order_day),
            f.score(v.frequency),
            m.score(monetary_bucket(v.monetary)),
        )
        segment = segment_for(rfm[0], rfm[1]).value
        assert (doc["r"], doc["f"], doc["m"], doc["segment"]) == (*rfm, segment), customer
        expected_counts[segment] += 1
    picture = db[RFM_MERCHANTS].find_one({"_id": MERCHANT})
    assert picture is not None
    assert picture["as_of"] == datetime.combine(LAST_DAY, datetime.min.time(), tzinfo=UTC)
    assert {k: n for k, n in picture["counts"].items() if n} == dict(expected_counts)
    assert picture["total"] == len(values)
    served_by_the_api(settings, env, tmp_path, values, dict(expected_counts))


def served_by_the_api(
    settings: Settings,
    env: Deployment,
    tmp_path: Path,
    values: dict[int, Values],
    counts: dict[str, int],
) -> None:
    """REST and gRPC give the same counts, and each customer's stored values and scores."""
    shop = Shop(SHOP, "unused-webhook-secret", Decimal(1))
    headers = {"Authorization": f"Bearer {shop.token(SCOPE_ANALYTICS)}"}
    metadata = (("authorization", f"Bearer {shop.token(SCOPE_ANALYTICS)}"),)
    with fresh_postgres(settings, "rfm") as postgres_url:
        api = ApiProcess(env, postgres_url, tmp_path / "api.log")
        try:
            api.wait_healthy()
            with httpx.Client(base_url=api.url) as http:
                body = http.get("/v1/segments", headers=headers).json()
                assert body["segments"] == {s.value: counts.get(s.value, 0) for s in Segment}
                assert (body["total"], body["as_of"]) == (len(values), LAST_DAY.isoformat())
                for customer, v in values.items():
                    rfm = http.get(f"/v1/customers/{customer}/rfm", headers=headers).json()
                    assert (rfm["frequency"], Decimal(rfm["monetary"])) == (v.frequency, v.monetary)
                    assert rfm["recency_days"] == v.recency_days((LAST_DAY - EPOCH).days)
            with grpc.insecure_channel(api.grpc_target) as channel:
                stub = rfm_pb2_grpc.RFMServiceStub(channel)  # type: ignore[no-untyped-call]
                answer = stub.GetSegmentCounts(rfm_pb2.GetSegmentCountsRequest(), metadata=metadata)
                assert dict(answer.segments) == body["segments"]
                core = core_pb2_grpc.CoreServiceStub(channel)  # type: ignore[no-untyped-call]
                customer = next(iter(values))
                one = core.GetCustomerRFM(
                    core_pb2.GetCustomerRFMRequest(customer_id=str(customer)), metadata=metadata
                )
                assert one.frequency == values[customer].frequency
        finally:
            api.stop()


def as_of_day(picture: Mapping[str, Any]) -> int:
    return day_number(picture["as_of"])


def total(db: Database[Any]) -> int:
    picture = db[RFM_MERCHANTS].find_one({"_id": MERCHANT})
    return -1 if picture is None else int(picture["total"])


def applied(db: Database[Any], seen: dict[str, int]) -> bool:
    """Every ticked customer's document written again since the round read it."""
    if not seen:
        return True
    docs = db[RFM_CUSTOMERS].find({"_id": {"$in": list(seen)}}, {"v": 1})
    return all(d["v"] > seen[d["_id"]] for d in docs)


def day_applied(db: Database[Any], days: int) -> bool:
    picture = db[RFM_MERCHANTS].find_one({"_id": MERCHANT})
    return days == 0 or (picture is not None and picture["as_of"].date() == LAST_DAY)
