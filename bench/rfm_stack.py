"""The RFM flow as the benchmarks run it: started as production starts it, watched through its
own /metrics (counting in SecantusDB scans the collection and would slow the flow it measures),
and driven by the real rescoring rounds (`loyalnest.rfm_round.RescoringJob`) to convergence.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pymongo.database import Database

from bench.kit import metrics_text
from bench.rfm_shopping import MERCHANT, Expected, midnight
from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS
from loyalnest.clock import kafka_producer
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.rfm_round import RescoringJob
from loyalnest.topics import RFM_COMMANDS
from loyalty.rfm import day_number
from loyalty.times import as_utc

TIMEOUT = 1800.0
POLL = 0.1
LABEL = re.compile(r'(\w+)="([^"]*)"')  # of a /metrics sample, in whatever order
SINK_WRITES = "loyalnest_mongo_sink_writes_total"
ERRORS = "rfm_errors_total"


def rfm_flow(env: Deployment, port: int, log: str = "rfm.log") -> FlowProcess:
    """The RFM flow with production's snapshot interval and its own recovery store (the
    points flow may use the deployment's); returns once its /metrics answer."""
    return FlowProcess(
        env,
        env.workdir / log,
        flow="rfm",
        recovery=recovery_dir(env),
        snapshot_seconds=5,
        recovery_partitions=1,
        api_port=port,
    )


def recovery_dir(env: Deployment) -> Path:
    return env.workdir / "recovery-rfm"


def samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a flow's /metrics as (name, labels, value)."""
    found = []
    text = metrics_text(port)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        name, _, labels = sample.partition("{")
        found.append((name, dict(LABEL.findall(labels)), float(value)))
    return found


