"""Referral flow throughput alongside the points flow: the same orders through both at once.

N paid orders of one merchant, 7% of them naming an advocate's referral code
(`bench.referral_shopping`), are produced to `shopify.orders` as the API produces them
(redacted, with the merchant's terms), after the advocates' codes on `referral.commands`,
before either flow starts; then the points flow and the referrals flow start together, each
with its own recovery store, as production runs them side by side on the same topics.

Each flow's rate runs from its own start to its last write (and steady: first to last write).
The referrals flow's last write is the one after which PostgreSQL `referrals` holds a decided
status (completed or blocked, never pending) for every referred friend, and its friend stage
has taken in every order (a plain order writes nothing, but must pass through too). The points
flow's is the last order's ledger entry: acknowledged ledger writes, less the entries of other
kinds (the referral rewards) it has emitted so far, reach the number of orders.

Besides the rates: CPU seconds per 1,000 orders of each flow and of the store (/proc, over the
window until both are done and the points flow has applied every reward). The run checks that
neither flow dead-lettered anything, that every referred friend's status and reason are what
the rules give for the orders, and that the ledger holds one entry per order and per reward.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg
import pymongo

from bench.proc import cpu_seconds, store_pid
from bench.referral_shopping import MERCHANT, Shopping, produce, shopping
from bench.report import Targets, at_least
from bench.rfm_flow import Running
from bench.rfm_stack import samples, summed
from bench.stackenv import bench_env, flow_process
from connectors.store import LEDGER
from loyalnest.harness.deployment import Deployment, fresh_postgres
from loyalnest.harness.processes import FlowProcess, free_port, wait_until
from loyalnest.settings import Settings
from loyalty.ledger import Kind
from loyalty.referrals import Reason, Status

TARGETS: Targets = {"referral_orders_per_s": at_least(1_000)}
TIMEOUT = 1800.0
POLL = 0.1
METRICS_EVERY = 10  # polls
SINK_WRITES = "loyalnest_mongo_sink_writes_total"
TRANSACTIONS = "points_transactions_total"
# Bytewax's own count of the items into a step: here the friend stage's keyed state.
ITEMS_IN = "bytewax_item_inp_count_total"
FRIEND_STATE = "referrals.friend-state"
REFERRAL_ERRORS = "referral_errors_total"


def referrals_flow(env: Deployment, port: int, postgres_url: str) -> FlowProcess:
    """The referrals flow with production's snapshot interval and its own recovery store;
    returns once its /metrics answer."""
    return FlowProcess(
        env,
        env.workdir / "referrals.log",
        flow="referrals",
        recovery=env.workdir / "recovery-referrals",
        snapshot_seconds=5,
        recovery_partitions=1,
        api_port=port,
        POSTGRES_URL=postgres_url,
    )


def decided(conn: psycopg.Connection[Any]) -> Counter[tuple[str, str | None]]:
    """Referrals in PostgreSQL by (status, reason)."""
    rows = conn.execute("SELECT status, reason, count(*) FROM referrals GROUP BY 1, 2").fetchall()
    return Counter({(status, reason): int(n) for status, reason, n in rows})


@dataclass
class ReferralProgress:
    """The referrals flow's first and last referral written (perf_counter seconds). Done once
    every referred friend's referral is decided in PostgreSQL and the friend stage has taken
    in every order's news and every verdict."""

    friends: int  # referred friends: one referral each
    friend_records: int  # what the friend stage reads: one per order, one per claim answered
    port: int
    conn: psycopg.Connection[Any]
    first: float | None = None
    last: float | None = None
    polls: int = 0

    def done(self) -> bool:
        if self.last is not None:
            return True
        counts = decided(self.conn)
        now = time.perf_counter()
        if counts and self.first is None:
            self.first = now
        settled = sum(n for (status, _), n in counts.items() if status != Status.PENDING)
        if settled > self.friends:
            raise RuntimeError(f"{settled} referrals decided for {self.friends} referred friends")
        self.polls += 1
        # The flow's /metrics (some 150 kB: Bytewax's histograms of every step) cost the flow
        # CPU to write: read them once a second, and on every pass once all is decided.
        if settled < self.friends and self.polls % METRICS_EVERY:
            return False
        found = samples(self.port)
        errors = summed(found, REFERRAL_ERRORS)
        if errors:
            raise RuntimeError(f"the referrals flow dead-lettered {errors:.0f} records")
        taken = summed(found, ITEMS_IN, step_id=FRIEND_STATE)
        if settled == self.friends and taken >= self.friend_records:
            self.last = now
        return self.last is not None


@dataclass
class PointsProgress:
    """The points flow's first and last order's ledger entry acknowledged (perf_counter
    seconds), and whether every reward has its entry too.

    The flow's ledger writes also carry the referral rewards, arriving meanwhile: the orders'
    entries are all written once the acknowledged writes, less every entry of another kind
    emitted so far, reach the number of orders (both read from one /metrics answer)."""

    orders: int
    rewards: int
    port: int
    first: float | None = None
    last: float | None = None
    complete: bool = False

    def done(self) -> bool:
        if self.complete:
            return True
        found = samples(self.port)
        errors = summed(found, "points_errors_total")
        if errors:
            raise RuntimeError(f"the points flow dead-lettered {errors:.0f} records")
        written = summed(found, SINK_WRITES, collection=LEDGER)
        others = summed(found, TRANSACTIONS) - summed(found, TRANSACTIONS, type=Kind.EARN.value)
        now = time.perf_counter()
        if written and self.first is None:
            self.first = now
        if self.last is None and written - others >= self.orders:
            self.last = now
        self.complete = self.last is not None and written >= self.orders + self.rewards
        return self.complete


