"""The API when a store fails, as real processes: 503 with Retry-After (gRPC UNAVAILABLE) when
MongoDB or PostgreSQL cannot be reached, and a balance never staler than BALANCE_CACHE_SECONDS
when Redis stalls its writes."""

from __future__ import annotations

import random
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
import pymongo
import pytest
import redis
from confluent_kafka.admin import AdminClient

from connectors.balance_cache import cache_key
from connectors.points_records import balance_id
from connectors.shopify import encode_body
from connectors.store import BALANCES
from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import (
    ApiProcess,
    ChildProcess,
    FlowProcess,
    free_port,
    wait_until,
)
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.samples import Webhook, order_body
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_REDEEM, SCOPE_VIEW
from loyalnest.topics import SHOPIFY_ORDERS
from loyalnest_grpc.points.v1 import points_pb2, points_pb2_grpc
from tests.integration.api_harness import ApiStack, api_stack
from tests.integration.points_harness import produce_webhooks

NOWHERE = "127.0.0.1:1"  # nothing listens there: connections are refused at once
STALENESS_BOUND = 5.0  # BALANCE_CACHE_SECONDS's default
POLL = 0.05
PAUSE_MS = 6000


@pytest.fixture(scope="module")
def stack(
    settings: Settings, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    with api_stack(settings, tmp_path_factory.mktemp("api-degraded")) as built:
        yield built


@pytest.fixture(scope="module")
def mongo_down_api(stack: ApiStack) -> Iterator[ApiProcess]:
    """Starts although MongoDB does not answer (built-in translations meanwhile)."""
    api = stack.start_api("api-no-mongo", MONGO_URL=f"mongodb://{NOWHERE}")
    yield api
    api.stop()


@pytest.fixture(scope="module")
def postgres_down_api(stack: ApiStack) -> Iterator[ApiProcess]:
    api = stack.start_api("api-no-postgres", POSTGRES_URL=f"postgresql://x:y@{NOWHERE}/none")
    yield api
    api.stop()


def grpc_balance(api: ApiProcess, shop: Shop, customer: int, locale: str = "") -> Any:
    with grpc.insecure_channel(api.grpc_target) as channel:
        stub = points_pb2_grpc.PointsServiceStub(channel)  # type: ignore[no-untyped-call]
        return stub.GetPointsBalance(
            points_pb2.GetPointsBalanceRequest(customer_id=str(customer), locale=locale),
            metadata=(("authorization", f"Bearer {shop.token(SCOPE_VIEW)}"),),
            timeout=15,
        )


def unavailable(response: httpx.Response, store: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers.get("Retry-After") == "5"
    assert response.json() == {"error": f"{store} is unavailable, retry later"}


def paid_order(n: int, customer: int) -> dict[str, Any]:
    return order_body(random.Random(n), 6_000_000 + n, customer, datetime.now(UTC))


def points_for(order: dict[str, Any], rate: Decimal) -> int:
    amount = Decimal(order["subtotal_price"]) * rate
    return int(amount.to_integral_value(rounding=ROUND_FLOOR))


# ------------------------------------------------------------------------ MongoDB down


def test_mongodb_down_is_503_with_retry_after_on_every_read_and_redemption(
    stack: ApiStack, mongo_down_api: ApiProcess
) -> None:
    shop = stack.shop_a
    view, redeem = shop.auth(SCOPE_VIEW), shop.auth(SCOPE_REDEEM)
    with httpx.Client(base_url=mongo_down_api.url, timeout=30) as http:
        started = time.monotonic()
        answers = {
            "balance": http.get("/v1/customers/424242/balance", headers=view),
            "transactions": http.get("/v1/customers/424242/transactions", headers=view),
            "redeem": http.post(
                "/v1/redemptions",
                json={"customer_id": 424242, "points": 1, "reward_id": "r1"},
                headers={**redeem, "Idempotency-Key": str(uuid.uuid4())},
            ),
            "redemption": http.get(f"/v1/redemptions/{uuid.uuid4()}", headers=view),
        }
        elapsed = time.monotonic() - started
        ready = http.get("/ready")

    for response in answers.values():
        unavailable(response, "MongoDB")
    assert elapsed < 4 * 5  # each waits one server selection (3 s), no more
    assert ready.status_code == 503
    assert ready.json()["checks"]["mongo"].startswith("error")


def test_mongodb_down_is_unavailable_on_grpc(stack: ApiStack, mongo_down_api: ApiProcess) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_balance(mongo_down_api, stack.shop_a, 424242)

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "MongoDB is unavailable, retry later"


# --------------------------------------------------------------------- PostgreSQL down


def test_postgresql_down_is_503_for_webhooks_so_shopify_retries(
    stack: ApiStack, postgres_down_api: ApiProcess
) -> None:
    raw = encode_body(paid_order(stack.next_id(), 1))
    headers = stack.shop_a.webhook_headers("orders/create", raw)
    with httpx.Client(base_url=postgres_down_api.url, timeout=30) as http:
        webhook = http.post("/webhooks/shopify", content=raw, headers=headers)
        ready = http.get("/ready")

    unavailable(webhook, "PostgreSQL")
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"].startswith("error")


def test_postgresql_down_leaves_balances_with_an_explicit_locale_readable(
    stack: ApiStack, postgres_down_api: ApiProcess
) -> None:
    """Only the merchant's default locale needs PostgreSQL."""
    shop, customer = stack.shop_a, 300_000 + stack.next_id()
    order = paid_order(stack.next_id(), customer)
    raw = encode_body(order)
    accepted = httpx.post(
        f"{stack.api.url}/webhooks/shopify",
        content=raw,
        headers=shop.webhook_headers("orders/create", raw),
        timeout=15,
    )
    assert accepted.status_code == 200, accepted.text
    path = f"/v1/customers/{customer}/balance"
    with httpx.Client(base_url=postgres_down_api.url, timeout=30) as http:

        def shown() -> httpx.Response | None:
            response = http.get(path, params={"locale": "en"}, headers=shop.auth(SCOPE_VIEW))
            return response if response.status_code == 200 else None

        explicit = stack.wait_for("the balance on the API without PostgreSQL", shown)
        default = http.get(path, headers=shop.auth(SCOPE_VIEW))

    assert explicit.json()["balance"] == points_for(order, shop.points_per_unit)
    unavailable(default, "PostgreSQL")


# ------------------------------------------------------------ a stalled Redis: staleness


@contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A redis-server of our own (the binary the local stack runs), so pausing it cannot
    disturb any other test; stopped at the end."""
    port = free_port()
    data = workdir / "redis"
    data.mkdir()
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed (make infra-up installs it)"
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data)]
    argv += ["--save", "", "--appendonly", "no"]
    server = ChildProcess(argv, {}, workdir / "redis.log", signal.SIGTERM)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: _pings(url), 20, "the private redis-server", server, 0.05)
        yield url
    finally:
        server.stop()


def _pings(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass
class StalledStack:
    env: Deployment
    redis_url: str
    shop: Shop
    flow: FlowProcess
    api: ApiProcess


@pytest.fixture
def stalled(settings: Settings, admin: AdminClient, tmp_path: Path) -> Iterator[StalledStack]:
    # Earning 1 point per unit, what records produced straight to Kafka carry.
    shop = Shop(f"stall-{uuid.uuid4().hex[:8]}.myshopify.com", "stall-secret", Decimal(1))
    with (
        private_redis(tmp_path) as redis_url,
        isolated_deployment(settings, "stale", tmp_path) as env,
        fresh_postgres(settings, "stale") as postgres_url,
    ):
        add_merchants(postgres_url, shop)
        flow = FlowProcess(env, tmp_path / "flow.log", api_port=free_port(), REDIS_URL=redis_url)
        try:
            api = ApiProcess(env, postgres_url, tmp_path / "api.log", REDIS_URL=redis_url)
            try:
                api.wait_healthy()
                yield StalledStack(env, redis_url, shop, flow, api)
            finally:
                api.stop()
        finally:
            flow.stop()


def cache_errors(flow: FlowProcess) -> float:
    text = httpx.get(f"http://127.0.0.1:{flow.api_port}/metrics", timeout=5).text
    found = re.search(r"^loyalnest_balance_cache_errors_total ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_after_a_redis_write_stall_the_new_balance_is_served_within_five_seconds(
    settings: Settings, stalled: StalledStack
) -> None:
    shop, customer = stalled.shop, 4242
    first, second = paid_order(1, customer), paid_order(2, customer)
    before, after = points_for(first, Decimal(1)), points_for(first, Decimal(1))
    after += points_for(second, Decimal(1))
    path = f"{stalled.api.url}/v1/customers/{customer}/balance"
    auth = shop.auth(SCOPE_VIEW)
    key = cache_key(stalled.env.redis_prefix, shop.merchant_id, customer)
    cache = redis.Redis.from_url(stalled.redis_url)
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    balances = mongo[stalled.env.database][BALANCES]

    def rest_balance() -> int | None:
        response = httpx.get(path, headers=auth, timeout=10)
        return response.json()["balance"] if response.status_code == 200 else None

    def stored_balance() -> int | None:
        doc = balances.find_one({"_id": balance_id(shop.merchant_id, customer)})
        return None if doc is None else int(doc["balance"])

    topic = stalled.env.topic(SHOPIFY_ORDERS)
    try:
        produce_webhooks(settings, topic, [Webhook(shop.domain, "orders/create", "w1", first)])
        wait_until(lambda: rest_balance() == before, 60, "the first balance", stalled.flow)
        wait_until(lambda: cache.exists(key) == 1, 10, "the cached balance", stalled.flow)
        errors_before = cache_errors(stalled.flow)

        cache.client_pause(PAUSE_MS, all=False)  # CLIENT PAUSE 6000 WRITE
        produce_webhooks(settings, topic, [Webhook(shop.domain, "orders/create", "w2", second)])
        wait_until(
            lambda: stored_balance() == after, 30, "MongoDB's new balance", stalled.flow, POLL
        )
        t0 = time.monotonic()
        wait_until(lambda: rest_balance() == after, 10, "the API's new balance", stalled.api, POLL)
        t1 = time.monotonic()
        served = grpc_balance(stalled.api, shop, customer)
        # The flow's refresh really failed: the bound, not a refresh, brought the new value.
        wait_until(lambda: cache_errors(stalled.flow) > errors_before, 10, "a cache error")
    finally:
        cache.close()
        mongo.close()

    assert t1 - t0 <= STALENESS_BOUND + 0.5, f"new balance served {t1 - t0:.2f} s after MongoDB"
    assert served.balance == after