def summed(found: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        value
        for sample, have, value in found
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


@dataclass(frozen=True)
class FlowCounts:
    customer_writes: float  # rfm_customers writes acknowledged (applied or duplicate)
    duplicates: float  # of them, a version the store already had
    errors: float  # records the flow dead-lettered, any step


def flow_counts(port: int) -> FlowCounts:
    found = samples(port)
    return FlowCounts(
        summed(found, SINK_WRITES, collection=RFM_CUSTOMERS),
        summed(found, SINK_WRITES, collection=RFM_CUSTOMERS, outcome="duplicate"),
        summed(found, ERRORS),
    )


def require_no_errors(counts: FlowCounts, what: str) -> None:
    if counts.errors or counts.duplicates:
        raise RuntimeError(
            f"{what}: the RFM flow dead-lettered {counts.errors:.0f} records and had "
            f"{counts.duplicates:.0f} duplicate customer writes"
        )


def picture(db: Database[Any]) -> dict[str, Any] | None:
    return db[RFM_MERCHANTS].find_one({"_id": MERCHANT})


def picture_version(db: Database[Any]) -> int:
    found = picture(db)
    return -1 if found is None else int(found["v"])


def picture_day(found: dict[str, Any] | None) -> int | None:
    return None if found is None else day_number(as_utc(found["as_of"]))


@dataclass
class Streamed:
    """The RFM flow taking in a stream of orders: when its first and its last customer write
    were acknowledged (perf_counter seconds). Done once every order has its customer write
    and the merchant's picture counts every customer."""

    orders: int
    customers: int
    port: int
    db: Database[Any]
    first: float | None = None
    last: float | None = None

    def done(self) -> bool:
        if self.last is not None:
            return True
        counts = flow_counts(self.port)
        now = time.perf_counter()
        if counts.customer_writes and self.first is None:
            self.first = now
        if counts.customer_writes < self.orders:
            return False
        require_no_errors(counts, "the stream")
        if counts.customer_writes > self.orders:
            raise RuntimeError(f"{counts.customer_writes:.0f} customer writes for {self.orders}")
        found = picture(self.db)
        if found is None or int(found["total"]) != self.customers:
            return False
        self.last = now
        return True


def wait_streamed(flow: FlowProcess, run: Streamed) -> None:
    wait_until(run.done, TIMEOUT, "the RFM flow to take in every order", flow, POLL)


@dataclass
class Convergence:
    """Rescoring rounds at one as-of day, until one finds nothing to do."""

    rounds: int = 0
    ticks: int = 0  # customers ticked, over all rounds
    days: int = 0
    seconds: float = 0.0  # from the first round's start until convergence
    round_seconds: float = 0.0  # of them, in the rounds' own query, produce and flush
    ticks_per_round: list[int] = field(default_factory=list)


def converge(
    env: Deployment, db: Database[Any], flow: FlowProcess, port: int, as_of: int
) -> Convergence:
    """Rounds as of `as_of` (an hour into that day), as `rfm-rounds` runs them, each waited on
    until the flow has applied all it sent: every tick written back and, after a day tick,
    the picture at the new day. Converged when a round sends nothing and the picture kept
    its version since the round before (a picture the last ticks moved is checked again)."""
    job = RescoringJob(db, kafka_producer(env.settings), env.topic(RFM_COMMANDS))
    now = midnight(as_of) + timedelta(hours=1)
    run = Convergence()
    started = time.perf_counter()
    last_version = None
    while True:
        before = picture_version(db)
        written = flow_counts(port).customer_writes
        round_started = time.perf_counter()
        counts = job.run_round(now)
        run.round_seconds += time.perf_counter() - round_started
        run.rounds += 1
        run.ticks += counts.ticks
        run.days += counts.days
        run.ticks_per_round.append(counts.ticks)
        wait_applied(flow, port, db, written + counts.ticks, as_of if counts.days else None)
        after = picture_version(db)
        if counts.ticks == 0 and counts.days == 0 and before == after == last_version:
            run.seconds = time.perf_counter() - started
            return run
        last_version = after


def wait_applied(
    flow: FlowProcess, port: int, db: Database[Any], writes: float, day: int | None
) -> None:
    """Until the flow has written `writes` customer documents in all and, when a day tick was
    sent, the merchant's picture is at `day`."""

    def applied() -> bool:
        counts = flow_counts(port)
        require_no_errors(counts, "a round")
        if counts.customer_writes < writes:
            return False
        if counts.customer_writes > writes:
            raise RuntimeError(f"{counts.customer_writes:.0f} customer writes, {writes:.0f} sent")
        return day is None or (picture_day(picture(db)) or -1) >= day

    wait_until(applied, TIMEOUT, "a round to be applied", flow, POLL)


def verify_as_batch(
    db: Database[Any], scores: dict[int, Expected], counts: dict[str, int], as_of: int
) -> None:
    """Every stored customer's scores and the merchant's picture equal the batch
    recomputation as of `as_of` (one pass over the documents, after the clock stopped)."""
    docs = db[RFM_CUSTOMERS].find(
        {"merchant_id": MERCHANT}, {"shopify_customer_id": 1, "r": 1, "f": 1, "m": 1, "segment": 1}
    )
    stored = {d["shopify_customer_id"]: (d["r"], d["f"], d["m"], d["segment"]) for d in docs}
    if set(stored) != set(scores):
        raise RuntimeError(f"{len(stored)} customer documents for {len(scores)} customers")
    wrong = [c for c, want in scores.items() if stored[c] != want]
    if wrong:
        c = wrong[0]
        raise RuntimeError(
            f"{len(wrong)} customers' stored scores differ from the batch recomputation; "
            f"customer {c}: stored {stored[c]}, expected {scores[c]}"
        )
    found = picture(db)
    if found is None or picture_day(found) != as_of:
        raise RuntimeError(f"the merchant's picture is not as of day {as_of}: {found}")
    got = {name: int(n) for name, n in found["counts"].items()}
    if got != counts or int(found["total"]) != len(scores):
        raise RuntimeError(f"picture counts {got} (total {found['total']}), expected {counts}")
