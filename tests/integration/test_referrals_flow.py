"""The referrals flow on the real stack: order webhooks (as the API produces them, redacted,
with the merchant's referral terms) and a code from the API in; the flow's own two logs carry
claims and verdicts between its keyed states; referral rewards on points.commands and each
referral's status in PostgreSQL out. Run twice from offset 0 (the second with a fresh recovery
store), the outcome is the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.avro import AvroDecoder
from connectors.shopify import kafka_headers, partition_key
from loyalnest.harness.deployment import Deployment, fresh_postgres
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import (
    POINTS_COMMANDS,
    REFERRAL_COMMANDS,
    REFERRAL_COMPLETED,
    REFERRAL_REVOKED,
    SHOPIFY_ORDERS,
)
from loyalty import ids
from loyalty.commands import decode_command
from loyalty.ledger import Kind, PointsChange
from loyalty.pii import Hasher, redact_order
from loyalty.referral_commands import encode_code_created, referral_key
from loyalty.referral_fraud import Identity
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import CodeCreated
from tests.integration.points_harness import read_log

pytestmark = pytest.mark.integration

SHOP = "referrals-flow.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
CODE = "ABCD2345"
ADVOCATE = 5
AT = datetime(2026, 5, 1, 12, tzinfo=UTC)
TERMS = ReferralTerms(500, 50, Decimal("20.00"), 0)
HASHER = Hasher(b"flow-test-key-" + b"k" * 18)


@pytest.fixture
def core_url(settings: Settings) -> Iterator[str]:
    with fresh_postgres(settings, "refs") as url:
        yield url


def order(
    order_id: int,
    customer: int,
    code: str | None,
    day: int,
    subtotal: str = "40.00",
    email: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": order_id,
        "financial_status": "paid",
        "subtotal_price": subtotal,
        "test": False,
        "taxes_included": False,
        "processed_at": (AT + timedelta(days=day)).isoformat(),
        "customer": {"id": customer, "email": email or f"c{customer}@example.com"},
    }
    if code is not None:
        body["discount_codes"] = [{"code": code}]
    return redact_order(body, HASHER)


ORDERS = [
    order(101, 9, CODE, 0),  # friend 9: completed
    order(102, 10, None, 0),  # friend 10: a first order without the code...
    order(103, 10, CODE, 2),  # ...so this one is not_first_order
    order(104, 11, "ZZZZ2345", 0),  # no such code
    order(105, 12, CODE, 0, subtotal="5.00"),  # below the minimum
    order(106, ADVOCATE, CODE, 0),  # the advocate's own code: self_referral
]
EXPECTED = {
    9: ("completed", None),
    10: ("blocked", "not_first_order"),
    11: ("blocked", "unknown_code"),
    12: ("blocked", "below_minimum"),
    ADVOCATE: ("blocked", "self_referral"),
}


def produce(settings: Settings, env: Deployment) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    created = CodeCreated(MERCHANT, CODE, Identity(ADVOCATE), AT - timedelta(days=1))
    producer.produce(
        env.topic(REFERRAL_COMMANDS),
        key=referral_key(MERCHANT, CODE),
        value=encode_code_created(created),
    )
    assert producer.flush(30) == 0  # the code is known before any order names it
    delivery = {"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Topic": "orders/paid"}
    for body in ORDERS:
        producer.produce(
            env.topic(SHOPIFY_ORDERS),
            key=partition_key(SHOP, "orders/paid", body),
            value=json.dumps(body).encode(),
            headers=kafka_headers(delivery, "corr", None, TERMS),
        )
    producer.produce(env.topic(SHOPIFY_ORDERS), key=b"x", value=b"not json", headers=[])
    assert producer.flush(30) == 0


def statuses(url: str) -> dict[int, tuple[str, str | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT friend_id, status, reason FROM referrals").fetchall()
    return {friend: (status, reason) for friend, status, reason in rows}


def events(settings: Settings, env: Deployment, contract: str) -> list[dict[str, Any]]:
    topic = env.topic(contract)
    with SchemaRegistryClient({"url": settings.schema_registry_url}) as registry:
        decode = AvroDecoder.registered(registry, contract, topic)
    return [decode(m.value) for m in read_log(settings, topic)]


def rewards(settings: Settings, env: Deployment) -> list[PointsChange]:
    changes = [decode_command(m.value) for m in read_log(settings, env.topic(POINTS_COMMANDS))]
    return [c for c in changes if isinstance(c, PointsChange)]


def cached(settings: Settings, env: Deployment, url: str) -> dict[int, tuple[str, str | None]]:
    """Each stored referral's status and reason as its Redis cache entry shows them."""
    with psycopg.connect(url) as conn:
        referral_ids = [str(r) for (r,) in conn.execute("SELECT id FROM referrals").fetchall()]
    found: dict[int, tuple[str, str | None]] = {}
    with redis.Redis.from_url(settings.redis_url) as client:
        for referral_id in referral_ids:
            document = client.hget(cache_key(env, referral_id), "document")
            if isinstance(document, bytes):
                doc = json.loads(document)
                found[doc["friend"]["customer_id"]] = (doc["status"], doc["reason"])
    return found


