"""VIP tiers through the API on the real stack, the points and tiers flows running: a merchant
sets tiers over REST, signed webhooks earn points, the customer climbs, the next order earns
under the multiplier, and the customer's tier, the counts, the preview and gRPC
`campaign.v1.TiersService/GetCustomerTier` all say so."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from connectors.shopify import encode_body
from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import ApiProcess, FlowProcess, wait_until
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.samples import order_body
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_ANALYTICS, SCOPE_TIERS_MANAGE, SCOPE_VIEW
from loyalnest.topics import POINTS_COMMANDS
from loyalnest_grpc.campaign.v1 import tiers_pb2, tiers_pb2_grpc
from loyalty.commands import customer_key, decode_command
from loyalty.customers import TierChange
from tests.integration.points_harness import read_log

pytestmark = pytest.mark.integration

SHOP = Shop("tiers-api.myshopify.com", "tiers-api-secret", Decimal(1))
CUSTOMER = 5
TIERS: dict[str, Any] = {
    "metric": "points_earned",
    "period": "lifetime",
    "tiers": [
        {"name": "Silver", "threshold": 300, "multiplier": "1.25", "entry_bonus": 20},
        {"name": "Gold", "threshold": 1000, "multiplier": "2", "entry_bonus": 100},
    ],
}
TIMEOUT = 90.0


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    with isolated_deployment(settings, "tiersapi", tmp_path) as deployment:
        yield deployment


@pytest.fixture
def api(settings: Settings, env: Deployment, tmp_path: Path) -> Iterator[ApiProcess]:
    with fresh_postgres(settings, "tiersapi") as postgres_url:
        add_merchants(postgres_url, SHOP)
        flows = [
            FlowProcess(env, tmp_path / "points.log", recovery=tmp_path / "points"),
            FlowProcess(
                env,
                tmp_path / "tiers.log",
                flow="tiers",
                recovery=tmp_path / "tiers",
                POSTGRES_URL=postgres_url,
            ),
        ]
        api = ApiProcess(env, postgres_url, tmp_path / "api.log")
        try:
            api.wait_healthy()
            yield api
        finally:
            api.stop()
            for flow in flows:
                flow.stop()


def order(order_id: int, subtotal: str) -> bytes:
    body = order_body(random.Random(order_id), order_id, CUSTOMER, datetime.now(UTC))
    return encode_body({**body, "subtotal_price": subtotal, "total_tax": "0.00"})


def post_order(client: httpx.Client, order_id: int, subtotal: str) -> None:
    raw = order(order_id, subtotal)
    headers = SHOP.webhook_headers("orders/create", raw)
    reply = client.post("/webhooks/shopify", content=raw, headers=headers)
    assert reply.status_code == 200, reply.text


def reply_when(client: httpx.Client, path: str, scope: str, ready: Any) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def check() -> bool:
        reply = client.get(path, headers=SHOP.auth(scope))
        found[:] = [reply.json()] if reply.status_code == 200 else []
        return bool(found) and bool(ready(found[0]))

    wait_until(check, TIMEOUT, f"{path} as expected")
    return found[0]


def tier_changes(settings: Settings, env: Deployment) -> list[TierChange]:
    """The customer's tier assignments on points.commands, in log order."""
    key = customer_key(SHOP.merchant_id, CUSTOMER)
    log = read_log(settings, env.topic(POINTS_COMMANDS))
    commands = [decode_command(m.value) for m in log if m.key == key]
    return [c for c in commands if isinstance(c, TierChange)]


def test_tiers_set_over_rest_move_a_customer_and_multiply_their_next_order(
    settings: Settings, env: Deployment, api: ApiProcess
) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        bad = {**TIERS, "tiers": list(reversed(TIERS["tiers"]))}
        refused = client.put("/v1/tiers", json=bad, headers=SHOP.auth(SCOPE_TIERS_MANAGE))
        assert refused.status_code == 400
        assert "ascend" in refused.text
        assert client.put("/v1/tiers", json=TIERS, headers=SHOP.auth(SCOPE_VIEW)).status_code == 403
        saved = client.put("/v1/tiers", json=TIERS, headers=SHOP.auth(SCOPE_TIERS_MANAGE))
        assert saved.status_code == 201, saved.text
        assert saved.json()["version"] == 1
        # In force ten seconds after it was saved: until then it is pending.
        reply_when(client, "/v1/tiers", SCOPE_VIEW, lambda r: r["current"] is not None)

        post_order(client, 9_100_001, "350.00")
        silver = reply_when(
            client, f"/v1/customers/{CUSTOMER}/tier", SCOPE_VIEW, lambda r: r["tier"] == "Silver"
        )
        assert (silver["progress"], silver["next_tier"], silver["delta_to_next"]) == (
            350,
            "Gold",
            650,
        )
        # The tier shown comes from PostgreSQL (the tiers flow's rows); the multiplier from the
        # TierChange the same flow puts on points.commands, through another sink. The second
        # order earns at 1.25 only if it lands in the customer's log after that command.
        wait_until(
            lambda: any(c.tier == "Silver" for c in tier_changes(settings, env)),
            TIMEOUT,
            "the Silver TierChange on points.commands",
        )
        post_order(client, 9_100_002, "300.00")
        balance = reply_when(
            client,
            f"/v1/customers/{CUSTOMER}/balance",
            SCOPE_VIEW,
            lambda r: r["balance"] == 350 + 20 + 375,  # the second order at 1.25
        )
        assert balance["balance"] == 745
        status = reply_when(
            client, f"/v1/customers/{CUSTOMER}/tier", SCOPE_VIEW, lambda r: r["progress"] == 650
        )
        assert (status["tier"], status["multiplier"], status["delta_to_next"]) == (
            "Silver",
            "1.25",
            350,
        )  # base points count, never the multiplied ones or the bonus
        counts = reply_when(
            client, "/v1/tiers/counts", SCOPE_ANALYTICS, lambda r: r["customers"] == 1
        )
        assert counts["tiers"] == {"Silver": 1, "Gold": 0}
        lower = {**TIERS, "tiers": [{**TIERS["tiers"][0]}, {**TIERS["tiers"][1], "threshold": 600}]}
        preview = client.post(
            "/v1/tiers/preview", json=lower, headers=SHOP.auth(SCOPE_TIERS_MANAGE)
        )
        assert preview.status_code == 200, preview.text
        assert (preview.json()["moved_up"], preview.json()["entry_bonus_points"]) == (1, 100)
        # The preview changed nothing.
        assert client.get("/v1/tiers", headers=SHOP.auth(SCOPE_VIEW)).json()["pending"] is None

    with grpc.insecure_channel(api.grpc_target) as channel:
        stub = tiers_pb2_grpc.TiersServiceStub(channel)  # type: ignore[no-untyped-call]
        auth = (("authorization", f"Bearer {SHOP.token(SCOPE_VIEW)}"),)
        answer = stub.GetCustomerTier(
            tiers_pb2.GetCustomerTierRequest(customer_id=CUSTOMER), metadata=auth, timeout=10
        )
        assert (answer.tier, answer.multiplier, answer.progress, answer.next_tier) == (
            "Silver",
            "1.25",
            "650",
            "Gold",
        )
