"""The API's edge against hostile input, as a real process on the real stack: strict JSON
(400), strict values (dead-lettered at once), body limits (413), shop domains checked before
any lookup (400), locales and other request values checked (400 / INVALID_ARGUMENT), and
memory that unauthenticated requests cannot grow."""

from __future__ import annotations

import json
import random
import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import grpc
import httpx
import pytest
from confluent_kafka.admin import AdminClient

from connectors.dead_letters import DLQ_FLOW, DLQ_ORIGIN, DLQ_REASON, DLQ_STEP
from connectors.shopify import encode_body, partition_key
from loyalnest.harness.processes import ApiProcess
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.samples import order_body
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_REDEEM, SCOPE_VIEW
from loyalnest.topics import POINTS_DLQ, SHOPIFY_ORDERS
from loyalnest_grpc.points.v1 import points_pb2, points_pb2_grpc
from loyalty.i18n import BUILT_IN
from tests.hostile_orders import CORPUS
from tests.integration.api_harness import ApiStack, api_stack
from tests.integration.points_harness import read_log

HOSTILE = {h.name: h for h in CORPUS}
# Bodies that are not strict JSON: 400, whoever signed them.
NOT_JSON = (
    "nested-1000-deep",
    "brackets-200000",
    "integer-4301-digits",
    "utf8-bom",
    "utf16",
    "utf32",
    "lone-surrogate",
    "refund-id-10^30",  # 31 digits: refused while parsing, like any integer over 20 digits
)
# Strict JSON whose values can never make a valid order: dead-lettered at once, 200.
NEVER_VALID = (
    "order-id-zero",
    "order-id-negative",
    "subtotal-arabic-indic",
    "subtotal-fullwidth",
    "subtotal-underscore",
    "test-as-string",
    "customer-id-true",
    "status-list",
    "refund-id-2^64",
)
HOSTILE_CUSTOMER = 77  # every order of the corpus names this customer
MEMORY_REQUESTS = 2_000
RSS_GROWTH_BOUND = 8 * 1024 * 1024
CACHE_BOUND = 200


