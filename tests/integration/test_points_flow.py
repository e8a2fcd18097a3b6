"""The points flow end to end on the real stack: exact under duplicates, replays and SIGKILL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo.database import Database

from bench.scenario import ScenarioConfig, build_scenario
from connectors.dead_letters import DLQ_REASON
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS, POINTS_DLQ, SHOPIFY_ORDERS
from loyalty.customers import Redemption, RedemptionStatus
from tests.integration.points_harness import (
    Expected,
    fold,
    produce_raw,
    produce_redemptions,
    produce_webhooks,
    read_log,
    redemption,
)

FLOW_TIMEOUT = 240.0


def wait_for(condition: Callable[[], bool], flow: FlowProcess, what: str) -> None:
    """Until `condition` holds on the stores; fail early if the flow died."""
    wait_until(condition, FLOW_TIMEOUT, what, flow, 0.25)


def settled(db: Database[Any], expected_changes: int, redemptions: int) -> Callable[[], bool]:
    """Every redemption decided, and every change plus every completed spend in the ledger."""

    def check() -> bool:
        decided = db.reward_redemptions.count_documents({"status": {"$ne": "pending"}})
        completed = db.reward_redemptions.count_documents({"status": "completed"})
        ledger = db.points_transactions.estimated_document_count()
        return (
            decided == redemptions
            and ledger == expected_changes + completed
            and balances_caught_up(db, ledger)
        )

    return check


def balances_caught_up(db: Database[Any], ledger: int) -> bool:
    """Each ledger entry raises one customer's seq by one: the seqs sum to the ledger size
    exactly when every balance write of every written entry has landed too."""
    total = list(db.point_balances.aggregate([{"$group": {"_id": None, "s": {"$sum": "$seq"}}}]))
    return bool(total) and total[0]["s"] == ledger


def ledger_size(db: Database[Any]) -> int:
    return db.points_transactions.estimated_document_count()


def assert_matches_fold(db: Database[Any], expected: Expected) -> None:
    # Stage 1: every business key of the order log became exactly one change command.
    assert expected.commanded_changes == set(expected.changes)
    # Stage 2: the ledger is exactly the fold of points.commands, entry by entry.
    ledger = {d["event_id"]: d for d in db.points_transactions.find()}
    assert set(ledger) == set(expected.entries)
    for event_id, entry in expected.entries.items():
        doc = ledger[event_id]
        assert (doc["points"], doc["type"], doc["balance_after"], doc["seq"]) == (
            entry.points,
            entry.kind.value,
            entry.balance,
            entry.seq,
        ), event_id
    balances = {d["_id"]: (d["balance"], d["seq"]) for d in db.point_balances.find()}
    assert balances == expected.balances
    outcomes = {d["_id"]: (d["status"], d["reason"]) for d in db.reward_redemptions.find()}
    assert outcomes == {k: (o.status.value, o.reason) for k, o in expected.outcomes.items()}
    # A redemption never takes a balance below zero.
    spends = list(db.points_transactions.find({"type": "spend"}))
    assert spends, "the scenario should complete some redemptions"
    assert min(d["balance_after"] for d in spends) >= 0


def test_5000_orders_with_duplicates_refunds_and_racing_redemptions_are_exact(
    settings: Settings, points_env: Deployment, db: Database[Any], tmp_path: Path
) -> None:
    cfg = ScenarioConfig(orders=5_000, customers=200, redemptions=400)
    scenario = build_scenario(cfg)
    orders_topic = points_env.topic(SHOPIFY_ORDERS)
    half = len(scenario.webhooks) // 2
    produce_webhooks(settings, orders_topic, scenario.webhooks[:half])
    # A malformed message mid-stream: dead-lettered, and later messages still apply.
    produce_raw(
        settings,
        orders_topic,
        b"bad",
        b"{not json",
        [("X-Shopify-Topic", b"orders/create"), ("X-Shopify-Shop-Domain", cfg.shop.encode())],
    )
    reds = [redemption(cfg.shop, c, p, k) for c, p, k in scenario.redemptions]
    produce_redemptions(settings, points_env.topic(POINTS_COMMANDS), reds[:200])
    flow = FlowProcess(points_env, tmp_path / "flow.log")
    try:
        produce_webhooks(settings, orders_topic, scenario.webhooks[half:])
        expected_changes = len(fold(settings, points_env).changes)
        # The second half of the redemptions races the earns still flowing in.
        wait_for(
            lambda: db.points_transactions.estimated_document_count() >= expected_changes // 2,
            flow,
            "half of the ledger",
        )
        # On jemalloc, as the supervisor runs flows (loyalnest/allocator.py); read once the
        # flow is writing, so its libraries are surely loaded.
        assert "/libjemalloc.so.2" in Path(f"/proc/{flow.pid}/maps").read_text()
        produce_redemptions(settings, points_env.topic(POINTS_COMMANDS), reds[200:])
        wait_for(settled(db, expected_changes, len(reds)), flow, "the ledger to settle")
    finally:
        flow.stop()

    expected = fold(settings, points_env)
    assert len(expected.changes) == expected_changes
    assert_matches_fold(db, expected)
    statuses = {o.status for o in expected.outcomes.values()}
    assert statuses == {RedemptionStatus.COMPLETED, RedemptionStatus.FAILED}
    dead = list(read_log(settings, points_env.topic(POINTS_DLQ)))
    assert [m.value for m in dead] == [b"{not json"]
    assert dict(dead[0].headers)[DLQ_REASON].startswith(b"not JSON")


def orders_produced(
    settings: Settings, env: Deployment, cfg: ScenarioConfig
) -> tuple[list[Redemption], int]:
    """Produce the scenario's webhooks; return its redemptions (not produced yet) and how many
    points changes the orders make."""
    scenario = build_scenario(cfg)
    produce_webhooks(settings, env.topic(SHOPIFY_ORDERS), scenario.webhooks)
    reds = [redemption(cfg.shop, c, p, k) for c, p, k in scenario.redemptions]
    return reds, len(fold(settings, env).changes)


def test_sigkill_mid_stream_then_restart_converges_exactly(
    settings: Settings, points_env: Deployment, db: Database[Any], tmp_path: Path
) -> None:
    cfg = ScenarioConfig(orders=2_000, customers=100, redemptions=150, seed=7)
    reds, expected_changes = orders_produced(settings, points_env, cfg)

    flow = FlowProcess(points_env, tmp_path / "flow.log")
    try:
        wait_for(lambda: ledger_size(db) >= expected_changes // 4, flow, "a quarter")
        produce_redemptions(settings, points_env.topic(POINTS_COMMANDS), reds)  # racing earns
        wait_for(lambda: ledger_size(db) >= expected_changes // 2, flow, "half the ledger")
        flow.kill()  # SIGKILL: no snapshot, no flush, no goodbye
    finally:
        flow.stop()
    assert db.points_transactions.estimated_document_count() < expected_changes + len(reds)

    restarted = FlowProcess(points_env, tmp_path / "flow.log")
    try:
        wait_for(settled(db, expected_changes, len(reds)), restarted, "the ledger to settle")
    finally:
        restarted.stop()
    assert_matches_fold(db, fold(settings, points_env))


def test_replaying_everything_from_offset_zero_changes_nothing(
    settings: Settings, points_env: Deployment, db: Database[Any], tmp_path: Path
) -> None:
    cfg = ScenarioConfig(orders=800, customers=60, redemptions=80, seed=3)
    reds, expected_changes = orders_produced(settings, points_env, cfg)
    flow = FlowProcess(points_env, tmp_path / "first.log")
    try:
        wait_for(lambda: ledger_size(db) >= expected_changes // 2, flow, "half the ledger")
        produce_redemptions(settings, points_env.topic(POINTS_COMMANDS), reds)
        wait_for(settled(db, expected_changes, len(reds)), flow, "the first run")
    finally:
        flow.stop()
    before = snapshot(db)

    # A new recovery store: the flow starts from offset 0 of both topics with empty state.
    points_env.recovery = tmp_path / "replay-recovery"
    replay = FlowProcess(points_env, tmp_path / "replay.log")
    try:
        # Sentinels at the end of every commands partition: once all four are decided, every
        # command before them has been applied again.
        sentinels = [redemption(cfg.shop, 990_000 + p, 1, f"sentinel-{p}") for p in range(4)]
        for p, sentinel in enumerate(sentinels):
            produce_redemptions(settings, points_env.topic(POINTS_COMMANDS), [sentinel], p)
        ids = [s.redemption_id for s in sentinels]
        wait_for(
            lambda: (
                db.reward_redemptions.count_documents({"_id": {"$in": ids}}) == 4
                and balances_caught_up(db, ledger_size(db))
            ),
            replay,
            "the replay to reach the sentinels",
        )
    finally:
        replay.stop()
    after = snapshot(db, exclude=set(ids))
    assert after == before


def snapshot(db: Database[Any], exclude: set[str] | None = None) -> dict[str, list[Any]]:
    skip = exclude or set()
    return {
        name: sorted((d for d in db[name].find() if d["_id"] not in skip), key=lambda d: d["_id"])
        for name in ("points_transactions", "point_balances", "reward_redemptions")
    }
