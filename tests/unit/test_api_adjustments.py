"""Manual adjustments through the real app on in-memory stores: every answer of
`POST /v1/customers/{id}/adjustments` and `GET /v1/adjustments/{id}`, and what each one leaves
in MongoDB and on `points.commands`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.request_limits import DEFAULT_LIMIT
from connectors.adjustments import ADJUSTMENTS, REASON_RULE
from loyalnest.tokens import SCOPE_ADJUST, SCOPE_REDEEM, SCOPE_VIEW
from loyalnest.topics import POINTS_COMMANDS
from loyalty import ids
from loyalty.commands import decode_command
from loyalty.customers import Adjustment
from tests.unit.api_fakes import MERCHANT, OTHER_SHOP, PREFIX, FakeStores, auth

CUSTOMER = 42
KEY = "adjust-key-1"
BODY = {"points": 50, "reason": "Welcome gift"}
POINTS_ERROR = "points must be a non-zero integer from -1,000,000 to 1,000,000"


@pytest.fixture
def stores() -> FakeStores:
    return FakeStores()


@pytest.fixture
def client(stores: FakeStores) -> Iterator[TestClient]:
    with stores.client() as http:
        yield http


def post(
    client: TestClient,
    body: Any = BODY,
    *,
    key: str | None = KEY,
    customer: object = CUSTOMER,
    headers: dict[str, str] | None = None,
) -> Any:
    sent = auth(SCOPE_ADJUST) if headers is None else headers
    if key is not None:
        sent = {**sent, "Idempotency-Key": key}
    return client.post(f"/v1/customers/{customer}/adjustments", json=body, headers=sent)


def decide(stores: FakeStores, adjustment_id: str, **outcome: Any) -> None:
    """What the points flow's outcome write leaves on the document."""
    stores.collection(ADJUSTMENTS).documents[adjustment_id].update(
        decided_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), **outcome
    )


# ------------------------------------------------------------------------------- accepted


def test_an_adjustment_is_recorded_pending_and_its_command_sent(
    stores: FakeStores, client: TestClient
) -> None:
    response = post(client, headers={**auth(SCOPE_ADJUST), "X-Correlation-Id": "corr-1"})

    assert response.status_code == 202, response.text
    body = response.json()
    adjustment_id = str(ids.adjustment_id(MERCHANT, KEY))
    assert body["adjustment_id"] == adjustment_id
    assert (body["status"], body["reason"], body["decided_at"]) == ("pending", None, None)
    assert (body["customer_id"], body["points"], body["memo"]) == (CUSTOMER, 50, "Welcome gift")
    assert body["created_at"].endswith("Z")
    stored = stores.collection(ADJUSTMENTS).documents[adjustment_id]
    assert (stored["status"], stored["memo"], stored["idempotency_key"]) == (
        "pending",
        "Welcome gift",
        KEY,
    )
    [sent] = stores.producer.sent
    assert sent.topic == f"{PREFIX}{POINTS_COMMANDS}"
    assert sent.key == f"{MERCHANT}:{CUSTOMER}".encode()
    command = decode_command(sent.value)
    assert isinstance(command, Adjustment)
    assert (command.adjustment_id, command.merchant_id, command.customer) == (
        adjustment_id,
        MERCHANT,
        CUSTOMER,
    )
    assert (command.points, command.reason, command.idempotency_key) == (50, "Welcome gift", KEY)
    assert (command.locale, command.correlation_id) == ("en", "corr-1")


@pytest.mark.parametrize(
    "body",
    [
        {"points": -20, "reason": "Damaged return"},
        {"points": 1_000_000, "reason": "x"},
        {"points": -1_000_000, "reason": "r" * 200},
        {"points": 7, "reason": "שלום ✓"},
    ],
    ids=["deduction", "largest", "largest-deduction-longest-reason", "any-script"],
)
def test_every_value_within_the_bounds_is_accepted(
    stores: FakeStores, client: TestClient, body: dict[str, Any]
) -> None:
    response = post(client, body)

    assert response.status_code == 202, response.text
    assert (response.json()["points"], response.json()["memo"]) == (body["points"], body["reason"])
    [sent] = stores.producer.sent
    command = decode_command(sent.value)
    assert isinstance(command, Adjustment)
    assert (command.points, command.reason) == (body["points"], body["reason"])


