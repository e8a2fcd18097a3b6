"""`GET /openapi.json` (api/openapi.py): the document is valid OpenAPI 3.1, describes every route
of the real app and nothing else, and says what the handlers do. The last is checked against
the handlers themselves, through the real app on in-memory stores: the scope each one refuses
a token without, the request values each one accepts or refuses with a 400, and the answers
each one gives, which must have a documented status and match its schema."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from api import balances, referrals
from api.app import create_app
from api.openapi import BEARER, DOCUMENT, OPENAPI_PATH, SHOPIFY_HMAC, openapi
from api.request_limits import DEFAULT_LIMIT, MAX_HEADER_BYTES, WEBHOOK_LIMIT
from connectors.points_records import balance_id
from connectors.referral_records import ReferralRow
from connectors.store import BALANCES
from connectors.store import REDEMPTIONS as REDEMPTIONS_COLLECTION
from loyalnest.tokens import (
    SCOPE_ADJUST,
    SCOPE_ANALYTICS,
    SCOPE_REDEEM,
    SCOPE_REFERRALS_MANAGE,
    SCOPE_REFERRALS_VIEW,
    SCOPE_TIERS_MANAGE,
    SCOPE_VIEW,
    SCOPES,
)
from loyalty.commands import MAX_REASON
from loyalty.customers import MAX_ADJUSTMENT
from loyalty.fields import UUID_TEXT, is_correlation_id, is_idempotency_key, is_locale
from loyalty.limits import MAX_ID, MAX_POINTS, MAX_REWARD_ID, MAX_TEXT
from loyalty.referral_codes import parse_code
from loyalty.tier_config import MAX_ENTRY_BONUS, MAX_NAME, MAX_TIERS
from loyalty.tier_preview import StoredCustomer
from loyalty.tiers import CustomerMetric
from tests.unit.api_fakes import MERCHANT, SHOP, FakeStores, auth, settings

Json = dict[str, Any]

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})
ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}
WEBHOOK = "/webhooks/shopify"
# /ready's 503 is a probe's answer with each check's outcome, deliberately not an Error.
NOT_ERROR_SHAPED = frozenset({("get", "/ready", "503")})
SOME_UUID = "2f7c1e4a-8b3d-4c5e-9f60-1a2b3c4d5e6f"
SAMPLE_PATH_VALUES = {
    "customer_id": "42",
    "redemption_id": SOME_UUID,
    "adjustment_id": SOME_UUID,
    "code": "ABCD2345",
    "referral_id": SOME_UUID,
}


# ------------------------------------------------------------------------------- helpers


def resolve(node: Json) -> Json:
    """The component `node` refers to (`{"$ref": "#/components/..."}`), or `node` itself."""
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def documented_operations() -> list[tuple[str, str, Json]]:
    return [
        (method, path, built)
        for path, item in DOCUMENT["paths"].items()
        for method, built in item.items()
        if method in HTTP_METHODS
    ]


OPERATIONS = documented_operations()
OPERATION_IDS = [f"{method.upper()} {path}" for method, path, _ in OPERATIONS]


def operation(method: str, path: str) -> Json:
    built: Json = DOCUMENT["paths"][path][method]
    return built


def bearer_scope(built: Json) -> str | None:
    scopes = [scope for need in built["security"] for scope in need.get(BEARER, [])]
    assert len(scopes) <= 1, f"{built['operationId']} names more than one scope"
    return scopes[0] if scopes else None


def parameters_of(built: Json) -> list[Json]:
    return [resolve(p) for p in built.get("parameters", [])]


def parameter_schema(method: str, path: str, name: str) -> Json:
    found = [p for p in parameters_of(operation(method, path)) if p["name"] == name]
    assert len(found) == 1, f"{method} {path} declares {name} {len(found)} times"
    schema: Json = found[0]["schema"]
    return schema


def body_schema(method: str, path: str) -> Json:
    schema: Json = operation(method, path)["requestBody"]["content"]["application/json"]["schema"]
    return schema


def schema_accepts(schema: Json, value: object) -> bool:
    """Whether `value` is valid under `schema`, whose references point into the document."""
    rooted = {**schema, "components": DOCUMENT["components"]}
    return bool(OAS31Validator(rooted, format_checker=oas31_format_checker).is_valid(value))


def schema_errors(schema: Json, value: object) -> list[str]:
    rooted = {**schema, "components": DOCUMENT["components"]}
    validator = OAS31Validator(rooted, format_checker=oas31_format_checker)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]


def app_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route of the app api/app.py builds, HEAD aside (Starlette
    adds it to every GET)."""
    routes: set[tuple[str, str]] = set()
    for route in create_app(settings()).routes:
        assert isinstance(route, Route), f"only plain routes are described: {route!r}"
        routes |= {(m.lower(), route.path) for m in route.methods or () if m != "HEAD"}
    return routes


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PATH_VALUES[m.group(1)], path)


