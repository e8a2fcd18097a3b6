"""Points across time on the real stack: pending release, refunds during pending, lot and
inactivity expiry driven by ticks (one late tick catching up on everything), adjustments, and
the same ledger after a SIGKILL mid-stream and after a replay from offset 0.

The judge is the fold of the logs the flow consumed (tests/integration/points_harness.py): the
pure state machines applied to every record in log order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from pymongo.database import Database

from bench.scenario import ScenarioConfig, build_scenario
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS, POINTS_DLQ, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.commands import customer_key, encode_adjustment, encode_tick
from loyalty.customers import Adjustment, Tick
from loyalty.policy import Expiry, Policy
from tests.integration.points_harness import (
    Expected,
    fold,
    produce_webhooks,
    read_log,
)

TIMEOUT = 240.0
LOT = Policy(pending_days=2, expiry=Expiry.parse("lot:30"), warning_days=3)
INACTIVE = Policy(points_per_unit=Decimal("0.5"), expiry=Expiry.parse("inactivity:20"))


def produce_orders(settings: Settings, env: Deployment) -> list[tuple[str, int]]:
    """Two shops' scenarios, one under each kind of expiry; the customers who earned."""
    customers: list[tuple[str, int]] = []
    for shop, policy, seed in (
        ("lots.myshopify.com", LOT, 11),
        ("idle.myshopify.com", INACTIVE, 12),
    ):
        cfg = ScenarioConfig(shop=shop, orders=300, customers=40, redemptions=0, seed=seed)
        scenario = build_scenario(cfg)
        produce_webhooks(settings, env.topic(SHOPIFY_ORDERS), scenario.webhooks, policy)
        customers += sorted({(shop, c) for c in _customers(scenario.webhooks)})
    return customers


def _customers(webhooks: list[Any]) -> set[int]:
    found = set()
    for hook in webhooks:
        customer = hook.body.get("customer") if isinstance(hook.body, dict) else None
        if isinstance(customer, dict) and isinstance(customer.get("id"), int):
            found.add(customer["id"])
    return found


def produce_time(
    settings: Settings, env: Deployment, customers: list[tuple[str, int]], start: datetime
) -> None:
    """Adjustments now, then ticks: after the release, then one 40 days on (catch-up)."""
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True}
    )
    topic = env.topic(POINTS_COMMANDS)
    for n, (shop, customer) in enumerate(customers):
        merchant = str(ids.merchant_id(shop))
        key = customer_key(merchant, customer)
        if n % 3 == 0:
            adjustment = Adjustment(
                adjustment_id=str(ids.event_id("adjust", shop, customer)),
                merchant_id=merchant,
                customer=customer,
                points=-5_000 if n % 2 else 50,  # some deductions fail: not enough points
                reason="support ticket",
                idempotency_key=f"k-{n}",
                locale="en",
                at=start,
            )
            producer.produce(topic, key=key, value=encode_adjustment(adjustment))
        for days in (3, 16, 40):
            tick = Tick(merchant, customer, start + timedelta(days=days))
            producer.produce(topic, key=key, value=encode_tick(tick))
    assert producer.flush(60) == 0


def converged(settings: Settings, env: Deployment, db: Database[Any]) -> Callable[[], bool]:
    def check() -> bool:
        return mismatch(db, fold(settings, env)) is None

    return check


def mismatch(db: Database[Any], expected: Expected) -> str | None:
    ledger = {
        d["_id"]: (d["type"], d["points"], d["balance_after"], d["seq"], d.get("pending_after"))
        for d in db.points_transactions.find()
    }
    want = {
        e.event_id: (e.kind.value, e.points, e.balance, e.seq, e.pending)
        for e in expected.entries.values()
    }
    if ledger != want:
        return f"ledger: {len(ledger)} entries, expected {len(want)}"
    balances = {
        d["_id"]: (d["balance"], d["pending"], d["lifetime_earned"], d["due_at"])
        for d in db.point_balances.find()
    }
    want_balances = {
        k: (s.balance, s.pending, s.lifetime_earned, s.due_at)
        for k, s in expected.snapshots.items()
    }
    if balances != want_balances:
        return "balances differ"
    decided = {d["_id"]: (d["status"], d["reason"]) for d in db.points_adjustments.find()}
    if decided != {k: (o.status.value, o.reason) for k, o in expected.outcomes.items()}:
        return "adjustment outcomes differ"
    return None