def test_the_locale_of_the_ledger_entry_may_be_asked_for(
    stores: FakeStores, client: TestClient
) -> None:
    response = client.post(
        f"/v1/customers/{CUSTOMER}/adjustments?locale=he",
        json=BODY,
        headers={**auth(SCOPE_ADJUST), "Idempotency-Key": KEY},
    )

    assert response.status_code == 202, response.text
    command = decode_command(stores.producer.sent[0].value)
    assert isinstance(command, Adjustment)
    assert command.locale == "he"


# ----------------------------------------------------------------------------- idempotency


def test_the_same_key_and_body_is_the_same_adjustment_sent_again_while_pending(
    stores: FakeStores, client: TestClient
) -> None:
    first = post(client)
    again = post(client)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["adjustment_id"] == first.json()["adjustment_id"]
    assert len(stores.collection(ADJUSTMENTS).documents) == 1
    # Re-sent in case the first send was lost; the flow applies an adjustment id once.
    commands = [decode_command(s.value) for s in stores.producer.sent]
    assert [(c.adjustment_id, c.points) for c in commands if isinstance(c, Adjustment)] == [
        (first.json()["adjustment_id"], 50)
    ] * 2


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("completed", {"balance_after": 150, "ledger_event_id": "e-1", "reason": None}),
        ("failed", {"reason": "insufficient_points"}),
    ],
)
def test_once_decided_the_same_key_answers_200_with_the_outcome_and_sends_nothing(
    stores: FakeStores, client: TestClient, status: str, outcome: dict[str, Any]
) -> None:
    adjustment_id = post(client).json()["adjustment_id"]
    decide(stores, adjustment_id, status=status, **outcome)

    response = post(client)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["adjustment_id"], body["status"]) == (adjustment_id, status)
    assert body["reason"] == outcome["reason"]
    assert body["balance_after"] == outcome.get("balance_after")
    assert body["decided_at"] == "2025-01-02T03:04:05Z"
    assert len(stores.producer.sent) == 1


@pytest.mark.parametrize(
    ("body", "customer"),
    [
        ({"points": 51, "reason": "Welcome gift"}, CUSTOMER),
        ({"points": -50, "reason": "Welcome gift"}, CUSTOMER),
        ({"points": 50, "reason": "Welcome gift!"}, CUSTOMER),
        (BODY, CUSTOMER + 1),
    ],
    ids=["other-points", "other-sign", "other-reason", "other-customer"],
)
def test_the_same_key_for_a_different_adjustment_is_422(
    stores: FakeStores, client: TestClient, body: dict[str, Any], customer: int
) -> None:
    assert post(client).status_code == 202

    response = post(client, body, customer=customer)

    assert response.status_code == 422, response.text
    assert response.json() == {"error": "Idempotency-Key already used for a different adjustment"}
    assert len(stores.producer.sent) == 1
    [stored] = stores.collection(ADJUSTMENTS).documents.values()
    assert (stored["points"], stored["memo"]) == (50, "Welcome gift")


def test_the_same_key_from_another_merchant_is_another_adjustment(
    stores: FakeStores, client: TestClient
) -> None:
    mine = post(client)
    theirs = post(client, headers=auth(SCOPE_ADJUST, shop=OTHER_SHOP))

    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert mine.json()["adjustment_id"] != theirs.json()["adjustment_id"]
    assert len(stores.collection(ADJUSTMENTS).documents) == 2