@pytest.fixture
def stores() -> FakeStores:
    return FakeStores()


@pytest.fixture
def client(stores: FakeStores) -> Iterator[TestClient]:
    with stores.client() as http:
        yield http


# -------------------------------------------------------------------------- the document


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1")
    validate(DOCUMENT)


def test_every_route_of_the_app_is_documented() -> None:
    documented = {(method, path) for method, path, _ in OPERATIONS}
    assert app_routes() - documented == set()


def test_every_documented_operation_is_a_route_of_the_app() -> None:
    documented = {(method, path) for method, path, _ in OPERATIONS}
    # The document's own route counts as real even before api/app.py routes it;
    # test_the_app_serves_the_document says whether it does.
    assert documented - app_routes() - {("get", OPENAPI_PATH)} == set()


@pytest.mark.parametrize(("method", "path", "built"), OPERATIONS, ids=OPERATION_IDS)
def test_every_path_parameter_is_declared(method: str, path: str, built: Json) -> None:
    in_template = re.findall(r"\{(\w+)\}", path)
    declared = [p for p in parameters_of(built) if p["in"] == "path"]
    assert sorted(p["name"] for p in declared) == sorted(in_template)
    assert all(p["required"] is True for p in declared)


@pytest.mark.parametrize(("method", "path", "built"), OPERATIONS, ids=OPERATION_IDS)
def test_every_error_answer_is_the_shared_error_shape(method: str, path: str, built: Json) -> None:
    errors = {status: resolve(r) for status, r in built["responses"].items() if int(status) >= 400}
    assert "431" in errors, "RequestLimits answers 431 on every route"
    for status, response in errors.items():
        if (method, path, status) not in NOT_ERROR_SHAPED:
            assert response["content"]["application/json"]["schema"] == ERROR_SCHEMA, status


@pytest.mark.parametrize(("method", "path", "built"), OPERATIONS, ids=OPERATION_IDS)
def test_each_operation_documents_its_refusals(method: str, path: str, built: Json) -> None:
    statuses = set(built["responses"])
    if bearer_scope(built) is not None:
        assert {"401", "403"} <= statuses
    if "requestBody" in built:
        assert "413" in statuses


def test_the_webhook_is_signed_by_shopify_and_the_probes_are_public() -> None:
    assert operation("post", "/webhooks/shopify")["security"] == [{SHOPIFY_HMAC: []}]
    for path in ("/health", "/ready", "/metrics", OPENAPI_PATH):
        assert operation("get", path)["security"] == []
    every_other = [b for m, p, b in OPERATIONS if p.startswith("/v1/")]
    assert all(bearer_scope(built) is not None for built in every_other)


def test_the_webhook_names_the_headers_it_requires() -> None:
    declared = {p["name"]: p["required"] for p in parameters_of(operation("post", WEBHOOK))}
    for header in (
        "X-Shopify-Hmac-Sha256",
        "X-Shopify-Shop-Domain",
        "X-Shopify-Topic",
        "X-Shopify-Webhook-Id",
    ):
        assert declared[header] is True
    assert declared["X-Correlation-Id"] is False


