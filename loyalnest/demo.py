"""What `make run` shows a newcomer: a demo merchant, a token, and orders sent as Shopify would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from connectors.merchants import upsert_merchant
from connectors.shopify import HMAC_HEADER, WEBHOOK_ID_HEADER, encode_body, sign
from loyalnest import tokens
from loyalnest.app_secrets import Secrets
from loyalnest.samples import sample_orders
from loyalnest.settings import Settings

DEMO_SHOP = "demo.myshopify.com"
DEMO_SECRET = "demo-webhook-secret"  # noqa: S105 - a published demo value, not a credential


def register_demo_merchant(settings: Settings, secrets: Secrets) -> str:
    """Create (or refresh) the demo merchant; return a token with both scopes."""
    with psycopg.connect(settings.postgres_url) as conn:
        merchant = upsert_merchant(
            conn,
            secrets.secrets_key,
            shop=DEMO_SHOP,
            secret=DEMO_SECRET,
            points_per_unit=Decimal(1),
            locale="en",
        )
    return tokens.issue(
        secrets.jwt_secret,
        merchant.merchant_id,
        merchant.shop,
        set(tokens.SCOPES),
        now=datetime.now(UTC),
        ttl=timedelta(days=settings.jwt_ttl_days),
    )


def send_sample_webhooks(settings: Settings, count: int) -> list[int]:
    """POST signed orders/create webhooks to the running API; return the customers used."""
    url = f"http://127.0.0.1:{settings.api_http_port}/webhooks/shopify"
    customers = []
    with httpx.Client(timeout=10) as client:
        # Fresh order ids each run: an order id seen before has already earned, once.
        start = int(datetime.now(UTC).timestamp()) * 100
        for hook in sample_orders(DEMO_SHOP, count, seed=start, first_order_id=start):
            body = encode_body(hook.body)
            response = client.post(
                url,
                content=body,
                headers={
                    **hook.headers,
                    WEBHOOK_ID_HEADER: str(uuid.uuid4()),
                    HMAC_HEADER: sign(body, DEMO_SECRET),
                    "Content-Type": "application/json",
                },
            )
            response.raise_for_status()
            customers.append(hook.body["customer"]["id"])
    return sorted(set(customers))


def segment_counts(settings: Settings, token: str, customers: int, timeout: float = 60) -> str:
    """The demo merchant's RFM segments once the flow has seen all its `customers`: a line to
    print (or why not yet)."""
    url = f"http://127.0.0.1:{settings.api_http_port}/v1/segments"
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        return segments_line(lambda: client.get(url).json(), customers, timeout)


def segments_line(
    fetch: Callable[[], dict[str, Any]],
    customers: int,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    deadline = clock() + timeout
    while True:
        body = fetch()
        if body["total"] >= customers:
            counts = ", ".join(f"{name} {n}" for name, n in body["segments"].items() if n)
            return f"RFM segments of {DEMO_SHOP} as of {body['as_of']}: {counts}"
        if clock() > deadline:
            return f"RFM segments not ready after {timeout:.0f}s (see .data/logs/rfm.log)"
        sleep(0.5)


def instructions(settings: Settings, token: str, customer: int) -> str:
    base = f"http://127.0.0.1:{settings.api_http_port}"
    return f"""
Demo merchant {DEMO_SHOP} (webhook secret "{DEMO_SECRET}"). Token (every scope):
  export TOKEN={token}

Try:
  curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/customers/{customer}/balance?locale=he
  curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/customers/{customer}/transactions
  curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/segments
  curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/customers/{customer}/rfm
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: demo-1" \\
       -H "Content-Type: application/json" {base}/v1/redemptions \\
       -d '{{"customer_id": {customer}, "points": 10, "reward_id": "5-off"}}'
  curl -s {base}/metrics | grep ^points_
"""