# ------------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"points": 0, "reason": "r"}, POINTS_ERROR),
        ({"points": 1_000_001, "reason": "r"}, POINTS_ERROR),
        ({"points": -1_000_001, "reason": "r"}, POINTS_ERROR),
        ({"points": True, "reason": "r"}, POINTS_ERROR),
        ({"points": False, "reason": "r"}, POINTS_ERROR),
        ({"points": 1.5, "reason": "r"}, POINTS_ERROR),
        ({"points": 5.0, "reason": "r"}, POINTS_ERROR),
        ({"points": "5", "reason": "r"}, POINTS_ERROR),
        ({"points": None, "reason": "r"}, POINTS_ERROR),
        ({"reason": "r"}, POINTS_ERROR),
        ({"points": 5, "reason": ""}, REASON_RULE),
        ({"points": 5, "reason": "r" * 201}, REASON_RULE),
        ({"points": 5, "reason": 5}, REASON_RULE),
        ({"points": 5, "reason": ["r"]}, REASON_RULE),
        ({"points": 5}, REASON_RULE),
        ([50, "r"], "body must be a JSON object"),
        ("50", "body must be a JSON object"),
    ],
    ids=[
        "zero",
        "over",
        "under",
        "true",
        "false",
        "fraction",
        "float-integral",
        "string",
        "null",
        "missing",
        "empty-reason",
        "long-reason",
        "number-reason",
        "list-reason",
        "no-reason",
        "array-body",
        "string-body",
    ],
)
def test_a_bad_body_is_400_and_nothing_is_recorded_or_sent(
    stores: FakeStores, client: TestClient, body: Any, error: str
) -> None:
    response = post(client, body)

    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(error)
    assert stores.collection(ADJUSTMENTS).documents == {}
    assert stores.producer.sent == []


