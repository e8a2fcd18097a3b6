"""The points flow as a Bytewax cluster under the supervisor, on the real stack: a process
SIGKILLed mid-stream restarts the whole cluster, and rescaling 1 → 2 → 1 mid-stream (what
`loyalnest flows scale` does) stays exact."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo.database import Database

from bench.scenario import ScenarioConfig, build_scenario
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import flow_cluster_job, wait_until
from loyalnest.settings import Settings
from loyalnest.supervisor import Backoff, Job, Supervisor
from loyalnest.topics import POINTS_COMMANDS, SHOPIFY_ORDERS
from tests.integration.points_harness import (
    fold,
    produce_redemptions,
    produce_webhooks,
    redemption,
)
from tests.integration.test_points_flow import (
    assert_matches_fold,
    ledger_size,
    orders_produced,
    settled,
)

TIMEOUT = 240.0
QUICK = Backoff(initial=0.5, maximum=2.0)


class Supervised:
    """A supervisor over one job, in a thread; `jobs` is what a reload reads."""

    def __init__(self, job: Job, log_dir: Path) -> None:
        self.job = job
        self.supervisor = Supervisor([job], log_dir, backoff=QUICK, reload=lambda: [self.job])
        self._thread = threading.Thread(target=self.supervisor.run, name="supervisor")
        self._thread.start()

    def pids(self) -> list[int]:
        return self.supervisor.pids(self.job.name)

    def rescale(self, job: Job) -> None:
        self.job = job
        self.supervisor.request_reload()

    def stop(self) -> None:
        self.supervisor.stop()
        self._thread.join(60)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, TIMEOUT, what, None, 0.25)


def test_a_process_sigkilled_mid_stream_restarts_the_cluster_and_balances_stay_exact(
    settings: Settings, points_env: Deployment, db: Database[Any], tmp_path: Path
) -> None:
    cfg = ScenarioConfig(orders=2_000, customers=100, redemptions=150, seed=11)
    reds, expected_changes = orders_produced(settings, points_env, cfg)
    run = Supervised(flow_cluster_job(points_env, 2), tmp_path / "logs")
    try:
        wait_for(lambda: len(run.pids()) == 2, "the cluster to start")
        first = run.pids()
        wait_for(lambda: ledger_size(db) >= expected_changes // 4, "a quarter of the ledger")
        produce_redemptions(settings, points_env.topic(POINTS_COMMANDS), reds)  # racing earns
        os.kill(first[1], signal.SIGKILL)  # one process of two: no snapshot, no goodbye
        # While the cluster waits out its backoff it has no processes (no pids) at all.
        wait_for(
            lambda: len(run.pids()) == 2 and not set(run.pids()) & set(first),
            "the whole cluster to restart",
        )
        wait_for(settled(db, expected_changes, len(reds)), "the ledger to settle")
    finally:
        run.stop()
    assert run.supervisor.delays  # it restarted: the backoff recorded a wait
    assert_matches_fold(db, fold(settings, points_env))


def test_rescaling_1_to_2_to_1_mid_stream_stays_exact(
    settings: Settings, points_env: Deployment, db: Database[Any], tmp_path: Path
) -> None:
    """Each third of the orders is produced once the cluster of its size runs, so each size
    surely handles some; each rescale comes while the flow is still working through them."""
    cfg = ScenarioConfig(orders=3_000, customers=150, redemptions=200, seed=12)
    scenario = build_scenario(cfg)
    thirds = [scenario.webhooks[k::3] for k in range(3)]
    reds = [redemption(cfg.shop, c, p, k) for c, p, k in scenario.redemptions]

    def produce(webhooks: list[Any]) -> int:
        """Produce, and return how many points changes all the orders so far make."""
        produce_webhooks(settings, points_env.topic(SHOPIFY_ORDERS), webhooks)
        return len(fold(settings, points_env).changes)

    first = produce(thirds[0])
    run = Supervised(flow_cluster_job(points_env, 1), tmp_path / "logs")
    try:
        wait_for(lambda: ledger_size(db) >= first // 4, "a quarter of the first third")
        run.rescale(flow_cluster_job(points_env, 2))
        wait_for(lambda: len(run.pids()) == 2, "two processes")
        second = produce(thirds[1])
        produce_redemptions(settings, points_env.topic(POINTS_COMMANDS), reds)
        wait_for(lambda: ledger_size(db) >= first + (second - first) // 4, "progress at two")
        run.rescale(flow_cluster_job(points_env, 1))
        wait_for(lambda: len(run.pids()) == 1, "one process again")
        expected_changes = produce(thirds[2])
        wait_for(settled(db, expected_changes, len(reds)), "the ledger to settle")
    finally:
        run.stop()
    assert not run.supervisor.delays  # planned stops, never a crash
    assert_matches_fold(db, fold(settings, points_env))