def wait_both(
    referrals: Running, progress: ReferralProgress, points: Running, points_progress: PointsProgress
) -> None:
    """Until both flows are done and every reward is applied; each is looked at on every
    pass, so each finish is seen when it happens (to the polling interval)."""

    def both() -> bool:
        if not points.flow.alive():
            raise RuntimeError(f"the points flow exited:\n{points.flow.log_tail()}")
        referrals_done = progress.done()
        return points_progress.done() and referrals_done

    wait_until(both, TIMEOUT, "the flows to take in every order", referrals.flow, POLL)


def verify(made: Shopping, postgres_url: str, ledger: int) -> dict[str, float]:
    """Counted once in PostgreSQL and the store, after the clock stopped: every referred
    friend's referral is what the rules give, and the ledger has every order and reward."""
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT friend_id, order_id, code, status, reason FROM referrals "
            "WHERE merchant_id = %s",
            (MERCHANT,),
        ).fetchall()
    stored = {
        friend: (order_id, code, status, reason) for friend, order_id, code, status, reason in rows
    }
    if len(rows) != len(made.referred) or set(stored) != set(made.referred):
        raise RuntimeError(
            f"{len(rows)} referrals stored for {len(made.referred)} referred friends"
        )
    wrong = []
    for friend, want in made.referred.items():
        status, reason = want.expected
        expected = (
            want.order_id,
            want.code,
            status.value,
            None if reason is None else reason.value,
        )
        if stored[friend] != expected:
            wrong.append(f"friend {friend}: stored {stored[friend]}, expected {expected}")
    if wrong:
        raise RuntimeError(f"{len(wrong)} referrals differ from the rules; {wrong[0]}")
    want_entries = made.orders + made.rewards
    if ledger != want_entries:
        raise RuntimeError(
            f"{ledger} ledger entries for {made.orders} orders and {made.rewards} rewards"
        )
    return outcome_figures(Counter((status, reason) for _, _, status, reason in stored.values()))


def outcome_figures(outcomes: Counter[tuple[str, str | None]]) -> dict[str, float]:
    """The referrals PostgreSQL holds, by status and reason."""

    def count(status: Status, reason: Reason | None = None) -> float:
        return float(outcomes[(status.value, None if reason is None else reason.value)])

    return {
        "referrals_decided": float(sum(outcomes.values())),
        "referrals_completed": count(Status.COMPLETED),
        "referrals_blocked_self": count(Status.BLOCKED, Reason.SELF_REFERRAL),
        "referrals_blocked_unknown_code": count(Status.BLOCKED, Reason.UNKNOWN_CODE),
        "referrals_blocked_below_min": count(Status.BLOCKED, Reason.BELOW_MINIMUM),
    }


def measure(settings: Settings, orders: int) -> dict[str, float]:
    made = shopping(orders)
    with bench_env(settings) as env, fresh_postgres(settings, "bench") as postgres_url:
        produce(env, made)
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
        db = client[env.database]
        store = store_pid(settings)
        store_cpu = cpu_seconds(store) if store else 0.0
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            points = Running.start(lambda: flow_process(env, free_port()))
            try:
                referrals = Running.start(lambda: referrals_flow(env, free_port(), postgres_url))
                try:
                    progress = ReferralProgress(
                        len(made.referred), made.friend_records, referrals.port(), conn
                    )
                    points_progress = PointsProgress(made.orders, made.rewards, points.port())
                    wait_both(referrals, progress, points, points_progress)
                    figures = costs(referrals, points, store, store_cpu, made.orders)
                    rss = referrals.flow.rss_bytes()
                finally:
                    referrals.flow.stop()
            finally:
                points.flow.stop()
        figures |= verify(made, postgres_url, db[LEDGER].count_documents({}))
        client.close()
    rate, steady = referrals.rate(made.orders, progress.first, progress.last)
    points_rate, points_steady = points.rate(
        made.orders, points_progress.first, points_progress.last
    )
    return {
        "orders": float(made.orders),
        "referred_orders": float(len(made.referred)),
        "advocates": float(len(made.advocates)),
        "referral_orders_per_s": rate,
        "referral_steady_orders_per_s": steady,
        "points_orders_per_s": points_rate,
        "points_steady_orders_per_s": points_steady,
        **figures,
        "referral_rewards": float(made.rewards),
        "referral_rss_mib": rss / 2**20,
    }


def costs(
    referrals: Running, points: Running, store: int | None, store_cpu: float, orders: int
) -> dict[str, float]:
    """CPU seconds per 1,000 orders, from each start until both flows were done."""
    per_1k = 1000 / orders
    return {
        "referral_cpu_s_per_1k_orders": (cpu_seconds(referrals.flow.pid) - referrals.cpu) * per_1k,
        "points_cpu_s_per_1k_orders": (cpu_seconds(points.flow.pid) - points.cpu) * per_1k,
        "store_cpu_s_per_1k_orders": (
            (cpu_seconds(store) - store_cpu) * per_1k if store else float("nan")
        ),
    }
