"""RFM flow throughput alongside the points flow: the same orders through both at once.

N paid orders of one merchant's customers, over the past year in day order
(`bench.rfm_shopping`), are produced to `shopify.orders` before either flow starts; then the
points flow and the RFM flow start together, each with its own recovery store, as production
runs them side by side on the same topic and store. Each flow's rate runs from its own start
to its last write (and steady: first to last write): the RFM flow's last write is the one
after which every order has its customer document and the merchant's picture counts every
customer; the points flow's, the last order's ledger entry.

Besides the rates: CPU seconds per 1,000 orders of each flow and of the store (/proc, over the
window until both are done), and the RFM flow's resident memory per 100,000 customers (its
idle resident size, with empty topics and state, subtracted, as bench/pipeline.py measures the
points flow's). The run checks that neither flow dead-lettered anything and that the stored
customer documents and picture count exactly the customers produced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo.database import Database

from bench.proc import cpu_seconds, store_pid
from bench.report import Targets, at_least, at_most
from bench.rfm_shopping import MERCHANT, produce, shopping
from bench.rfm_stack import Streamed, flow_counts, picture, rfm_flow, samples, summed
from bench.stackenv import bench_env, flow_process
from connectors.store import LEDGER, RFM_CUSTOMERS
from loyalnest.harness.processes import FlowProcess, free_port, wait_until
from loyalnest.settings import Settings

TARGETS: Targets = {
    "rfm_orders_per_s": at_least(2_000),
    "rfm_mib_per_100k_customers": at_most(100),
}
TIMEOUT = 1800.0
POLL = 0.1


@dataclass
class PointsProgress:
    """The points flow's first and last ledger entry acknowledged (perf_counter seconds): one
    entry per paid order of a customer."""

    orders: int
    port: int
    first: float | None = None
    last: float | None = None

    def done(self) -> bool:
        if self.last is not None:
            return True
        found = samples(self.port)
        written = summed(found, "loyalnest_mongo_sink_writes_total", collection=LEDGER)
        errors = summed(found, "points_errors_total")
        if errors:
            raise RuntimeError(f"the points flow dead-lettered {errors:.0f} records")
        now = time.perf_counter()
        if written and self.first is None:
            self.first = now
        if written >= self.orders:
            self.last = now
        return self.last is not None


@dataclass
class Running:
    """A started flow: its process, when its start began, and its CPU seconds then."""

    flow: FlowProcess
    started: float
    cpu: float

    @staticmethod
    def start(launch: Callable[[], FlowProcess]) -> Running:
        started = time.perf_counter()
        flow = launch()
        return Running(flow, started, cpu_seconds(flow.pid))

    def port(self) -> int:
        assert self.flow.api_port is not None
        return self.flow.api_port

    def rate(self, orders: int, first: float | None, last: float | None) -> tuple[float, float]:
        """(orders/s from the start, orders/s first to last write)."""
        assert first is not None
        assert last is not None
        return orders / (last - self.started), orders / max(last - first, POLL)


def rfm_idle_rss(settings: Settings) -> int:
    """Resident size of the RFM flow with empty topics and empty state: the baseline."""
    with bench_env(settings) as env:
        flow = rfm_flow(env, free_port())
        try:
            return flow.rss_bytes()
        finally:
            flow.stop()


def wait_both(
    rfm: Running, stream: Streamed, points: Running | None, progress: PointsProgress | None
) -> None:
    """Until both flows are done; each is looked at on every pass, so each finish is seen
    when it happens (to the polling interval)."""

    def both() -> bool:
        if points is not None and not points.flow.alive():
            raise RuntimeError(f"the points flow exited:\n{points.flow.log_tail()}")
        rfm_done = stream.done()
        return (progress is None or progress.done()) and rfm_done

    wait_until(both, TIMEOUT, "the flows to take in every order", rfm.flow, POLL)


def verify(db: Database[Any], customers: int, ledger: int | None) -> None:
    """Counted once in the store, after the clock stopped."""
    docs = db[RFM_CUSTOMERS].count_documents({"merchant_id": MERCHANT})
    found = picture(db)
    total = None if found is None else int(found["total"])
    counted = None if found is None else sum(int(n) for n in found["counts"].values())
    if (docs, total, counted) != (customers, customers, customers):
        raise RuntimeError(
            f"{docs} customer documents, a picture of {total} customers counting {counted}, "
            f"for {customers} customers"
        )
    if ledger is not None and (entries := db[LEDGER].count_documents({})) != ledger:
        raise RuntimeError(f"{entries} ledger entries for {ledger} orders")


def measure(
    settings: Settings, orders: int, customers: int, with_points: bool = True
) -> dict[str, float]:
    made = shopping(customers, orders)
    idle = rfm_idle_rss(settings)
    with bench_env(settings) as env:
        produce(env, made)
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
        db = client[env.database]
        store = store_pid(settings)
        store_cpu = cpu_seconds(store) if store else 0.0
        points = Running.start(lambda: flow_process(env, free_port())) if with_points else None
        try:
            rfm = Running.start(lambda: rfm_flow(env, free_port()))
            try:
                stream = Streamed(orders, customers, rfm.port(), db)
                progress = None if points is None else PointsProgress(orders, points.port())
                wait_both(rfm, stream, points, progress)
                figures = costs(rfm, points, store, store_cpu, orders)
                rss = rfm.flow.rss_bytes()
                require_clean(rfm)
            finally:
                rfm.flow.stop()
        finally:
            if points is not None:
                points.flow.stop()
        verify(db, customers, None if points is None else orders)
        client.close()
    rfm_rate, rfm_steady = rfm.rate(orders, stream.first, stream.last)
    figures |= {"rfm_orders_per_s": rfm_rate, "rfm_steady_orders_per_s": rfm_steady}
    if points is not None and progress is not None:
        rate, steady = points.rate(orders, progress.first, progress.last)
        figures |= {"points_orders_per_s": rate, "points_steady_orders_per_s": steady}
    return {
        "orders": orders,
        "customers": customers,
        "with_points_flow": float(with_points),
        **figures,
        "rfm_rss_mib": rss / 2**20,
        "rfm_idle_rss_mib": idle / 2**20,
        "rfm_mib_per_100k_customers": (rss - idle) / 2**20 * 100_000 / customers,
    }


def costs(
    rfm: Running, points: Running | None, store: int | None, store_cpu: float, orders: int
) -> dict[str, float]:
    """CPU seconds per 1,000 orders, from each start until both flows were done."""
    per_1k = 1000 / orders
    figures = {
        "rfm_cpu_s_per_1k_orders": (cpu_seconds(rfm.flow.pid) - rfm.cpu) * per_1k,
        "store_cpu_s_per_1k_orders": (
            (cpu_seconds(store) - store_cpu) * per_1k if store else float("nan")
        ),
    }
    if points is not None:
        figures["points_cpu_s_per_1k_orders"] = (cpu_seconds(points.flow.pid) - points.cpu) * per_1k
    return figures


def require_clean(rfm: Running) -> None:
    counts = flow_counts(rfm.port())
    if counts.errors or counts.duplicates:
        raise RuntimeError(f"the RFM flow: {counts}")
