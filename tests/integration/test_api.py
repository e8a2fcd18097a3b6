"""The API as a real process (`python -m api`) next to the points flow, on the real stack:
Shopify webhook ingest, balances, transactions, redemptions, gRPC, health and metrics."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any, cast

import grpc
import httpx
import pytest
from confluent_kafka.admin import AdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from connectors.shopify import encode_body, partition_key
from loyalnest.harness.processes import ApiProcess
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.samples import order_body
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_REDEEM, SCOPE_VIEW
from loyalnest.topics import POINTS_DLQ
from loyalnest_grpc.points.v1 import points_pb2, points_pb2_grpc
from loyalty.i18n import BUILT_IN
from tests.integration.api_harness import ApiStack, api_stack
from tests.integration.points_harness import read_log

HEBREW_BALANCE = BUILT_IN[("points.balance", "he")]
ENGLISH_BALANCE = BUILT_IN[("points.balance", "en")]


@pytest.fixture(scope="module")
def stack(
    settings: Settings, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    # `admin` is here for its check: the module fails at once, saying so, if Kafka is down.
    with api_stack(settings, tmp_path_factory.mktemp("api")) as built:
        yield built


@pytest.fixture(scope="module")
def client(stack: ApiStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api.url, timeout=15) as http:
        yield http


@pytest.fixture(scope="module")
def limited_api(stack: ApiStack) -> Iterator[ApiProcess]:
    api = stack.start_api("api-limited", WEBHOOK_RATE_LIMIT="3")
    yield api
    api.stop()


@pytest.fixture(scope="module")
def kafka_down_api(stack: ApiStack) -> Iterator[ApiProcess]:
    api = stack.start_api("api-no-kafka", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    yield api
    api.stop()


# ----------------------------------------------------------------------------- helpers


def points_for(subtotal: str, rate: Decimal) -> int:
    return int((Decimal(subtotal) * rate).to_integral_value(rounding=ROUND_FLOOR))


def new_order(stack: ApiStack, customer: int) -> dict[str, Any]:
    n = stack.next_id()
    return order_body(random.Random(n), 7_000_000 + n, customer, datetime.now(UTC))


def post_webhook(
    client: httpx.Client,
    shop: Shop,
    topic: str,
    body: dict[str, Any] | bytes,
    *,
    webhook_id: str | None = None,
    secret: str | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else encode_body(body)
    headers = shop.webhook_headers(topic, raw, webhook_id=webhook_id, secret=secret)
    return client.post("/webhooks/shopify", content=raw, headers=headers)


def accepted(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"


def ledger(
    stack: ApiStack, client: httpx.Client, shop: Shop, customer: int, entries: int
) -> list[dict[str, Any]]:
    """The customer's transactions, newest first, once there are at least `entries`."""

    def probe() -> list[dict[str, Any]] | None:
        response = client.get(
            f"/v1/customers/{customer}/transactions", headers=shop.auth(SCOPE_VIEW)
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items if len(items) >= entries else None

    return stack.wait_for(f"{entries} ledger entries of customer {customer}", probe)


def balance(client: httpx.Client, shop: Shop, customer: int, locale: str | None = None) -> Any:
    params = {"locale": locale} if locale else {}
    response = client.get(
        f"/v1/customers/{customer}/balance", params=params, headers=shop.auth(SCOPE_VIEW)
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait_balance(
    stack: ApiStack, client: httpx.Client, shop: Shop, customer: int, expected: int
) -> None:
    """Until the balance read path (Redis, else MongoDB) shows `expected`: the cache and the
    balance document are written by other outputs of the flow than the ledger, a moment later."""
    seen: list[Any] = []

    def probe() -> bool | None:
        response = client.get(f"/v1/customers/{customer}/balance", headers=shop.auth(SCOPE_VIEW))
        seen.append((response.status_code, response.text))
        ok = response.status_code == 200 and response.json()["balance"] == expected
        return True if ok else None

    try:
        stack.wait_for(f"balance {expected} of customer {customer}", probe)
    except AssertionError as exc:
        raise AssertionError(f"last balance answer: {seen[-1:]}\n{exc}") from exc


def funded_customer(stack: ApiStack, client: httpx.Client, shop: Shop) -> tuple[int, int]:
    """A new customer with one paid order applied; (customer id, balance)."""
    customer = 100_000 + stack.next_id()
    order = new_order(stack, customer)
    accepted(post_webhook(client, shop, "orders/create", order))
    points = points_for(order["subtotal_price"], shop.points_per_unit)
    wait_balance(stack, client, shop, customer, points)
    return customer, points


def redeem(
    client: httpx.Client, shop: Shop, key: str | None, customer: int, points: int
) -> httpx.Response:
    headers = shop.auth(SCOPE_REDEEM, SCOPE_VIEW)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(
        "/v1/redemptions",
        json={"customer_id": customer, "points": points, "reward_id": "r1"},
        headers=headers,
    )


def decided(stack: ApiStack, client: httpx.Client, shop: Shop, redemption_id: str) -> Any:
    def probe() -> Any:
        response = client.get(f"/v1/redemptions/{redemption_id}", headers=shop.auth(SCOPE_VIEW))
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["status"] != "pending" else None

    return stack.wait_for(f"redemption {redemption_id} to be decided", probe)


# ----------------------------------------------------------------------- webhook ingest


def test_signed_paid_order_is_accepted_and_becomes_a_localized_balance(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop, customer = stack.shop_a, 100_000 + stack.next_id()
    order = new_order(stack, customer)

    response = post_webhook(client, shop, "orders/create", order)

    accepted(response)
    assert response.json()["correlation_id"]
    expected = points_for(order["subtotal_price"], Decimal("2"))
    [entry] = ledger(stack, client, shop, customer, 1)
    assert (entry["type"], entry["points"], entry["order_id"]) == ("earn", expected, order["id"])
    wait_balance(stack, client, shop, customer, expected)
    default = balance(client, shop, customer)
    assert (default["balance"], default["customer_id"]) == (expected, customer)
    assert default["merchant_id"] == shop.merchant_id
    assert default["description"] == ENGLISH_BALANCE.format(balance=expected)
    hebrew = balance(client, shop, customer, "he")
    assert (hebrew["locale"], hebrew["balance"]) == ("he", expected)
    assert hebrew["description"] == HEBREW_BALANCE.format(balance=expected)
    assert "נקודות" in hebrew["description"]
    # A locale no description exists for is refused, not silently answered in English.
    french = client.get(
        f"/v1/customers/{customer}/balance", params={"locale": "fr"}, headers=shop.auth(SCOPE_VIEW)
    )
    assert french.status_code == 400
    assert french.json() == {"error": "locale must be one of ar, en, he"}


def test_redelivered_webhook_id_is_a_duplicate_and_produced_once(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop, customer = stack.shop_a, 100_000 + stack.next_id()
    order, webhook_id = new_order(stack, customer), str(uuid.uuid4())

    first = post_webhook(client, shop, "orders/create", order, webhook_id=webhook_id)
    again = post_webhook(client, shop, "orders/create", order, webhook_id=webhook_id)

    accepted(first)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    key = partition_key(shop.domain, "orders/create", order)
    assert stack.order_records(key=key) == 1
    assert stack.order_records(webhook_id=webhook_id) == 1


def test_orders_paid_after_orders_create_earns_once(stack: ApiStack, client: httpx.Client) -> None:
    shop, customer = stack.shop_a, 100_000 + stack.next_id()
    order = new_order(stack, customer)
    refund = {
        "id": 9_000_000 + stack.next_id(),
        "order_id": order["id"],
        "refund_line_items": [{"subtotal": "1.00", "total_tax": "0.00"}],
    }

    accepted(post_webhook(client, shop, "orders/create", order))
    accepted(post_webhook(client, shop, "orders/paid", order))
    # The refund travels the same partition after both: once it is applied, so are they.
    accepted(post_webhook(client, shop, "refunds/create", refund))

    entries = ledger(stack, client, shop, customer, 2)
    earned = points_for(order["subtotal_price"], shop.points_per_unit)
    reversed_points = int(
        (Decimal(earned) * Decimal("1.00") / Decimal(order["subtotal_price"])).to_integral_value(
            rounding=ROUND_FLOOR
        )
    )
    assert reversed_points > 0  # at 2 points per unit a 1.00 refund always reverses some
    assert [e["type"] for e in entries] == ["reverse", "earn"]
    assert [e["points"] for e in entries] == [reversed_points, earned]
    wait_balance(stack, client, shop, customer, earned - reversed_points)


def test_bad_signature_is_401_and_nothing_is_produced(
    stack: ApiStack, client: httpx.Client
) -> None:
    order, webhook_id = new_order(stack, 100_000 + stack.next_id()), str(uuid.uuid4())

    response = post_webhook(
        client, stack.shop_a, "orders/create", order, webhook_id=webhook_id, secret="not-it"
    )

    assert response.status_code == 401
    assert stack.order_records(webhook_id=webhook_id) == 0


def test_garbage_signature_is_401(stack: ApiStack, client: httpx.Client) -> None:
    raw = encode_body(new_order(stack, 100_000 + stack.next_id()))
    headers = stack.shop_a.webhook_headers("orders/create", raw)
    headers["X-Shopify-Hmac-Sha256"] = "%%% not base64 %%%"

    assert client.post("/webhooks/shopify", content=raw, headers=headers).status_code == 401


def test_unknown_shop_is_401(stack: ApiStack, client: httpx.Client) -> None:
    stranger = Shop("no-such-shop.myshopify.com", stack.shop_a.secret, Decimal(1))

    response = post_webhook(client, stranger, "orders/create", new_order(stack, 1))

    assert response.status_code == 401


def test_missing_topic_header_is_400(stack: ApiStack, client: httpx.Client) -> None:
    raw = encode_body(new_order(stack, 100_000 + stack.next_id()))
    headers = stack.shop_a.webhook_headers("orders/create", raw)
    del headers["X-Shopify-Topic"]

    response = client.post("/webhooks/shopify", content=raw, headers=headers)

    assert response.status_code == 400
    assert "X-Shopify-Topic" in response.json()["error"]


def test_signed_body_that_is_not_json_is_400(stack: ApiStack, client: httpx.Client) -> None:
    webhook_id = str(uuid.uuid4())

    response = post_webhook(
        client, stack.shop_a, "orders/create", b"not json", webhook_id=webhook_id
    )

    assert response.status_code == 400
    assert stack.order_records(webhook_id=webhook_id) == 0


def test_body_over_one_mib_is_413(stack: ApiStack, client: httpx.Client) -> None:
    order = new_order(stack, 100_000 + stack.next_id())
    order["note"] = "x" * (1024 * 1024)
    raw = encode_body(order)
    headers = stack.shop_a.webhook_headers("orders/create", raw)

    declared = client.post("/webhooks/shopify", content=raw, headers=headers)
    # Without a Content-Length (chunked), the limit applies while reading.
    chunks = [raw[i : i + 65536] for i in range(0, len(raw), 65536)]
    streamed = client.post("/webhooks/shopify", content=iter(chunks), headers=headers)

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "content-length" not in streamed.request.headers


def test_other_topics_are_ignored_and_not_produced(stack: ApiStack, client: httpx.Client) -> None:
    webhook_id = str(uuid.uuid4())

    response = post_webhook(
        client,
        stack.shop_a,
        "products/update",
        {"id": 123, "title": "A hat"},
        webhook_id=webhook_id,
    )

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert stack.order_records(webhook_id=webhook_id) == 0


def test_after_a_secret_rotation_both_the_old_and_the_new_secret_are_accepted(
    stack: ApiStack, client: httpx.Client
) -> None:
    # A shop the API has never looked up, so its merchant cache cannot hold the old secret.
    old = Shop(f"rotating-{uuid.uuid4().hex[:8]}.myshopify.com", "old-secret", Decimal(1))
    new = Shop(old.domain, "new-secret", Decimal(1))
    add_merchants(stack.postgres_url, old)
    add_merchants(stack.postgres_url, new)

    signed_old = post_webhook(client, old, "orders/create", new_order(stack, 1))
    signed_new = post_webhook(client, new, "orders/create", new_order(stack, 1))
    signed_other = post_webhook(
        client, new, "orders/create", new_order(stack, 1), secret="never-this-shops-secret"
    )

    accepted(signed_old)
    accepted(signed_new)
    assert signed_other.status_code == 401


def test_rate_limit_answers_429_with_retry_after(stack: ApiStack, limited_api: ApiProcess) -> None:
    shop = stack.shop_b
    with httpx.Client(base_url=limited_api.url, timeout=15) as http:
        responses = [post_webhook(http, shop, "products/update", {"id": n}) for n in range(15)]

    statuses = [r.status_code for r in responses]
    # However the requests fall into one-second windows, no 3 of them can exceed a limit of 3.
    assert statuses[:3] == [200, 200, 200], statuses
    assert set(statuses) == {200, 429}, statuses
    limited = [r for r in responses if r.status_code == 429]
    assert all(r.headers.get("Retry-After") == "1" for r in limited)


def test_kafka_down_is_503_and_the_delivery_is_not_remembered(
    stack: ApiStack, kafka_down_api: ApiProcess
) -> None:
    order, webhook_id = new_order(stack, 100_000 + stack.next_id()), str(uuid.uuid4())
    with httpx.Client(base_url=kafka_down_api.url, timeout=30) as http:
        first = post_webhook(http, stack.shop_a, "orders/create", order, webhook_id=webhook_id)
        retry = post_webhook(http, stack.shop_a, "orders/create", order, webhook_id=webhook_id)
        ready = http.get("/ready")

    assert first.status_code == 503, first.text
    assert first.headers.get("Retry-After")
    assert retry.status_code == 503, retry.text  # not {"status": "duplicate"}
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["kafka"].startswith("error")
    assert {checks["mongo"], checks["redis"], checks["postgres"]} == {"ok"}


def test_a_copy_arriving_while_the_first_waits_for_kafka_is_not_called_a_duplicate(
    stack: ApiStack, kafka_down_api: ApiProcess
) -> None:
    order, webhook_id = new_order(stack, 100_000 + stack.next_id()), str(uuid.uuid4())

    def deliver() -> httpx.Response:
        with httpx.Client(base_url=kafka_down_api.url, timeout=30) as http:
            return post_webhook(http, stack.shop_a, "orders/create", order, webhook_id=webhook_id)

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(lambda _: deliver(), range(2)))

    # Neither copy may be answered 200: the delivery was never acknowledged by Kafka.
    assert [r.status_code for r in responses] == [503, 503], [r.text for r in responses]


# ----------------------------------------------------------------------------- balances


def test_balance_requires_a_token_with_the_view_scope(
    stack: ApiStack, client: httpx.Client
) -> None:
    customer, _ = funded_customer(stack, client, stack.shop_a)
    path = f"/v1/customers/{customer}/balance"

    anonymous = client.get(path)
    wrong_scope = client.get(path, headers=stack.shop_a.auth(SCOPE_REDEEM))
    forged = client.get(
        path, headers={"Authorization": f"Bearer {stack.shop_a.token(SCOPE_VIEW, secret='x' * 40)}"}
    )
    allowed = client.get(path, headers=stack.shop_a.auth(SCOPE_VIEW))

    assert anonymous.status_code == 401
    assert anonymous.headers.get("WWW-Authenticate") == "Bearer"
    assert wrong_scope.status_code == 403
    assert forged.status_code == 401
    assert allowed.status_code == 200


def test_unknown_customer_and_other_merchants_customer_are_404(
    stack: ApiStack, client: httpx.Client
) -> None:
    customer, _ = funded_customer(stack, client, stack.shop_a)

    unknown = client.get("/v1/customers/999999999/balance", headers=stack.shop_a.auth(SCOPE_VIEW))
    other = client.get(f"/v1/customers/{customer}/balance", headers=stack.shop_b.auth(SCOPE_VIEW))
    other_history = client.get(
        f"/v1/customers/{customer}/transactions", headers=stack.shop_b.auth(SCOPE_VIEW)
    )
    own = client.get(f"/v1/customers/{customer}/balance", headers=stack.shop_a.auth(SCOPE_VIEW))

    assert unknown.status_code == 404
    assert other.status_code == 404
    assert other_history.status_code == 404
    assert own.status_code == 200


def test_transactions_are_newest_first_and_page_with_next_before(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop, customer = stack.shop_a, 100_000 + stack.next_id()
    first, second = new_order(stack, customer), new_order(stack, customer)
    refund = {
        "id": 9_000_000 + stack.next_id(),
        "order_id": first["id"],
        "refund_line_items": [{"subtotal": "10.00", "total_tax": "0.00"}],
    }
    for topic, body in (
        ("orders/create", first),
        ("orders/create", second),
        ("refunds/create", refund),
    ):
        accepted(post_webhook(client, shop, topic, body))

    items = ledger(stack, client, shop, customer, 3)

    earned = {
        o["id"]: points_for(o["subtotal_price"], shop.points_per_unit) for o in (first, second)
    }
    basis = Decimal(first["subtotal_price"])
    reversal = (
        earned[first["id"]]
        if Decimal("10.00") >= basis
        else int(
            (Decimal(earned[first["id"]]) * Decimal("10.00") / basis).to_integral_value(
                rounding=ROUND_FLOOR
            )
        )
    )
    assert [i["seq"] for i in items] == [3, 2, 1]
    assert sorted((i["type"], i["order_id"], i["points"]) for i in items) == sorted(
        [
            ("earn", first["id"], earned[first["id"]]),
            ("earn", second["id"], earned[second["id"]]),
            ("reverse", first["id"], reversal),
        ]
    )
    assert next(i for i in items if i["type"] == "reverse")["refund_id"] == refund["id"]
    # balance_after is the running sum in seq order, and the last one is the balance.
    running = 0
    for item in reversed(items):
        running += item["points"] if item["type"] == "earn" else -item["points"]
        assert item["balance_after"] == running
    wait_balance(stack, client, shop, customer, running)

    pages: list[list[dict[str, Any]]] = []
    params: dict[str, str | int] = {"limit": 1}
    while True:
        response = client.get(
            f"/v1/customers/{customer}/transactions", params=params, headers=shop.auth(SCOPE_VIEW)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        assert len(pages) <= 5, pages
        if page["next_before"] is None:
            break
        assert page["next_before"] == page["items"][-1]["seq"]
        params = {"limit": 1, "before": page["next_before"]}
    assert [p for p in pages if p] == [[i] for i in items]


# --------------------------------------------------------------------------- redemptions


def test_redemption_completes_once_per_idempotency_key(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop = stack.shop_a
    customer, funds = funded_customer(stack, client, shop)
    spend, key = funds // 2, f"key-{uuid.uuid4()}"

    created = redeem(client, shop, key, customer, spend)

    assert created.status_code == 202, created.text
    body = created.json()
    assert (body["status"], body["points"], body["customer_id"]) == ("pending", spend, customer)
    outcome = decided(stack, client, shop, body["redemption_id"])
    assert (outcome["status"], outcome["reason"]) == ("completed", None)
    wait_balance(stack, client, shop, customer, funds - spend)

    repeated = redeem(client, shop, key, customer, spend)
    assert repeated.status_code in (200, 202), repeated.text
    assert repeated.json()["redemption_id"] == body["redemption_id"]
    assert repeated.json()["status"] == "completed"
    conflicting = redeem(client, shop, key, customer, spend + 1)
    assert conflicting.status_code == 422, conflicting.text
    # A later redemption of the same customer is applied after anything the repeat sent.
    sentinel = redeem(client, shop, f"key-{uuid.uuid4()}", customer, 1)
    assert sentinel.status_code == 202, sentinel.text
    assert decided(stack, client, shop, sentinel.json()["redemption_id"])["status"] == "completed"
    wait_balance(stack, client, shop, customer, funds - spend - 1)
    spends = [e for e in ledger(stack, client, shop, customer, 3) if e["type"] == "spend"]
    assert sorted(e["points"] for e in spends) == sorted([spend, 1])
    assert balance(client, shop, customer)["balance"] == funds - spend - 1


def test_redemption_beyond_the_balance_fails_with_insufficient_points(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop = stack.shop_a
    customer, funds = funded_customer(stack, client, shop)

    created = redeem(client, shop, f"key-{uuid.uuid4()}", customer, funds + 1)

    assert created.status_code == 202, created.text
    outcome = decided(stack, client, shop, created.json()["redemption_id"])
    assert (outcome["status"], outcome["reason"]) == ("failed", "insufficient_points")
    assert balance(client, shop, customer)["balance"] == funds


def test_redemption_requests_are_validated_and_scoped(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop, other = stack.shop_a, stack.shop_b
    customer, _ = funded_customer(stack, client, shop)
    payload = {"customer_id": customer, "points": 1, "reward_id": "r1"}

    no_key = redeem(client, shop, None, customer, 1)
    view_only = client.post(
        "/v1/redemptions",
        json=payload,
        headers={**shop.auth(SCOPE_VIEW), "Idempotency-Key": str(uuid.uuid4())},
    )
    anonymous = client.post(
        "/v1/redemptions", json=payload, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    created = redeem(client, shop, f"key-{uuid.uuid4()}", customer, 1)
    assert created.status_code == 202, created.text
    path = f"/v1/redemptions/{created.json()['redemption_id']}"
    foreign = client.get(path, headers=other.auth(SCOPE_VIEW))
    own = client.get(path, headers=shop.auth(SCOPE_VIEW))

    assert no_key.status_code == 400
    assert view_only.status_code == 403
    assert anonymous.status_code == 401
    assert foreign.status_code == 404
    assert own.status_code == 200


# --------------------------------------------------------------------------------- gRPC


def test_grpc_points_balance_health_and_errors(stack: ApiStack, client: httpx.Client) -> None:
    shop = stack.shop_a
    customer, funds = funded_customer(stack, client, shop)
    auth = (("authorization", f"Bearer {shop.token(SCOPE_VIEW)}"),)
    with grpc.insecure_channel(stack.api.grpc_target) as channel:
        points = points_pb2_grpc.PointsServiceStub(channel)  # type: ignore[no-untyped-call]

        def call(request: Any, metadata: Any = auth) -> Any:
            return points.GetPointsBalance(request, metadata=metadata, timeout=10)

        answer = call(
            points_pb2.GetPointsBalanceRequest(
                merchant_id=shop.merchant_id, customer_id=str(customer), locale="he"
            )
        )
        implicit = call(points_pb2.GetPointsBalanceRequest(customer_id=str(customer)))
        errors = {}
        for name, request, metadata in (
            ("no token", points_pb2.GetPointsBalanceRequest(customer_id=str(customer)), ()),
            (
                "no view scope",
                points_pb2.GetPointsBalanceRequest(customer_id=str(customer)),
                (("authorization", f"Bearer {shop.token(SCOPE_REDEEM)}"),),
            ),
            ("unknown customer", points_pb2.GetPointsBalanceRequest(customer_id="999999999"), auth),
            (
                "other merchant",
                points_pb2.GetPointsBalanceRequest(
                    merchant_id=stack.shop_b.merchant_id, customer_id=str(customer)
                ),
                auth,
            ),
            ("not a customer id", points_pb2.GetPointsBalanceRequest(customer_id="abc"), auth),
        ):
            with pytest.raises(grpc.RpcError) as raised:
                call(request, metadata)
            errors[name] = raised.value.code()
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="points.v1.PointsService"), timeout=10
        )

    assert answer.balance == funds
    assert answer.description == HEBREW_BALANCE.format(balance=funds)
    assert implicit.balance == funds
    assert implicit.description == ENGLISH_BALANCE.format(balance=funds)
    assert errors == {
        "no token": grpc.StatusCode.UNAUTHENTICATED,
        "no view scope": grpc.StatusCode.PERMISSION_DENIED,
        "unknown customer": grpc.StatusCode.NOT_FOUND,
        "other merchant": grpc.StatusCode.NOT_FOUND,
        "not a customer id": grpc.StatusCode.INVALID_ARGUMENT,
    }
    assert health.status == health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------------- health, metrics


def test_ready_checks_every_dependency(client: httpx.Client) -> None:
    response = client.get("/ready")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"kafka": "ok", "mongo": "ok", "redis": "ok", "postgres": "ok"},
    }


def test_metrics_expose_balance_latency(stack: ApiStack, client: httpx.Client) -> None:
    customer, _ = funded_customer(stack, client, stack.shop_a)
    balance(client, stack.shop_a, customer)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert "# TYPE points_balance_latency_seconds histogram" in response.text
    assert "points_balance_latency_seconds_count{source=" in response.text
    assert "loyalnest_webhooks_total" in response.text


# ------------------------------------------------------- edge cases of input validation


def test_webhook_body_within_the_limit_is_never_answered_retry_later(
    stack: ApiStack, client: httpx.Client
) -> None:
    order = new_order(stack, 100_000 + stack.next_id())
    order["note"] = "x" * 1_020_000
    raw = encode_body(order)
    assert len(raw) < 1024 * 1024

    response = post_webhook(client, stack.shop_a, "orders/create", raw)

    # Accepted, or refused for good (413): never a 503 that no retry can ever fix.
    assert response.status_code in (200, 413), response.text


def test_non_ascii_digits_are_rejected_as_bad_requests(stack: ApiStack) -> None:
    headers = stack.shop_a.auth(SCOPE_VIEW)
    with httpx.Client(base_url=stack.api.url, timeout=15) as http:  # a 500 closes the connection
        path_status = http.get("/v1/customers/%C2%B2/balance", headers=headers).status_code
    with httpx.Client(base_url=stack.api.url, timeout=15) as http:
        query_status = http.get(
            "/v1/customers/1/transactions", params={"limit": "²"}, headers=headers
        ).status_code
    with grpc.insecure_channel(stack.api.grpc_target) as channel:
        stub = points_pb2_grpc.PointsServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetPointsBalance(
                points_pb2.GetPointsBalanceRequest(customer_id="²"),
                metadata=(("authorization", f"Bearer {stack.shop_a.token(SCOPE_VIEW)}"),),
                timeout=10,
            )

    assert (path_status, query_status) == (400, 400)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_redemption_body_that_is_not_utf8_is_400(stack: ApiStack) -> None:
    headers = {**stack.shop_a.auth(SCOPE_REDEEM), "Idempotency-Key": str(uuid.uuid4())}
    with httpx.Client(base_url=stack.api.url, timeout=15) as http:
        response = http.post("/v1/redemptions", content=b"\xc3\x28", headers=headers)

    assert response.status_code == 400


def test_redemption_amount_beyond_int64_is_400(stack: ApiStack) -> None:
    headers = {**stack.shop_a.auth(SCOPE_REDEEM), "Idempotency-Key": str(uuid.uuid4())}
    with httpx.Client(base_url=stack.api.url, timeout=15) as http:
        response = http.post(
            "/v1/redemptions",
            json={"customer_id": 1, "points": 10**20, "reward_id": "r1"},
            headers=headers,
        )

    assert response.status_code == 400


def test_a_webhooks_correlation_id_reaches_the_flows_log_through_kafka_headers(
    stack: ApiStack, client: httpx.Client
) -> None:
    """An order the API accepts but the points flow refuses (it would earn past the per-change
    limit): the flow's log line about it carries the id the webhook came with, read from the
    record's Kafka header, as its dead letter keeps that header."""
    shop, customer = stack.shop_a, 100_000 + stack.next_id()
    order = new_order(stack, customer) | {"subtotal_price": "999999999999999"}
    raw = encode_body(order)
    correlation = f"it-{uuid.uuid4().hex}"
    headers = shop.webhook_headers("orders/create", raw) | {"X-Correlation-Id": correlation}

    response = client.post("/webhooks/shopify", content=raw, headers=headers)

    accepted(response)
    assert response.json()["correlation_id"] == correlation

    def logged() -> dict[str, Any] | None:
        for line in stack.flow.log_tail(400).splitlines():
            if line.startswith("{") and correlation in line:
                return cast(dict[str, Any], json.loads(line))
        return None

    line = stack.wait_for("the flow's log line", logged)
    assert line["correlation_id"] == correlation
    assert line["level"] == "WARNING"
    assert "points.order-state" in line["message"]
    assert "limit" in line["message"]

    def dead_letters() -> list[Any] | None:
        found = [
            r
            for r in read_log(stack.settings, stack.points.topic(POINTS_DLQ))
            if dict(r.headers).get("X-Correlation-Id") == correlation.encode()
        ]
        return found or None

    # The line is logged at the step; the letter goes out later, through the dead-letter sink.
    (letter,) = stack.wait_for("the dead letter", dead_letters)
    assert json.loads(letter.value)["id"] == order["id"]