def test_the_commands_require_an_idempotency_key() -> None:
    for path in ("/v1/redemptions", "/v1/customers/{customer_id}/adjustments"):
        key = [p for p in parameters_of(operation("post", path)) if p["name"] == "Idempotency-Key"]
        assert [(p["in"], p["required"], p["schema"]["maxLength"]) for p in key] == [
            ("header", True, MAX_TEXT)
        ]


# ------------------------------------------------------------------------------ serving


def test_the_handler_answers_the_document() -> None:
    app = Starlette(routes=[Route(OPENAPI_PATH, openapi, methods=["GET"])])
    with TestClient(app) as http:
        response = http.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DOCUMENT


def test_the_app_serves_the_document_without_a_token(client: TestClient) -> None:
    if ("get", OPENAPI_PATH) not in app_routes():
        pytest.skip(f"api/app.py does not route {OPENAPI_PATH} yet")
    response = client.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.json() == DOCUMENT


# ------------------------------------------------------------- what the handlers require

BEARER_OPERATIONS = [(m, p, b) for m, p, b in OPERATIONS if bearer_scope(b) is not None]
PUBLIC_OPERATIONS = [(m, p, b) for m, p, b in OPERATIONS if b["security"] == []]


@pytest.mark.parametrize(
    ("method", "path", "built"),
    BEARER_OPERATIONS,
    ids=[f"{m.upper()} {p}" for m, p, _ in BEARER_OPERATIONS],
)
def test_the_documented_scope_is_the_one_the_handler_requires(
    client: TestClient, method: str, path: str, built: Json
) -> None:
    scope = bearer_scope(built)
    assert scope in SCOPES
    refused = client.request(method, concrete(path), headers=auth())  # a token with no scope
    assert refused.status_code == 403
    assert refused.json() == {"error": f"token lacks scope {scope}"}
    allowed = client.request(method, concrete(path), headers=auth(str(scope)))
    assert allowed.status_code not in (401, 403)


@pytest.mark.parametrize(
    ("method", "path"),
    [(m, p) for m, p, _ in PUBLIC_OPERATIONS],
    ids=[f"{m.upper()} {p}" for m, p, _ in PUBLIC_OPERATIONS],
)
def test_public_operations_answer_without_a_token(
    client: TestClient, method: str, path: str
) -> None:
    if (method, path) not in app_routes():
        pytest.skip(f"api/app.py does not route {path} yet")
    assert client.request(method, path).status_code not in (401, 403)


def test_the_documented_bounds_are_the_codes() -> None:
    adjustment = body_schema("post", "/v1/customers/{customer_id}/adjustments")
    points = resolve(adjustment)["properties"]["points"]
    assert (points["minimum"], points["maximum"]) == (-MAX_ADJUSTMENT, MAX_ADJUSTMENT)
    assert points["not"] == {"const": 0}
    reason = resolve(adjustment)["properties"]["reason"]
    assert (reason["minLength"], reason["maxLength"]) == (1, MAX_REASON)
    redemption = resolve(body_schema("post", "/v1/redemptions"))["properties"]
    assert redemption["points"]["maximum"] == MAX_POINTS
    assert redemption["reward_id"]["maxLength"] == MAX_REWARD_ID
    for path, page in (
        ("/v1/customers/{customer_id}/transactions", balances.MAX_PAGE),
        ("/v1/customers/{customer_id}/referrals", referrals.MAX_PAGE),
    ):
        assert parameter_schema("get", path, "limit")["maximum"] == page
    assert str(WEBHOOK_LIMIT) in operation("post", WEBHOOK)["responses"]["413"]["description"]
    assert str(DEFAULT_LIMIT) in operation("put", "/v1/tiers")["responses"]["413"]["description"]