def wait_for(condition: Callable[[], bool], flow: FlowProcess, what: str) -> None:
    """Until `condition` holds on the stores; fail early if the flow died."""
    wait_until(condition, TIMEOUT, what, flow, 0.5)


def test_pending_and_expiry_by_ticks_survive_sigkill_and_replay(
    settings: Settings, points_env: Deployment, db: Database[Any], tmp_path: Path
) -> None:
    customers = produce_orders(settings, points_env)
    start = datetime.now(UTC)
    flow = FlowProcess(points_env, tmp_path / "flow.log")
    try:
        wait_for(lambda: db.points_transactions.estimated_document_count() > 100, flow, "earns")
        produce_time(settings, points_env, customers, start)
        wait_for(
            lambda: db.points_transactions.count_documents({"type": "release"}) > 5,
            flow,
            "some releases",
        )
        flow.kill()  # SIGKILL mid-stream
    finally:
        flow.stop()
    restarted = FlowProcess(points_env, tmp_path / "restarted.log")
    try:
        wait_for(converged(settings, points_env, db), restarted, "the fold after the restart")
    finally:
        restarted.stop()

    expected = fold(settings, points_env)
    kinds = {e.kind.value for e in expected.entries.values()}
    assert {"earn", "reverse", "release", "expire", "adjust"} <= kinds, kinds
    sources = {
        e.source_id.split(":")[0] for e in expected.entries.values() if e.kind.value == "expire"
    }
    assert sources == {"lot", "inactivity"}, sources
    # Pending points never went below zero, nor did spendable through an expiry or adjustment.
    assert all((e.pending or 0) >= 0 for e in expected.entries.values())
    assert all(e.balance >= 0 for e in expected.entries.values() if e.kind.value != "reverse")
    # The 40-day tick caught up: lot expiries carry their own dates, not the tick's.
    expired = [e for e in expected.entries.values() if e.source_id.startswith("lot:")]
    assert all(e.at < start + timedelta(days=40) for e in expired)
    assert expected.warnings, "points.expiring warnings went out before expiry"
    assert failed_adjustments(db) > 0
    before = {c: sorted(db[c].find(), key=lambda d: d["_id"]) for c in COLLECTIONS}

    # Replay from offset 0 with empty state: the same ledger, balances and outcomes.
    points_env.recovery = tmp_path / "replay-recovery"
    replay = FlowProcess(points_env, tmp_path / "replay.log")
    try:
        wait_for(converged(settings, points_env, db), replay, "the replay")
        # The replay has read everything once the order stage's re-emitted commands are in.
        wait_for(lambda: _replayed(settings, points_env), replay, "the re-emitted commands")
    finally:
        replay.stop()
    after = {c: sorted(db[c].find(), key=lambda d: d["_id"]) for c in COLLECTIONS}
    assert after == before
    assert list(read_log(settings, points_env.topic(POINTS_DLQ))) == []


COLLECTIONS = ("points_transactions", "point_balances", "points_adjustments")


def failed_adjustments(db: Database[Any]) -> int:
    return db.points_adjustments.count_documents({"reason": "insufficient_points"})


def _replayed(settings: Settings, env: Deployment) -> bool:
    """Each earn change is in points.commands twice: written by the first run and the replay."""
    counts: dict[bytes, int] = {}
    for message in read_log(settings, env.topic(POINTS_COMMANDS)):
        if message.value and b'"points.change"' in message.value:
            counts[message.value] = counts.get(message.value, 0) + 1
    return bool(counts) and all(n == 2 for n in counts.values())
