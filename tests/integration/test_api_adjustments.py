"""Manual adjustments and merchant program settings end to end, on the real stack: the API
and the `loyalnest` CLI as real processes, decided by a real points flow.

Orders go in through the real webhook endpoint, so the merchant's settings are proven to
travel with them (the record headers), and their effect is read back through the balance API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc
import httpx
import pymongo
import pytest
from confluent_kafka.admin import AdminClient

from connectors.adjustments import ADJUSTMENTS
from connectors.shopify import EXPIRY_HEADER, PENDING_DAYS_HEADER, partition_key
from loyalnest.harness.processes import ROOT
from loyalnest.harness.shops import JWT_SECRET, SECRETS_KEY, Shop
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_ADJUST, SCOPE_VIEW
from loyalnest.topics import SHOPIFY_ORDERS
from loyalnest_grpc.points.v1 import points_pb2, points_pb2_grpc
from loyalty import ids
from loyalty.lots import lot_expiry
from loyalty.policy import Expiry, ExpiryMode
from tests.integration.api_harness import ApiStack, api_stack
from tests.integration.points_harness import read_log
from tests.integration.test_api import (
    accepted,
    balance,
    funded_customer,
    ledger,
    new_order,
    points_for,
    post_webhook,
    wait_balance,
)

CLI_TIMEOUT = 120


@pytest.fixture(scope="module")
def stack(
    settings: Settings, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    # `admin` is here for its check: the module fails at once, saying so, if Kafka is down.
    with api_stack(settings, tmp_path_factory.mktemp("adjustments")) as built:
        yield built


@pytest.fixture(scope="module")
def client(stack: ApiStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api.url, timeout=15) as http:
        yield http


@pytest.fixture(scope="module")
def adjustments(stack: ApiStack) -> Iterator[pymongo.collection.Collection[dict[str, Any]]]:
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(stack.settings.mongo_url)
    yield mongo[stack.points.database][ADJUSTMENTS]
    mongo.close()


# ----------------------------------------------------------------------------- helpers


def adjust(
    client: httpx.Client, shop: Shop, customer: int, points: int, reason: str, key: str
) -> httpx.Response:
    return client.post(
        f"/v1/customers/{customer}/adjustments",
        json={"points": points, "reason": reason},
        headers={**shop.auth(SCOPE_ADJUST), "Idempotency-Key": key},
    )


def decided(stack: ApiStack, client: httpx.Client, shop: Shop, adjustment_id: str) -> Any:
    def probe() -> Any:
        response = client.get(f"/v1/adjustments/{adjustment_id}", headers=shop.auth(SCOPE_VIEW))
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["status"] != "pending" else None

    return stack.wait_for(f"adjustment {adjustment_id} to be decided", probe)


def adjusted(
    stack: ApiStack, client: httpx.Client, shop: Shop, customer: int, points: int, reason: str
) -> Any:
    """A new adjustment, accepted and then decided; its decided state."""
    response = adjust(client, shop, customer, points, reason, str(uuid.uuid4()))
    assert response.status_code == 202, response.text
    return decided(stack, client, shop, response.json()["adjustment_id"])


def cli(stack: ApiStack, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m loyalnest.cli ...` against the stack, with the harness's secrets."""
    environ = stack.points.environ(
        POSTGRES_URL=stack.postgres_url,
        JWT_SECRET=JWT_SECRET,
        LOYALNEST_SECRETS_KEY=SECRETS_KEY,
        PYTHONPATH=str(ROOT),  # this checkout's code, whatever the environment installs
    )
    return subprocess.run(
        [sys.executable, "-m", "loyalnest.cli", *argv],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def adjustment_entries(
    stack: ApiStack, client: httpx.Client, shop: Shop, customer: int
) -> list[dict[str, Any]]:
    return [e for e in ledger(stack, client, shop, customer, 1) if e["type"] == "adjust"]


# ------------------------------------------------------------------------------- the API


def test_a_positive_adjustment_completes_and_shows_in_balance_and_ledger(
    stack: ApiStack, client: httpx.Client, adjustments: Any
) -> None:
    shop = stack.shop_a
    customer, earned = funded_customer(stack, client, shop)
    key = f"gift-{uuid.uuid4()}"

    response = adjust(client, shop, customer, 50, "Welcome gift", key)

    assert response.status_code == 202, response.text
    adjustment_id = response.json()["adjustment_id"]
    assert adjustment_id == str(ids.adjustment_id(shop.merchant_id, key))
    assert (response.json()["status"], response.json()["memo"]) == ("pending", "Welcome gift")
    outcome = decided(stack, client, shop, adjustment_id)
    assert (outcome["status"], outcome["reason"]) == ("completed", None)
    assert (outcome["balance_after"], outcome["points"]) == (earned + 50, 50)
    wait_balance(stack, client, shop, customer, earned + 50)
    newest = ledger(stack, client, shop, customer, 2)[0]
    assert (newest["type"], newest["source"], newest["source_id"]) == (
        "adjust",
        "adjustment",
        adjustment_id,
    )
    assert (newest["points"], newest["balance_after"], newest["memo"]) == (
        50,
        earned + 50,
        "Welcome gift",
    )
    assert newest["adjustment_id"] == adjustment_id
    assert newest["event_id"] == outcome["ledger_event_id"]
    stored = adjustments.find_one({"_id": adjustment_id})
    assert (stored["status"], stored["memo"], stored["reason"]) == (
        "completed",
        "Welcome gift",
        None,
    )


def test_a_deduction_beyond_the_spendable_balance_fails_and_changes_nothing(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop = stack.shop_a
    customer, earned = funded_customer(stack, client, shop)

    outcome = adjusted(stack, client, shop, customer, -(earned + 1), "Fraud")
    # A later adjustment of the same customer is decided after it (one log per customer): once
    # it shows, anything the failed one had posted would show too.
    later = adjusted(stack, client, shop, customer, 1, "Sentinel")

    assert (outcome["status"], outcome["reason"]) == ("failed", "insufficient_points")
    assert (outcome["balance_after"], outcome["memo"]) == (None, "Fraud")
    assert (later["status"], later["balance_after"]) == ("completed", earned + 1)
    entries = ledger(stack, client, shop, customer, 2)
    assert [(e["type"], e["points"]) for e in entries] == [("adjust", 1), ("earn", earned)]
    wait_balance(stack, client, shop, customer, earned + 1)


def test_a_deduction_within_the_balance_completes(stack: ApiStack, client: httpx.Client) -> None:
    shop = stack.shop_a
    customer, earned = funded_customer(stack, client, shop)

    outcome = adjusted(stack, client, shop, customer, -earned, "Returned goods")

    assert (outcome["status"], outcome["balance_after"]) == ("completed", 0)
    wait_balance(stack, client, shop, customer, 0)


def test_repeating_the_post_with_the_same_key_changes_nothing(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop = stack.shop_a
    customer, earned = funded_customer(stack, client, shop)
    key = f"repeat-{uuid.uuid4()}"

    first = adjust(client, shop, customer, 10, "Birthday", key)
    right_after = adjust(client, shop, customer, 10, "Birthday", key)
    outcome = decided(stack, client, shop, first.json()["adjustment_id"])
    after_decision = adjust(client, shop, customer, 10, "Birthday", key)
    other_body = adjust(client, shop, customer, 11, "Birthday", key)
    adjusted(stack, client, shop, customer, 1, "Sentinel")

    assert first.status_code == 202
    assert right_after.status_code in (200, 202)  # 200 if the flow decided in between
    assert right_after.json()["adjustment_id"] == first.json()["adjustment_id"]
    assert after_decision.status_code == 200
    assert after_decision.json() == outcome
    assert other_body.status_code == 422
    entries = adjustment_entries(stack, client, shop, customer)
    assert [e["points"] for e in entries] == [1, 10]
    wait_balance(stack, client, shop, customer, earned + 11)


def test_adjustments_are_scoped_and_checked_by_the_real_api(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop, other = stack.shop_a, stack.shop_b
    customer = 100_000 + stack.next_id()
    response = adjust(client, shop, customer, 5, "Scoped", f"scoped-{uuid.uuid4()}")
    adjustment_id = response.json()["adjustment_id"]

    view_only = client.post(
        f"/v1/customers/{customer}/adjustments",
        json={"points": 5, "reason": "x"},
        headers={**shop.auth(SCOPE_VIEW), "Idempotency-Key": "k"},
    )
    not_an_int = adjust(client, shop, customer, True, "x", "k")  # a bool is no number of points
    theirs = client.get(f"/v1/adjustments/{adjustment_id}", headers=other.auth(SCOPE_VIEW))

    assert response.status_code == 202
    assert view_only.status_code == 403
    assert not_an_int.status_code == 400
    assert theirs.status_code == 404
    # A customer without points may be given some: an adjustment makes their balance.
    assert decided(stack, client, shop, adjustment_id)["status"] == "completed"
    wait_balance(stack, client, shop, customer, 5)


# ------------------------------------------------------------------------------- the CLI


def test_the_cli_adjusts_points_on_the_same_stack(stack: ApiStack, client: httpx.Client) -> None:
    shop = stack.shop_a
    customer, earned = funded_customer(stack, client, shop)
    base = ["points", "adjust", "--shop", shop.domain, "--customer", str(customer), "--wait", "60"]

    added = cli(stack, *base, "--points", "25", "--reason", "Phone order")
    too_much = cli(stack, *base, "--points", f"-{earned + 100}", "--reason", "Too much")

    assert added.returncode == 0, added.stderr
    printed = json.loads(added.stdout)
    assert (printed["status"], printed["points"], printed["memo"]) == (
        "completed",
        25,
        "Phone order",
    )
    assert printed["balance_after"] == earned + 25
    key = printed["idempotency_key"]
    assert uuid.UUID(key).version == 4  # a fresh key, printed for a later repeat
    assert printed["adjustment_id"] == str(ids.adjustment_id(shop.merchant_id, key))
    # The API sees the same adjustment the CLI made.
    seen = client.get(f"/v1/adjustments/{printed['adjustment_id']}", headers=shop.auth(SCOPE_VIEW))
    assert seen.json()["status"] == "completed"
    assert too_much.returncode == 1
    assert "insufficient_points" in too_much.stderr
    assert json.loads(too_much.stdout)["reason"] == "insufficient_points"

    repeated = cli(
        stack, *base, "--points", "25", "--reason", "Phone order", "--idempotency-key", key
    )
    reused = cli(
        stack, *base, "--points", "26", "--reason", "Phone order", "--idempotency-key", key
    )

    assert repeated.returncode == 0, repeated.stderr
    assert json.loads(repeated.stdout)["adjustment_id"] == printed["adjustment_id"]
    assert reused.returncode == 2
    assert "already used for a different adjustment" in reused.stderr
    adjusted(stack, client, shop, customer, 1, "Sentinel")
    assert [e["points"] for e in adjustment_entries(stack, client, shop, customer)] == [1, 25]
    wait_balance(stack, client, shop, customer, earned + 26)


def test_the_cli_issues_tokens_that_may_adjust(stack: ApiStack, client: httpx.Client) -> None:
    shop = stack.shop_b
    issued = cli(stack, "token", "--shop", shop.domain, "--scopes", f"{SCOPE_ADJUST},{SCOPE_VIEW}")
    assert issued.returncode == 0, issued.stderr
    printed = json.loads(issued.stdout)
    customer = 100_000 + stack.next_id()

    response = client.post(
        f"/v1/customers/{customer}/adjustments",
        json={"points": 3, "reason": "Token from the CLI"},
        headers={"Authorization": f"Bearer {printed['token']}", "Idempotency-Key": "cli-token"},
    )

    assert printed["scopes"] == sorted([SCOPE_ADJUST, SCOPE_VIEW])
    assert response.status_code == 202, response.text
    assert decided(stack, client, shop, response.json()["adjustment_id"])["status"] == "completed"


def test_the_cli_refuses_an_unknown_shop_and_bad_flags(stack: ApiStack) -> None:
    unknown = cli(
        stack,
        *("points", "adjust", "--shop", "nobody.myshopify.com", "--customer", "1"),
        *("--points", "5", "--reason", "x"),
    )
    bad_points = cli(
        stack,
        *("points", "adjust", "--shop", stack.shop_a.domain, "--customer", "1"),
        *("--points", "1.5", "--reason", "x"),
    )

    assert unknown.returncode == 2
    assert "unknown shop" in unknown.stderr
    assert bad_points.returncode == 2
    assert "argument --points" in bad_points.stderr


# ---------------------------------------------------------------------- program settings


def test_pending_days_and_lot_expiry_set_by_the_cli_travel_with_orders_to_the_balance(
    stack: ApiStack, client: httpx.Client
) -> None:
    shop = Shop(f"shop-p-{uuid.uuid4().hex[:8]}.myshopify.com", "secret-p-1", Decimal(1))
    added = cli(
        stack,
        *("merchants", "add", "--shop", shop.domain, "--webhook-secret", shop.secret),
        *("--points-per-unit", "1", "--pending-days", "7", "--expiry", "lot:30"),
    )
    assert added.returncode == 0, added.stderr
    printed = json.loads(added.stdout)
    assert (printed["merchant_id"], printed["shop"]) == (shop.merchant_id, shop.domain)
    assert (printed["pending_days"], printed["expiry"], printed["expiry_warning_days"]) == (
        7,
        "lot:30",
        14,
    )
    customer = 100_000 + stack.next_id()
    order = new_order(stack, customer)
    earned = points_for(order["subtotal_price"], Decimal(1))

    accepted(post_webhook(client, shop, "orders/create", order))

    # The merchant's terms travel in the record's headers...
    key = partition_key(shop.domain, "orders/create", order)
    [record] = [
        r for r in read_log(stack.settings, stack.points.topic(SHOPIFY_ORDERS)) if r.key == key
    ]
    headers = dict(record.headers)
    assert (headers[PENDING_DAYS_HEADER], headers[EXPIRY_HEADER]) == (b"7", b"lot:30")
    # ... and the earn is held pending: nothing spendable, nothing to expire yet.
    held = stack.wait_for(
        "the pending earn", lambda: _balance_if(client, shop, customer, pending=earned)
    )
    assert (held["balance"], held["lifetime_earned"], held["next_expiry"]) == (0, earned, None)
    # Spendable points given now are dated by the merchant's lot terms.
    outcome = adjusted(stack, client, shop, customer, 40, "Goodwill")
    created = datetime.fromisoformat(outcome["created_at"])
    expires = lot_expiry(created, Expiry(ExpiryMode.LOT, 30))
    assert expires is not None
    shown = stack.wait_for("the adjusted balance", lambda: _balance_if(client, shop, customer, 40))
    assert (shown["pending"], shown["lifetime_earned"]) == (earned, earned)
    assert shown["next_expiry"] == {
        "points": 40,
        "at": expires.isoformat().replace("+00:00", "Z"),
    }
    assert balance(client, shop, customer)["next_expiry"] == shown["next_expiry"]
    # gRPC answers the same.
    with grpc.insecure_channel(stack.api.grpc_target) as channel:
        stub = points_pb2_grpc.PointsServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = stub.GetPointsBalance(
            points_pb2.GetPointsBalanceRequest(customer_id=str(customer)),
            metadata=[("authorization", f"Bearer {shop.token(SCOPE_VIEW)}")],
            timeout=10,
        )
    assert (answer.balance, answer.pending, answer.lifetime_earned) == (40, earned, earned)
    assert answer.next_expiry.points == 40
    assert answer.next_expiry.at.ToJsonString() == shown["next_expiry"]["at"]


def _balance_if(
    client: httpx.Client, shop: Shop, customer: int, balance: int = 0, pending: int | None = None
) -> Any:
    """The balance answer once it shows `balance` (and `pending`, if given); else None."""
    response = client.get(f"/v1/customers/{customer}/balance", headers=shop.auth(SCOPE_VIEW))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body = response.json()
    if body["balance"] != balance or (pending is not None and body["pending"] != pending):
        return None
    return body