# Bodies on either side of each rule. Left out on purpose, as JSON Schema cannot tell them
# apart from valid ones: `5.0` for an integer (the same number), a digit string beyond 2^63-1,
# and tier rules across fields (ascending thresholds, unique names) or on a decimal's text.
ADJUSTMENT_BODIES: list[object] = [
    {"points": MAX_ADJUSTMENT, "reason": "r"},
    {"points": -MAX_ADJUSTMENT, "reason": "r"},
    {"points": MAX_ADJUSTMENT + 1, "reason": "r"},
    {"points": -MAX_ADJUSTMENT - 1, "reason": "r"},
    {"points": 0, "reason": "r"},
    {"points": True, "reason": "r"},
    {"points": "5", "reason": "r"},
    {"points": 1.5, "reason": "r"},
    {"points": 5, "reason": ""},
    {"points": 5, "reason": "x" * MAX_REASON},
    {"points": 5, "reason": "x" * (MAX_REASON + 1)},
    {"points": 5, "reason": 7},
    {"points": 5},
    {"reason": "r"},
    {"points": 5, "reason": "r", "unread": "ignored"},
    [5, "r"],
]
REDEMPTION_BODIES: list[object] = [
    {"customer_id": 42, "points": 1, "reward_id": "r"},
    {"customer_id": "42", "points": 1, "reward_id": "r"},
    {"customer_id": MAX_ID, "points": MAX_POINTS, "reward_id": "x" * MAX_REWARD_ID},
    {"customer_id": MAX_ID + 1, "points": 1, "reward_id": "r"},
    {"customer_id": 0, "points": 1, "reward_id": "r"},
    {"customer_id": "0", "points": 1, "reward_id": "r"},
    {"customer_id": "4x", "points": 1, "reward_id": "r"},
    {"customer_id": True, "points": 1, "reward_id": "r"},
    {"customer_id": 42, "points": 0, "reward_id": "r"},
    {"customer_id": 42, "points": MAX_POINTS + 1, "reward_id": "r"},
    {"customer_id": 42, "points": 1, "reward_id": ""},
    {"customer_id": 42, "points": 1, "reward_id": "x" * (MAX_REWARD_ID + 1)},
    {"customer_id": 42, "points": 1},
    "not an object",
]
REFERRAL_CODE_BODIES: list[object] = [
    {"customer_id": 1},
    {"customer_id": MAX_ID},
    {"customer_id": MAX_ID + 1},
    {"customer_id": 0},
    {"customer_id": "5"},
    {"customer_id": True},
    {},
    [1],
]


def tiers(metric: str = "points_earned", **tier: object) -> Json:
    return {
        "metric": metric,
        "period": "lifetime",
        "tiers": [{"name": "Silver", "threshold": 500, **tier}],
    }


TIER_BODIES: list[object] = [
    tiers(),
    tiers(multiplier="1.25", entry_bonus=MAX_ENTRY_BONUS),
    tiers("amount_spent", threshold="250.50"),
    tiers("amount_spent", threshold=250),
    tiers("amount_spent", threshold=0),
    tiers(threshold="500"),
    tiers(threshold=0),
    tiers(threshold=10**10 + 1),
    tiers(multiplier=0.5),
    tiers(multiplier=11),
    tiers(entry_bonus=-1),
    tiers(entry_bonus=MAX_ENTRY_BONUS + 1),
    tiers(name=""),
    tiers(name="   "),
    tiers(name="x" * MAX_NAME),
    tiers(name="x" * (MAX_NAME + 1)),
    tiers(metric="visits"),
    {**tiers(), "tiers": [{"name": f"T{i}", "threshold": i + 1} for i in range(MAX_TIERS + 1)]},
    {**tiers(), "period": "weekly"},
    {"metric": "points_earned", "period": "lifetime"},
]


def answers_400(client: TestClient, method: str, path: str, body: object, **headers: str) -> bool:
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code < 500, response.text
    return response.status_code == 400


@pytest.mark.parametrize("body", ADJUSTMENT_BODIES)
def test_the_adjustment_body_schema_is_the_handlers_rule(client: TestClient, body: object) -> None:
    path = "/v1/customers/{customer_id}/adjustments"
    headers = {**auth(SCOPE_ADJUST), "Idempotency-Key": "k-1"}
    refused = answers_400(client, "post", "/v1/customers/42/adjustments", body, **headers)
    assert schema_accepts(body_schema("post", path), body) is not refused


