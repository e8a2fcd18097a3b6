"""Daily ageing of one merchant's customers, and the RFM flow's snapshot bytes per epoch.

The scenario, at two sizes (N customers, the target's 100,000, and a tenth of them): N
customers with about two orders each over the past year (`bench.rfm_shopping`, as of
LAST_DAY) are produced, the RFM flow takes them in, and the rescoring rounds
(`loyalnest.rfm_round.RescoringJob`, run as `rfm-rounds` runs it) score everyone as of LAST_DAY
until they converge; the stored scores and the picture are then checked against a batch
recomputation. Then the day moves forward by one: rounds at the next day until a round finds
nothing more to do and all it sent is applied (`bench.rfm_stack.converge`). That is timed,
from the first round (the one that sends the day tick) to the end of the round that found
nothing; its parts: the rounds' own time (the store's staleness query, producing, flushing)
and the rest, waiting for the flow to apply the ticks. The outcome is checked again against
the batch recomputation at the new day: the orders of the day that left the window are gone
from every customer, and every score and count is what the midpoint rule gives.

Snapshots: the flow's recovery store is read all along (`bench.rfm_snapshots`): per epoch,
the bytes of every step's snapshots and of the merchant step's, the largest and the mean over
the epochs that wrote any, over the whole run and over the ageing's epochs. Bytewax writes a
key's snapshot only in an epoch where it changed, so an epoch's total follows the records it
took: in the stream and the first scoring it is bounded by the flow's rate, in the ageing it
follows the customers ticked (those with an order on the day that left the window, and those
whose scores the new scales move: a share of all customers). The merchant's state is
histograms, bounded whatever the number of customers: the target is on its ratio between the
two sizes (10 x the customers must not give anything near 10 x the bytes: taken as at most
3 x); the other ratios are shown for what they are.

Memory: the flow's resident size once everyone is scored, less its idle size, per 100,000
customers (each holding about two orders' state besides their own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pymongo

from bench.report import Targets, at_most
from bench.rfm_flow import rfm_idle_rss
from bench.rfm_shopping import AS_OF, expected_scores, produce, shopping, values_as_of
from bench.rfm_snapshots import EpochSizes, Row, SnapshotLog, per_epoch
from bench.rfm_stack import (
    Convergence,
    Streamed,
    converge,
    recovery_dir,
    rfm_flow,
    verify_as_batch,
    wait_streamed,
)
from bench.stackenv import bench_env
from loyalnest.harness.processes import free_port
from loyalnest.settings import Settings

MERCHANT_STEP = ".merchant-state"
CUSTOMER_STEP = ".customer-state"
TARGETS: Targets = {
    "ageing_s": at_most(30),
    # The merchant's state "must not grow ~10x" with 10 x the customers: taken as at most 3 x.
    "merchant_snap_max_ratio": at_most(3),
}


@dataclass
class Run:
    """One size's scenario, measured."""

    customers: int
    orders: int
    stream_seconds: float = 0.0
    scoring: Convergence | None = None
    ageing: Convergence | None = None
    ageing_epoch: int = 0  # the first epoch of the ageing
    rss: int = 0
    rows: list[Row] | None = None

    def snapshots(self, step_suffix: str | None = None, since_epoch: int = 0) -> EpochSizes:
        assert self.rows is not None
        rows = [row for row in self.rows if row[2] >= since_epoch]
        return EpochSizes.of(per_epoch(rows, step_suffix))

    def ageing_snapshots(self, step_suffix: str | None = None) -> EpochSizes:
        return self.snapshots(step_suffix, self.ageing_epoch)

    def figures(self, prefix: str) -> dict[str, float]:
        assert self.scoring is not None
        assert self.ageing is not None
        every, merchant = self.snapshots(), self.snapshots(MERCHANT_STEP)
        figures = {
            "customers": self.customers,
            "orders": self.orders,
            "stream_orders_per_s": self.orders / self.stream_seconds,
            "scoring_s": self.scoring.seconds,
            "scoring_rounds_own_s": self.scoring.round_seconds,
            "scoring_ticks": self.scoring.ticks,
            "ageing_s": self.ageing.seconds,
            "ageing_rounds": self.ageing.rounds,
            "ageing_ticks": self.ageing.ticks,
            "ageing_rounds_own_s": self.ageing.round_seconds,
            "ageing_flow_wait_s": self.ageing.seconds - self.ageing.round_seconds,
            "rss_mib": self.rss / 2**20,
            "snap_epochs": every.epochs,
            "snap_max_bytes": every.max_bytes,
            "snap_mean_bytes": every.mean_bytes,
            "customer_snap_max_bytes": self.snapshots(CUSTOMER_STEP).max_bytes,
            "merchant_snap_max_bytes": merchant.max_bytes,
            "merchant_snap_mean_bytes": merchant.mean_bytes,
            "ageing_snap_epochs": self.ageing_snapshots().epochs,
            "ageing_snap_max_bytes": self.ageing_snapshots().max_bytes,
            "ageing_merchant_snap_bytes": self.ageing_snapshots(MERCHANT_STEP).max_bytes,
        }
        return {f"{prefix}{name}": value for name, value in figures.items()}


def scenario(settings: Settings, customers: int, orders: int) -> Run:
    """Orders in, everyone scored as of AS_OF, then one day of ageing; checked both times."""
    made = shopping(customers, orders)
    run = Run(customers, orders)
    with bench_env(settings) as env:
        produce(env, made)
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
        db = client[env.database]
        port = free_port()
        flow = rfm_flow(env, port)
        try:
            with SnapshotLog(recovery_dir(env)) as log:
                started = time.perf_counter()
                wait_streamed(flow, Streamed(orders, customers, port, db))
                run.stream_seconds = time.perf_counter() - started
                run.scoring = converge(env, db, flow, port, AS_OF)
                run.rss = flow.rss_bytes()
                verify_as_batch(db, *expected_scores(values_as_of(made, AS_OF)), AS_OF)
                run.ageing_epoch = log.frontier()
                run.ageing = converge(env, db, flow, port, AS_OF + 1)
                log.wait_snapshotted(flow)
        finally:
            flow.stop()
        run.rows = log.rows()
        verify_as_batch(db, *expected_scores(values_as_of(made, AS_OF + 1)), AS_OF + 1)
        client.close()
    return run


def measure(
    settings: Settings, customers: int, small_customers: int, orders_per_customer: float
) -> dict[str, float]:
    idle = rfm_idle_rss(settings)
    small = scenario(settings, small_customers, round(small_customers * orders_per_customer))
    full = scenario(settings, customers, round(customers * orders_per_customer))
    return {
        **full.figures(""),
        "rfm_idle_rss_mib": idle / 2**20,
        "rfm_mib_per_100k_customers": (full.rss - idle) / 2**20 * 100_000 / customers,
        "merchant_snap_max_ratio": ratio(
            full.snapshots(MERCHANT_STEP).max_bytes, small.snapshots(MERCHANT_STEP).max_bytes
        ),
        "snap_max_ratio": ratio(full.snapshots().max_bytes, small.snapshots().max_bytes),
        "ageing_snap_max_ratio": ratio(
            full.ageing_snapshots().max_bytes, small.ageing_snapshots().max_bytes
        ),
        "customers_ratio": customers / small_customers,
        **small.figures("small_"),
    }


def ratio(big: float, small: float) -> float:
    if small <= 0:
        raise RuntimeError("the smaller run wrote no snapshot: nothing to compare with")
    return big / small