@pytest.fixture(scope="module")
def stack(
    settings: Settings, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    with api_stack(settings, tmp_path_factory.mktemp("api-edge")) as built:
        yield built


@pytest.fixture(scope="module")
def client(stack: ApiStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api.url, timeout=15) as http:
        yield http


# ----------------------------------------------------------------------------- helpers


def post_webhook(
    client: httpx.Client,
    shop: Shop,
    topic: str,
    raw: bytes,
    *,
    secret: str | None = None,
    **extra_headers: str,
) -> httpx.Response:
    headers = {**shop.webhook_headers(topic, raw, secret=secret), **extra_headers}
    return client.post("/webhooks/shopify", content=raw, headers=headers)


def redeem_raw(client: httpx.Client, shop: Shop, raw: bytes, **params: str) -> httpx.Response:
    headers = {**shop.auth(SCOPE_REDEEM, SCOPE_VIEW), "Idempotency-Key": str(uuid.uuid4())}
    return client.post("/v1/redemptions", content=raw, headers=headers, params=params)


def redemption_body(customer: int, points: int = 1) -> dict[str, Any]:
    return {"customer_id": customer, "points": points, "reward_id": "r1"}


def hostile_redemption(name: str) -> bytes:
    """The same defect as the webhook corpus's `name`, in a redemption body."""
    valid = json.dumps(redemption_body(HOSTILE_CUSTOMER))
    as_text = {
        "nested-1000-deep": valid[:-1] + ', "note": ' + "[" * 1_000 + "]" * 1_000 + "}",
        # 200,000 would pass the 64 KiB limit (413, see below): as deep, within it.
        "brackets-200000": "[" * 60_000,
        "integer-4301-digits": valid.replace('"points": 1', '"points": ' + "9" * 4_301),
        "refund-id-10^30": valid.replace('"points": 1', f'"points": {10**30}'),
        "lone-surrogate": valid.replace('"r1"', '"r\\udc00"'),
    }
    encoded = {
        "utf8-bom": b"\xef\xbb\xbf" + valid.encode(),
        "utf16": valid.encode("utf-16"),
        "utf32": valid.encode("utf-32"),
    }
    return encoded[name] if name in encoded else as_text[name].encode()


def dead_letters(stack: ApiStack) -> list[Any]:
    """The prefixed points.dlq's records."""
    return list(read_log(stack.settings, stack.points.topic(POINTS_DLQ)))


def webhook_id_of(record: Any) -> str:
    return bytes(dict(record.headers).get("X-Shopify-Webhook-Id", b"")).decode()


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


def paid_order(stack: ApiStack, customer: int) -> dict[str, Any]:
    n = stack.next_id()
    return order_body(random.Random(n), 8_000_000 + n, customer, datetime.now(UTC))


def points_for(order: dict[str, Any], shop: Shop) -> int:
    amount = Decimal(order["subtotal_price"]) * shop.points_per_unit
    return int(amount.to_integral_value(rounding=ROUND_FLOOR))


def balance_of(client: httpx.Client, shop: Shop, customer: int) -> int | None:
    response = client.get(f"/v1/customers/{customer}/balance", headers=shop.auth(SCOPE_VIEW))
    return response.json()["balance"] if response.status_code == 200 else None


def funded_customer(stack: ApiStack, client: httpx.Client, shop: Shop) -> tuple[int, int]:
    customer, order = 200_000 + stack.next_id(), None
    order = paid_order(stack, customer)
    response = post_webhook(client, shop, "orders/create", encode_body(order))
    assert response.status_code == 200, response.text
    points = points_for(order, shop)
    stack.wait_for(
        f"balance of {customer}",
        lambda: True if balance_of(client, shop, customer) == points else None,
    )
    return customer, points


# ------------------------------------------------------------------ strict JSON: 400


@pytest.mark.parametrize("name", NOT_JSON)
def test_a_signed_webhook_that_is_not_strict_json_is_400(
    stack: ApiStack, client: httpx.Client, name: str
) -> None:
    hostile = HOSTILE[name]
    webhook_id = str(uuid.uuid4())

    response = post_webhook(
        client, stack.shop_a, hostile.topic, hostile.body, **{"X-Shopify-Webhook-Id": webhook_id}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("body is not JSON: ")
    assert stack.order_records(webhook_id=webhook_id) == 0


def test_the_decoder_names_why_a_31_digit_refund_id_is_not_json(
    stack: ApiStack, client: httpx.Client
) -> None:
    hostile = HOSTILE["refund-id-10^30"]

    response = post_webhook(client, stack.shop_a, hostile.topic, hostile.body)

    assert response.json() == {"error": "body is not JSON: an integer longer than 20 digits"}


@pytest.mark.parametrize("name", NOT_JSON)
def test_a_redemption_that_is_not_strict_json_is_400(
    stack: ApiStack, client: httpx.Client, name: str
) -> None:
    response = redeem_raw(client, stack.shop_a, hostile_redemption(name))

    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("body is not JSON: ")


# ----------------------------------------------- strict values: dead-lettered at once


def test_a_signed_order_that_can_never_be_valid_is_dead_lettered_at_once(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop, sent = stack.shop_a, {}
    counted_before = dead_lettered_count(client)
    for name in NEVER_VALID:
        hostile, webhook_id = HOSTILE[name], str(uuid.uuid4())
        headers = shop.webhook_headers(hostile.topic, hostile.body, webhook_id=webhook_id)
        response = client.post("/webhooks/shopify", content=hostile.body, headers=headers)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["status"] == "dead_lettered", name
        assert hostile.reason in response.json()["reason"], name
        sent[webhook_id] = (hostile, headers)

    assert dead_lettered_count(client) - counted_before == len(NEVER_VALID)
    letters = {webhook_id_of(r): r for r in dead_letters(stack)}
    for webhook_id, (hostile, headers) in sent.items():
        record = letters[webhook_id]
        kept = dict(record.headers)
        # The order as received, redacted (these hold no personal value) and re-encoded.
        assert json.loads(record.value) == json.loads(hostile.body)
        assert record.key == partition_key(shop.domain, hostile.topic, json.loads(hostile.body))
        # Not the signature: it was checked, and the redacted body no longer matches it.
        assert "X-Shopify-Hmac-Sha256" not in kept
        assert kept["X-Shopify-Topic"] == headers["X-Shopify-Topic"].encode()
        assert hostile.reason in kept[DLQ_REASON].decode()
        assert (kept[DLQ_FLOW], kept[DLQ_STEP]) == (b"api", b"ingest")
        assert kept[DLQ_ORIGIN] == stack.points.topic(SHOPIFY_ORDERS).encode()
        assert stack.order_records(webhook_id=webhook_id) == 0
    # None of them earned: the customer's first balance is a later valid order's points alone.
    order = paid_order(stack, HOSTILE_CUSTOMER)
    assert post_webhook(client, shop, "orders/create", encode_body(order)).status_code == 200
    expected = points_for(order, shop)
    stack.wait_for(
        "the valid order's balance",
        lambda: True if balance_of(client, shop, HOSTILE_CUSTOMER) == expected else None,
    )


def test_a_dead_lettered_delivery_repeated_is_a_duplicate(
    stack: ApiStack, client: httpx.Client
) -> None:
    hostile, webhook_id = HOSTILE["test-as-string"], str(uuid.uuid4())
    headers = stack.shop_a.webhook_headers(hostile.topic, hostile.body, webhook_id=webhook_id)

    first = client.post("/webhooks/shopify", content=hostile.body, headers=headers)
    again = client.post("/webhooks/shopify", content=hostile.body, headers=headers)

    assert first.json()["status"] == "dead_lettered"
    assert again.json() == {"status": "duplicate"}
    assert [webhook_id_of(r) for r in dead_letters(stack)].count(webhook_id) == 1


def dead_lettered_count(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    if 'outcome="dead_lettered"' not in text:
        return 0.0
    return metric(text, 'loyalnest_webhooks_total{outcome="dead_lettered"}')


# --------------------------------------------------------- shop domains and signatures


@pytest.mark.parametrize(
    "domain",
    ["evil.example.com", "shop.myshopify.com.evil.com", "-x.myshopify.com", "x" * 15_000, "a b"],
)
def test_a_malformed_shop_domain_is_400(stack: ApiStack, client: httpx.Client, domain: str) -> None:
    raw = encode_body(paid_order(stack, 1))

    response = post_webhook(
        client, stack.shop_a, "orders/create", raw, **{"X-Shopify-Shop-Domain": domain}
    )

    assert response.status_code == 400, response.text
    assert "shop domain" in response.json()["error"]
    assert len(response.text) < 300  # the domain is previewed, never echoed whole


def test_an_unknown_shop_and_a_bad_signature_are_401(stack: ApiStack, client: httpx.Client) -> None:
    raw = encode_body(paid_order(stack, 1))
    stranger = Shop(f"stranger-{uuid.uuid4().hex[:8]}.myshopify.com", "s", Decimal(1))

    unknown = post_webhook(client, stranger, "orders/create", raw)
    forged = post_webhook(client, stack.shop_a, "orders/create", raw, secret="not-it")

    assert (unknown.status_code, forged.status_code) == (401, 401)
    assert unknown.json() == forged.json() == {"error": "invalid signature"}


def test_a_malformed_correlation_id_is_400(stack: ApiStack, client: httpx.Client) -> None:
    raw = encode_body(paid_order(stack, 1))

    webhook = post_webhook(
        client, stack.shop_a, "orders/create", raw, **{"X-Correlation-Id": "a b c"}
    )
    redemption = client.post(
        "/v1/redemptions",
        json=redemption_body(1),
        headers={
            **stack.shop_a.auth(SCOPE_REDEEM),
            "Idempotency-Key": str(uuid.uuid4()),
            "X-Correlation-Id": "x" * 129,
        },
    )

    assert (webhook.status_code, redemption.status_code) == (400, 400)
    assert "X-Correlation-Id" in webhook.json()["error"]


def test_an_idempotency_key_that_is_not_printable_ascii_is_400(
    stack: ApiStack, client: httpx.Client
) -> None:
    headers = {
        b"Authorization": stack.shop_a.auth(SCOPE_REDEEM)["Authorization"].encode(),
        b"Idempotency-Key": "clé".encode(),
    }

    response = client.post("/v1/redemptions", json=redemption_body(1), headers=headers)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]


# ------------------------------------------------------------------------ body limits


def test_a_redemption_over_64_kib_is_413_declared_or_streamed(
    stack: ApiStack, client: httpx.Client
) -> None:
    raw = json.dumps({**redemption_body(1), "note": "x" * 65_536}).encode()
    chunks = [raw[i : i + 8192] for i in range(0, len(raw), 8192)]

    declared = redeem_raw(client, stack.shop_a, raw)
    streamed = redeem_raw(client, stack.shop_a, iter(chunks))  # type: ignore[arg-type]

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert declared.json() == {"error": "body larger than 65536 bytes"}


def test_a_redemption_of_200000_brackets_is_413(stack: ApiStack, client: httpx.Client) -> None:
    assert redeem_raw(client, stack.shop_a, b"[" * 200_000).status_code == 413


def test_a_30_mb_redemption_is_413_before_its_body_is_sent(stack: ApiStack) -> None:
    """Only the head and a few bytes are ever sent: the answer cannot wait for the body."""
    head = (
        "POST /v1/redemptions HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {stack.shop_a.token(SCOPE_REDEEM)}\r\n"
        f"Idempotency-Key: {uuid.uuid4()}\r\nContent-Length: {30 * 1024 * 1024}\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", stack.api.http_port), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"customer_id": 1')
        reply = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its 413
            reply += chunk
    elapsed = time.monotonic() - started

    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert elapsed < 2, elapsed


def test_a_webhook_over_one_mib_is_413(stack: ApiStack, client: httpx.Client) -> None:
    raw = b'{"note": "' + b"x" * (1024 * 1024) + b'"}'

    response = post_webhook(client, stack.shop_a, "orders/create", raw)

    assert response.status_code == 413
    assert response.json() == {"error": f"body larger than {1024 * 1024} bytes"}


def test_request_headers_over_16_kib_are_refused(stack: ApiStack, client: httpx.Client) -> None:
    response = client.get("/health", headers={"X-Padding": "x" * 17_000})

    assert response.status_code == 431


def exchange_raw(stack: ApiStack, *parts: bytes) -> bytes:
    """Send `parts` one by one on a fresh connection; everything the server says until it
    closes the connection (a request's `Connection: close` or a refusal; else a 5 s timeout
    fails the test)."""
    with socket.create_connection(("127.0.0.1", stack.api.http_port), timeout=5) as sock:
        for part in parts:
            sock.sendall(part)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def header_lines(total: int) -> list[bytes]:
    line = b"X-Pad: " + b"x" * 1000 + b"\r\n"
    return [line] * (total // len(line))


def test_a_head_trickled_past_16_kib_is_431_before_it_ends(stack: ApiStack) -> None:
    """The head never ends: the server refuses it once it has buffered 16 KiB of it. (The
    last line sent is the one that passes 16 KiB: nothing is left unread when the server
    closes, which would reset the connection instead.)"""
    start = b"GET /health HTTP/1.1\r\nHost: api\r\n"
    lines = header_lines(17_200)
    assert len(start) + sum(map(len, lines[:-1])) < 16_384 < len(start) + sum(map(len, lines))

    reply = exchange_raw(stack, start, *lines)

    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert reply.endswith(b"request headers larger than 16384 bytes")


def test_a_head_trickled_under_16_kib_is_served(stack: ApiStack) -> None:
    start = b"GET /health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n"

    reply = exchange_raw(stack, start, *header_lines(15_000), b"\r\n")

    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]


def test_requests_whose_bodies_pass_16_kib_in_one_read_are_served(stack: ApiStack) -> None:
    """Two keep-alive requests in one send, each with a 60 KiB body: the bytes after a head
    are not counted against it (each reply is the redemption's 400, not a 431)."""
    body = json.dumps({**redemption_body(1), "points": "x" * 60_000}).encode()
    head = (
        "POST /v1/redemptions HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {stack.shop_a.token(SCOPE_REDEEM)}\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    first = (head + f"Idempotency-Key: {uuid.uuid4()}\r\n\r\n").encode() + body
    last = (head + f"Idempotency-Key: {uuid.uuid4()}\r\nConnection: close\r\n\r\n").encode()

    reply = exchange_raw(stack, first + last + body)

    assert reply.count(b"HTTP/1.1 400 ") == 2, reply[:400]
    assert b" 431 " not in reply


# ---------------------------------------------------------------------------- locales


def test_a_locale_we_cannot_serve_is_400_on_balance_and_redemption(
    stack: ApiStack, client: httpx.Client
) -> None:
    customer, _ = funded_customer(stack, client, stack.shop_a)
    auth = stack.shop_a.auth(SCOPE_VIEW)
    expected = {"error": "locale must be one of ar, en, he"}

    answers = [
        client.get(f"/v1/customers/{customer}/balance", params={"locale": loc}, headers=auth)
        for loc in ("fr", "xx", "EN", "x" * 200)
    ]
    redemption = redeem_raw(
        client, stack.shop_a, json.dumps(redemption_body(customer)).encode(), locale="zz"
    )

    assert [a.status_code for a in answers] == [400] * 4
    assert all(a.json() == expected for a in answers)
    assert redemption.status_code == 400
    assert redemption.json() == expected


def test_without_a_locale_the_merchant_default_is_used(
    stack: ApiStack, client: httpx.Client
) -> None:
    hebrew_shop = Shop(
        f"hebrew-{uuid.uuid4().hex[:8]}.myshopify.com", "s-he", Decimal(1), locale="he"
    )
    add_merchants(stack.postgres_url, hebrew_shop)
    customer, points = funded_customer(stack, client, hebrew_shop)

    default = client.get(
        f"/v1/customers/{customer}/balance", headers=hebrew_shop.auth(SCOPE_VIEW)
    ).json()

    assert default["locale"] == "he"
    assert default["description"] == BUILT_IN[("points.balance", "he")].format(balance=points)


def test_grpc_refuses_a_locale_it_cannot_serve(stack: ApiStack, client: httpx.Client) -> None:
    customer, _ = funded_customer(stack, client, stack.shop_a)
    auth = (("authorization", f"Bearer {stack.shop_a.token(SCOPE_VIEW)}"),)
    with grpc.insecure_channel(stack.api.grpc_target) as channel:
        stub = points_pb2_grpc.PointsServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetPointsBalance(
                points_pb2.GetPointsBalanceRequest(customer_id=str(customer), locale="fr"),
                metadata=auth,
                timeout=10,
            )

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "locale must be one of ar, en, he"


def test_made_up_locales_create_no_metric_series(stack: ApiStack, client: httpx.Client) -> None:
    shop = stack.shop_a
    customer, _ = funded_customer(stack, client, shop)
    made_up = [f"q{chr(97 + n // 26)}{chr(97 + n % 26)}" for n in range(100)]

    refused = [
        redeem_raw(client, shop, json.dumps(redemption_body(customer)).encode(), locale=loc)
        for loc in made_up
    ]
    spent = redeem_raw(client, shop, json.dumps(redemption_body(customer)).encode(), locale="he")
    assert spent.status_code == 202, spent.text

    def spend_counted() -> str | None:
        text = httpx.get(stack.flow_metrics_url, timeout=5).text
        return text if 'points_transactions_total{locale="he",type="spend"}' in text else None

    text = stack.wait_for("the spend in the flow's metrics", spend_counted)
    locales = set(re.findall(r'^points_transactions_total\{locale="([^"]*)"', text, re.M))
    assert {r.status_code for r in refused} == {400}
    assert locales <= {"en", "ar", "he", "other"}, locales


# ----------------------------------------------------------------------- bounded memory


def test_hostile_shop_domains_grow_neither_memory_nor_the_cache(
    stack: ApiStack, client: httpx.Client
) -> None:
    raw = encode_body(paid_order(stack, 1))

    def hostile_requests(count: int) -> set[int]:
        statuses = set()
        for _ in range(count):
            domain = uuid.uuid4().hex + "x" * 15_000  # unique, 15 kB, not a shop domain
            headers = {**stack.shop_a.webhook_headers("orders/create", raw, secret="bad")}
            headers["X-Shopify-Shop-Domain"] = domain
            statuses.add(client.post("/webhooks/shopify", content=raw, headers=headers).status_code)
        return statuses

    hostile_requests(200)  # warm-up: allocator pools and buffers settle
    cached_before = metric(client.get("/metrics").text, "loyalnest_merchant_cache_entries")
    rss_before = stack.api.rss_bytes()
    statuses = hostile_requests(MEMORY_REQUESTS)
    growth = stack.api.rss_bytes() - rss_before
    cached_after = metric(client.get("/metrics").text, "loyalnest_merchant_cache_entries")

    assert statuses == {400}
    assert growth < RSS_GROWTH_BOUND, f"RSS grew by {growth / 2**20:.1f} MiB"
    assert cached_after == cached_before  # refused before any lookup


@pytest.fixture(scope="module")
def small_cache_api(stack: ApiStack) -> Iterator[ApiProcess]:
    api = stack.start_api("api-small-cache", MERCHANT_CACHE_ENTRIES=str(CACHE_BOUND))
    yield api
    api.stop()


def test_unknown_shops_never_fill_the_merchant_cache_past_its_bound(
    stack: ApiStack, small_cache_api: ApiProcess
) -> None:
    raw = encode_body(paid_order(stack, 1))
    statuses = set()
    with httpx.Client(base_url=small_cache_api.url, timeout=15) as http:
        for n in range(MEMORY_REQUESTS):
            stranger = Shop(f"unknown-{n}-{uuid.uuid4().hex[:6]}.myshopify.com", "s", Decimal(1))
            statuses.add(post_webhook(http, stranger, "orders/create", raw).status_code)
        cached = metric(http.get("/metrics").text, "loyalnest_merchant_cache_entries")

    assert statuses == {401}
    assert cached == CACHE_BOUND  # full, and no fuller