@pytest.mark.parametrize("body", REDEMPTION_BODIES)
def test_the_redemption_body_schema_is_the_handlers_rule(client: TestClient, body: object) -> None:
    headers = {**auth(SCOPE_REDEEM), "Idempotency-Key": "k-1"}
    refused = answers_400(client, "post", "/v1/redemptions", body, **headers)
    assert schema_accepts(body_schema("post", "/v1/redemptions"), body) is not refused


@pytest.mark.parametrize("body", REFERRAL_CODE_BODIES)
def test_the_referral_code_body_schema_is_the_handlers_rule(
    client: TestClient, body: object
) -> None:
    headers = auth(SCOPE_REFERRALS_MANAGE)
    refused = answers_400(client, "post", "/v1/referrals/codes", body, **headers)
    assert schema_accepts(body_schema("post", "/v1/referrals/codes"), body) is not refused


@pytest.mark.parametrize("body", TIER_BODIES)
def test_the_tier_configuration_schema_is_the_handlers_rule(
    client: TestClient, body: object
) -> None:
    refused = answers_400(client, "put", "/v1/tiers", body, **auth(SCOPE_TIERS_MANAGE))
    assert schema_accepts(body_schema("put", "/v1/tiers"), body) is not refused


PARAMETER_RULES: list[tuple[str, str, str, Callable[[str], bool], list[str]]] = [
    (
        "post",
        "/v1/redemptions",
        "Idempotency-Key",
        is_idempotency_key,
        ["k", "x" * MAX_TEXT, "x" * (MAX_TEXT + 1), "", "a b~", "tab\there", "clé"],
    ),
    (
        "post",
        "/v1/redemptions",
        "X-Correlation-Id",
        is_correlation_id,
        ["a.b_c:d-1", "x" * 128, "x" * 129, "", "a b", "a/b", "é"],
    ),
    (
        "get",
        "/v1/customers/{customer_id}/balance",
        "locale",
        is_locale,
        ["en", "heb", "e", "engl", "EN", "e1"],
    ),
    (
        "get",
        "/v1/referrals/{referral_id}",
        "referral_id",
        lambda value: UUID_TEXT.fullmatch(value) is not None,
        [SOME_UUID, SOME_UUID.upper(), SOME_UUID.replace("-", ""), f"{SOME_UUID}0"],
    ),
    (
        "get",
        "/v1/referrals/codes/{code}",
        "code",
        lambda value: parse_code(value) is not None,
        ["ABCD2345", "abcd2345", " ABCD2345 ", "ABCD234", "ABCD23450", "ABCD0345", "ABCDI345"],
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "name", "rule", "value"),
    [(m, p, n, rule, v) for m, p, n, rule, values in PARAMETER_RULES for v in values],
)
def test_a_parameter_schema_is_the_codes_rule(
    method: str, path: str, name: str, rule: Callable[[str], bool], value: str
) -> None:
    assert schema_accepts(parameter_schema(method, path, name), value) is rule(value)


# Integer parameters, sent as a client writes an integer: their bounds against the handler's.
INTEGER_PARAMETERS = [
    ("/v1/customers/{customer_id}/transactions", "limit", [0, 1, balances.MAX_PAGE, 201, -1]),
    ("/v1/customers/{customer_id}/transactions", "before", [0, 1, 2**62, 2**62 + 1]),
    ("/v1/customers/{customer_id}/referrals", "limit", [0, 1, referrals.MAX_PAGE, 201]),
]


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [(p, n, v) for p, n, values in INTEGER_PARAMETERS for v in values],
)
def test_an_integer_query_schema_is_the_handlers_rule(
    client: TestClient, path: str, name: str, value: int
) -> None:
    scope = bearer_scope(operation("get", path))
    response = client.get(concrete(path), params={name: str(value)}, headers=auth(str(scope)))
    refused = response.status_code == 400
    assert schema_accepts(parameter_schema("get", path, name), value) is not refused


@pytest.mark.parametrize("value", [0, 1, MAX_ID, MAX_ID + 1])
def test_the_customer_id_schema_is_the_handlers_rule(client: TestClient, value: int) -> None:
    path = "/v1/customers/{customer_id}/balance"
    response = client.get(f"/v1/customers/{value}/balance", headers=auth(SCOPE_VIEW))
    refused = response.status_code == 400
    assert schema_accepts(parameter_schema("get", path, "customer_id"), value) is not refused