def test_a_body_that_is_not_json_is_400(stores: FakeStores, client: TestClient) -> None:
    response = client.post(
        f"/v1/customers/{CUSTOMER}/adjustments",
        content=b'{"points": 5, "reason": "r"',
        headers={**auth(SCOPE_ADJUST), "Idempotency-Key": KEY},
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("body is not JSON")
    assert stores.producer.sent == []


@pytest.mark.parametrize(
    "key",
    [None, "", "k" * 256, "key\x7f"],
    ids=["no-key", "empty-key", "long-key", "not-printable"],
)
def test_a_missing_or_bad_idempotency_key_is_400(
    stores: FakeStores, client: TestClient, key: str | None
) -> None:
    response = post(client, key=key)

    assert response.status_code == 400
    assert "Idempotency-Key header required" in response.json()["error"]
    assert stores.producer.sent == []


@pytest.mark.parametrize("customer", ["abc", "0", "-5", "9223372036854775808", "1.0"])
def test_a_customer_that_is_not_a_shopify_id_is_400(client: TestClient, customer: str) -> None:
    response = post(client, customer=customer)

    assert response.status_code == 400
    assert "customer_id must be a Shopify customer id" in response.json()["error"]


def test_an_unsupported_locale_is_400(client: TestClient) -> None:
    response = client.post(
        f"/v1/customers/{CUSTOMER}/adjustments?locale=fr",
        json=BODY,
        headers={**auth(SCOPE_ADJUST), "Idempotency-Key": KEY},
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("locale must be one of")


def test_a_body_over_64_kib_is_413(stores: FakeStores, client: TestClient) -> None:
    body = {"points": 5, "reason": "r" * DEFAULT_LIMIT}

    response = post(client, body)

    assert response.status_code == 413
    assert stores.producer.sent == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}],
    ids=["none", "garbage", "not-bearer"],
)
def test_without_a_valid_token_it_is_401(
    stores: FakeStores, client: TestClient, headers: dict[str, str]
) -> None:
    response = post(client, headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert stores.producer.sent == []


@pytest.mark.parametrize(
    "scopes", [(SCOPE_VIEW,), (SCOPE_REDEEM,), (SCOPE_VIEW, SCOPE_REDEEM)], ids=str
)
def test_a_token_without_the_adjust_scope_is_403(
    stores: FakeStores, client: TestClient, scopes: tuple[str, ...]
) -> None:
    response = post(client, headers=auth(*scopes))

    assert response.status_code == 403
    assert response.json() == {"error": f"token lacks scope {SCOPE_ADJUST}"}
    assert stores.collection(ADJUSTMENTS).documents == {}


# ------------------------------------------------------------------------------ unavailable


def test_when_kafka_does_not_ack_it_is_503_and_a_retry_with_the_key_sends_it(
    stores: FakeStores, client: TestClient
) -> None:
    stores.producer.failing = True

    refused = post(client)

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert "retry with the same Idempotency-Key" in refused.json()["error"]
    [stored] = stores.collection(ADJUSTMENTS).documents.values()
    assert stored["status"] == "pending"

    stores.producer.failing = False
    retried = post(client)

    assert retried.status_code == 202
    assert retried.json()["adjustment_id"] == stored["_id"]
    assert len(stores.producer.sent) == 1


def test_when_mongodb_is_away_it_is_503_and_nothing_is_sent(
    stores: FakeStores, client: TestClient
) -> None:
    stores.collection(ADJUSTMENTS).down = True

    response = post(client)

    assert response.status_code == 503
    assert response.json() == {"error": "MongoDB is unavailable, retry later"}
    assert stores.producer.sent == []


# ------------------------------------------------------------------------------------ GET


def get(client: TestClient, adjustment_id: str, headers: dict[str, str] | None = None) -> Any:
    return client.get(
        f"/v1/adjustments/{adjustment_id}",
        headers=auth(SCOPE_VIEW) if headers is None else headers,
    )


def test_an_adjustment_reads_back_pending_then_decided(
    stores: FakeStores, client: TestClient
) -> None:
    adjustment_id = post(client).json()["adjustment_id"]

    pending = get(client, adjustment_id)
    decide(
        stores,
        adjustment_id,
        status="completed",
        reason=None,
        balance_after=150,
        ledger_event_id="e-1",
    )
    completed = get(client, adjustment_id)

    assert pending.status_code == 200
    assert (pending.json()["status"], pending.json()["memo"]) == ("pending", "Welcome gift")
    assert completed.status_code == 200
    body = completed.json()
    assert (body["status"], body["reason"], body["balance_after"]) == ("completed", None, 150)
    assert (body["points"], body["customer_id"], body["memo"]) == (50, CUSTOMER, "Welcome gift")
    assert body["ledger_event_id"] == "e-1"


def test_a_failed_adjustment_says_why_apart_from_the_merchants_reason(
    stores: FakeStores, client: TestClient
) -> None:
    adjustment_id = post(client, {"points": -500, "reason": "Fraud"}).json()["adjustment_id"]
    decide(stores, adjustment_id, status="failed", reason="insufficient_points")

    body = get(client, adjustment_id).json()

    assert (body["status"], body["reason"], body["memo"]) == (
        "failed",
        "insufficient_points",
        "Fraud",
    )
    assert body["balance_after"] is None


def test_an_unknown_adjustment_is_404(client: TestClient) -> None:
    response = get(client, str(ids.adjustment_id(MERCHANT, "never-used")))

    assert response.status_code == 404
    assert response.json() == {"error": "adjustment not found"}


def test_another_merchants_adjustment_is_404_not_403(client: TestClient) -> None:
    theirs = post(client, headers=auth(SCOPE_ADJUST, shop=OTHER_SHOP)).json()["adjustment_id"]

    response = get(client, theirs)

    assert response.status_code == 404
    assert get(client, theirs, auth(SCOPE_VIEW, shop=OTHER_SHOP)).status_code == 200


def test_reading_needs_a_token_with_the_view_scope(client: TestClient) -> None:
    adjustment_id = post(client).json()["adjustment_id"]

    assert get(client, adjustment_id, {}).status_code == 401
    forbidden = get(client, adjustment_id, auth(SCOPE_ADJUST))
    assert forbidden.status_code == 403
    assert forbidden.json() == {"error": f"token lacks scope {SCOPE_VIEW}"}


def test_reading_while_mongodb_is_away_is_503(stores: FakeStores, client: TestClient) -> None:
    stores.collection(ADJUSTMENTS).down = True

    response = get(client, str(ids.adjustment_id(MERCHANT, KEY)))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