def cache_key(env: Deployment, referral_id: str) -> str:
    return f"{env.redis_prefix}referral:{MERCHANT}:{referral_id}"


# Each run from offset 0: two rewards on points.commands (the advocate's and friend 9's) and
# one referral.completed event; a replay sends copies of both.
REWARDS_PER_RUN = 2
COMPLETED_PER_RUN = 1


def run_flow(settings: Settings, env: Deployment, core_url: str, tmp_path: Path, run: int) -> None:
    """The flow from offset 0 until every output of this run is out. Its sinks write
    independently (the cache after the rows it refreshes, in the same batch), so the rows can
    be complete while the rewards, the event or the cache entries are yet to come: wait for
    them all, not the rows alone."""
    flow = FlowProcess(
        env,
        tmp_path / f"referrals-{run}.log",
        flow="referrals",
        recovery=tmp_path / f"recovery-{run}",
        POSTGRES_URL=core_url,
    )

    def settled() -> bool:
        return (
            statuses(core_url) == EXPECTED
            and cached(settings, env, core_url) == EXPECTED
            and len(rewards(settings, env)) >= REWARDS_PER_RUN * run
            and len(list(read_log(settings, env.topic(REFERRAL_COMPLETED))))
            >= COMPLETED_PER_RUN * run
        )

    try:
        wait_until(settled, 120, "every referral decided, rewarded, announced, cached", flow, 0.25)
    finally:
        flow.stop()


def test_referrals_are_decided_once_and_a_replay_decides_the_same(
    settings: Settings, rfm_env: Deployment, core_url: str, tmp_path: Path
) -> None:
    produce(settings, rfm_env)

    run_flow(settings, rfm_env, core_url, tmp_path, 1)
    first = rewards(settings, rfm_env)
    assert sorted((c.customer, c.points, c.kind) for c in first) == [
        (ADVOCATE, 500, Kind.BONUS),
        (9, 50, Kind.BONUS),
    ]
    (completed,) = events(settings, rfm_env, REFERRAL_COMPLETED)
    assert (completed["friend_customer_id"], completed["advocate_customer_id"]) == (9, ADVOCATE)
    assert events(settings, rfm_env, REFERRAL_REVOKED) == []
    # The flow cached each referral it stored, as the API shows it.
    with redis.Redis.from_url(settings.redis_url) as client:
        document = client.hget(cache_key(rfm_env, completed["referral_id"]), "document")
    assert isinstance(document, bytes)
    assert json.loads(document)["status"] == "completed"

    # Both stores emptied, so that the replay's wait sees its own rows and cache entries.
    with psycopg.connect(core_url) as conn:
        stored = [str(r) for (r,) in conn.execute("SELECT id FROM referrals").fetchall()]
        conn.execute("DELETE FROM referrals")
    with redis.Redis.from_url(settings.redis_url) as client:
        client.delete(*(cache_key(rfm_env, r) for r in stored))
    run_flow(settings, rfm_env, core_url, tmp_path, 2)  # from offset 0, a fresh recovery store
    again = rewards(settings, rfm_env)
    # The replay posts the same commands again (same ids: the points flow applies them once).
    assert {c.event_id for c in again} == {c.event_id for c in first}