# ------------------------------------------------------------------- what the handlers answer


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str  # the route's template
    response: Any  # the TestClient's response


def ask(
    client: TestClient,
    method: str,
    path: str,
    values: Mapping[str, object] | None = None,
    **request: Any,
) -> Exchange:
    """One request to the route `path` (a template, filled with `values`)."""
    url = path.format(**values) if values else path
    return Exchange(method, path, client.request(method, url, **request))


def answered(status: int, exchange: Exchange) -> Any:
    """The exchange's answer has this status, which is documented for the operation with the
    answer's media type, and its body matches the documented schema."""
    response, where = exchange.response, f"{exchange.method.upper()} {exchange.path}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
    responses = operation(exchange.method, exchange.path)["responses"]
    assert str(status) in responses, f"{where} answered an undocumented {status}"
    content = resolve(responses[str(status)])["content"]
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in content, f"{where} answered {status} as {media_type}"
    if media_type == "application/json":
        assert schema_errors(content[media_type]["schema"], response.json()) == [], where
    return response


def signed(body: bytes, topic: str = "orders/paid", delivery: str = "w-1") -> dict[str, str]:
    signature = base64.b64encode(hmac.new(b"secret", body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": delivery,
    }


ORDER = json.dumps(
    {
        "id": 9001,
        "financial_status": "paid",
        "subtotal_price": "40.00",
        "total_tax": "3.20",
        "created_at": "2026-11-20T10:00:00+00:00",
        "customer": {"id": 77},
    }
).encode()


def webhook(client: TestClient, body: bytes, headers: dict[str, str]) -> Exchange:
    return ask(client, "post", WEBHOOK, content=body, headers=headers)


def test_the_webhooks_answers_are_documented(stores: FakeStores, client: TestClient) -> None:
    stores.redis.down = True  # the rate limit and dedup fail open
    outcomes = [
        answered(200, webhook(client, ORDER, signed(ORDER))),
        answered(200, webhook(client, b"{}", signed(b"{}", topic="products/update"))),
        answered(200, webhook(client, b'{"id": 0}', signed(b'{"id": 0}', delivery="w-2"))),
    ]
    assert [r.json()["status"] for r in outcomes] == ["accepted", "ignored", "dead_lettered"]
    answered(400, webhook(client, b"[", signed(b"[", delivery="w-3")))
    answered(400, webhook(client, ORDER, {"X-Shopify-Topic": "orders/paid"}))
    answered(401, webhook(client, ORDER, signed(b"another body", delivery="w-4")))
    stores.producer.failing = True
    answered(503, webhook(client, ORDER, signed(ORDER, delivery="w-5")))


BALANCE_ID = balance_id(MERCHANT, 42)
BALANCE_DOCUMENT: Json = {
    "_id": BALANCE_ID,
    "merchant_id": MERCHANT,
    "shopify_customer_id": 42,
    "balance": 120,
    "seq": 4,
    "updated_at": datetime(2025, 1, 2, 3, 4, 5),  # noqa: DTZ001 - MongoDB's naive UTC
    "pending": 30,
    "lifetime_earned": 200,
    "next_expiry": {"points": 70, "at": datetime(2025, 3, 31)},  # noqa: DTZ001
}
REDEMPTIONS = "/v1/redemptions"
REDEMPTION = "/v1/redemptions/{redemption_id}"
ADJUSTMENTS = "/v1/customers/{customer_id}/adjustments"
ADJUSTMENT = "/v1/adjustments/{adjustment_id}"
BALANCE = "/v1/customers/{customer_id}/balance"
TRANSACTIONS = "/v1/customers/{customer_id}/transactions"


def test_the_points_answers_are_documented(stores: FakeStores, client: TestClient) -> None:
    view, redeem, adjust = auth(SCOPE_VIEW), auth(SCOPE_REDEEM), auth(SCOPE_ADJUST)
    customer, other = {"customer_id": 42}, {"customer_id": 43}
    body = {"points": -20, "reason": "Damaged return"}
    key = {"Idempotency-Key": "a-1"}
    redemption = answered(
        202,
        ask(
            client,
            "post",
            REDEMPTIONS,
            json={"customer_id": 42, "points": 10, "reward_id": "mug"},
            headers={**redeem, "Idempotency-Key": "r-1"},
        ),
    ).json()
    adjustment = answered(
        202, ask(client, "post", ADJUSTMENTS, customer, json=body, headers={**adjust, **key})
    ).json()
    different = {**body, "points": -21}
    answered(
        422, ask(client, "post", ADJUSTMENTS, customer, json=different, headers={**adjust, **key})
    )
    answered(400, ask(client, "post", ADJUSTMENTS, customer, json=body, headers=adjust))
    answered(200, ask(client, "get", REDEMPTION, redemption, headers=view))
    answered(404, ask(client, "get", REDEMPTION, {"redemption_id": SOME_UUID}, headers=view))
    answered(200, ask(client, "get", ADJUSTMENT, adjustment, headers=view))

    stores.collection(BALANCES).documents[BALANCE_ID] = dict(BALANCE_DOCUMENT)
    answered(200, ask(client, "get", BALANCE, customer, headers=view))
    answered(404, ask(client, "get", BALANCE, other, headers=view))
    answered(400, ask(client, "get", BALANCE, customer, params={"locale": "xx"}, headers=view))
    answered(401, ask(client, "get", BALANCE, customer))
    answered(403, ask(client, "get", BALANCE, customer, headers=redeem))
    answered(400, ask(client, "get", TRANSACTIONS, customer, params={"limit": "0"}, headers=view))
    answered(404, ask(client, "get", TRANSACTIONS, other, headers=view))

    stores.collection(REDEMPTIONS_COLLECTION).down = True
    answered(503, ask(client, "get", REDEMPTION, redemption, headers=view))
    stores.producer.failing = True
    again = {"Idempotency-Key": "a-2"}
    answered(
        503, ask(client, "post", ADJUSTMENTS, customer, json=body, headers={**adjust, **again})
    )


def referral_row(advocate: int) -> ReferralRow:
    at = datetime(2026, 11, 22, 8, tzinfo=UTC)
    return ReferralRow(
        merchant_id=MERCHANT,
        referral_id=SOME_UUID,
        code="ABCD2345",
        friend=77,
        order_id=9001,
        advocate=advocate,
        status="completed",
        reason=None,
        advocate_points=500,
        friend_points=50,
        release_at=at + timedelta(days=14),
        decided_at=at,
        status_rank=1,
        created_at=at,
        updated_at=at,
    )


CODES = "/v1/referrals/codes"
CODE = "/v1/referrals/codes/{code}"
REFERRAL = "/v1/referrals/{referral_id}"
ADVOCATE_REFERRALS = "/v1/customers/{customer_id}/referrals"
SEGMENTS = "/v1/segments"
CUSTOMER_RFM = "/v1/customers/{customer_id}/rfm"


def test_the_referral_and_rfm_answers_are_documented(
    stores: FakeStores, client: TestClient
) -> None:
    manage, view = auth(SCOPE_REFERRALS_MANAGE), auth(SCOPE_REFERRALS_VIEW)
    analytics = auth(SCOPE_ANALYTICS)
    advocate, other = {"customer_id": 42}, {"customer_id": 43}
    stores.referrals.rows.append(referral_row(advocate=42))
    code = answered(201, ask(client, "post", CODES, json=advocate, headers=manage)).json()
    answered(200, ask(client, "post", CODES, json=advocate, headers=manage))
    answered(400, ask(client, "post", CODES, json={"customer_id": 0}, headers=manage))
    answered(200, ask(client, "get", CODE, code, headers=view))
    answered(404, ask(client, "get", CODE, {"code": "ABCD2345"}, headers=view))
    answered(400, ask(client, "get", CODE, {"code": "nope"}, headers=view))
    answered(200, ask(client, "get", REFERRAL, {"referral_id": SOME_UUID}, headers=view))
    answered(404, ask(client, "get", REFERRAL, {"referral_id": str(uuid.uuid4())}, headers=view))
    answered(400, ask(client, "get", REFERRAL, {"referral_id": "nope"}, headers=view))
    page = answered(200, ask(client, "get", ADVOCATE_REFERRALS, advocate, headers=view)).json()
    assert [item["referral_id"] for item in page["items"]] == [SOME_UUID]
    answered(404, ask(client, "get", ADVOCATE_REFERRALS, other, headers=view))
    bad_page = {"before": "x"}
    answered(400, ask(client, "get", ADVOCATE_REFERRALS, advocate, params=bad_page, headers=view))
    answered(200, ask(client, "get", SEGMENTS, headers=analytics))
    answered(404, ask(client, "get", CUSTOMER_RFM, advocate, headers=analytics))
    answered(400, ask(client, "get", CUSTOMER_RFM, {"customer_id": "x"}, headers=analytics))
    stores.links.down = True
    answered(503, ask(client, "get", CODE, code, headers=view))


TIERS = "/v1/tiers"
TIER_COUNTS = "/v1/tiers/counts"
PREVIEW = "/v1/tiers/preview"
CUSTOMER_TIER = "/v1/customers/{customer_id}/tier"


def test_the_tier_answers_are_documented(stores: FakeStores, client: TestClient) -> None:
    view, manage = auth(SCOPE_VIEW), auth(SCOPE_TIERS_MANAGE)
    analytics = auth(SCOPE_ANALYTICS)
    customer = {"customer_id": 42}
    stores.tiers.keep(MERCHANT, 42, StoredCustomer("Silver", CustomerMetric(), CustomerMetric()))
    stores.tiers.effective_at = datetime(2020, 1, 1, tzinfo=UTC)  # a saved version is in force
    answered(200, ask(client, "get", TIERS, headers=view))
    assert (
        "progress"
        not in answered(200, ask(client, "get", CUSTOMER_TIER, customer, headers=view)).json()
    )

    amount = tiers("amount_spent", threshold="250.50", multiplier="1.5", entry_bonus=10)
    answered(201, ask(client, "put", TIERS, json=amount, headers=manage))
    answered(400, ask(client, "put", TIERS, content=b"[", headers=manage))
    settings_now = answered(200, ask(client, "get", TIERS, headers=view)).json()
    assert settings_now["current"]["metric"] == "amount_spent"
    assert (
        "progress"
        in answered(200, ask(client, "get", CUSTOMER_TIER, customer, headers=view)).json()
    )
    answered(400, ask(client, "get", CUSTOMER_TIER, {"customer_id": 0}, headers=view))
    answered(200, ask(client, "get", TIER_COUNTS, headers=analytics))
    answered(200, ask(client, "post", PREVIEW, json=tiers(), headers=manage))
    for as_of, status in (("2026-12-31", 200), ("2026-12-31T12:00:00+02:00", 200), ("soon", 400)):
        answered(
            status,
            ask(client, "post", PREVIEW, json=tiers(), params={"as_of": as_of}, headers=manage),
        )
    stores.tiers.down = True  # the configuration stays cached; the counts are read each time
    answered(503, ask(client, "get", TIER_COUNTS, headers=analytics))


def test_the_operational_answers_are_documented(client: TestClient) -> None:
    too_many_headers = {f"X-Filler-{i}": "x" * 1000 for i in range(MAX_HEADER_BYTES // 1000 + 1)}
    answered(200, ask(client, "get", "/health"))
    answered(503, ask(client, "get", "/ready"))  # the fakes answer none of its checks
    answered(200, ask(client, "get", "/metrics"))
    answered(431, ask(client, "get", "/health", headers=too_many_headers))
    answered(413, ask(client, "put", TIERS, content=b"x" * (DEFAULT_LIMIT + 1), headers=auth()))
    answered(413, ask(client, "post", WEBHOOK, content=b"x" * (WEBHOOK_LIMIT + 1)))
