"""Expiry sweep: customers/s expired when a whole customer base's points expire on one tick.

N customers of one merchant each earn once, all on the same UTC day, under `lot:30` terms (the
earns are produced as `points.change` commands straight to `points.commands`, as the order
stage would post them), and the points flow writes their N balances. Then the clock job runs
one round as operators run it, `python -m loyalnest.clock --at T`, in its own process against
the bench deployment's topics and database, with T one minute after the lots expire: it reads
the N due customers from `point_balances` by `due_at` and produces one `points.tick` each, and
the flow expires every customer's lot (one `expire` ledger entry, one balance document, one
`points.earned` event and one cache update per customer).

The sweep is timed from the clock's launch (its start-up included) until the flow's sink has
had N more balance writes acknowledged; the steady rate runs from the first of those writes to
the last. Besides the rate, the run reports the clock round's own time (due query, produce,
flush, from its log) and what every 1,000 customers of the sweep cost in CPU seconds: of the
flow, of the store (from /proc, over the sweep window) and of the clock process. At the end
every balance must be 0 and the ledger must hold N expire entries.

The store's ceiling for the same work is measured apart, as the pipeline benchmark does for
orders: the documents the flow writes for N earns, then for their N expiries, built by the
flow's own state machine and record code, bulk-written straight into a fresh database; only
the expiries are timed. The sweep cannot beat that rate on this store, whatever the flow does.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
from confluent_kafka import Producer

from bench.kit import metrics_text, produce_patiently
from bench.pipeline import balances_written
from bench.proc import cpu_seconds, store_pid
from bench.report import Targets, at_least
from bench.stackenv import bench_env, flow_process
from connectors.points_records import balance_write, entry_write
from connectors.store import BALANCES, LEDGER
from loyalnest.bootstrap.mongo import ensure_collections
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import ROOT, FlowProcess, free_port
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS
from loyalty import ids
from loyalty.commands import customer_key, encode_change
from loyalty.customers import BalanceSnapshot, CustomerOutput, LedgerEntry, Tick, apply_customer
from loyalty.i18n import BUILT_IN
from loyalty.ledger import Kind, PointsChange, Source, Terms
from loyalty.lots import lot_expiry
from loyalty.policy import Expiry
from sinks.mongo import MongoWrite, MongoWriter

SHOP = "bench-sweep.myshopify.com"
EXPIRY = Expiry.parse("lot:30")
TARGETS: Targets = {"sweep_customers_per_s": at_least(2_000)}
FIRST_CUSTOMER = 5_000_000
POLL_SECONDS = 0.1
TIMEOUT_SECONDS = 1800.0
LABEL = re.compile(r'(\w+)="([^"]*)"')  # of a /metrics sample, in whatever order
APPLIED_BALANCES = {"collection": BALANCES, "outcome": "applied"}
# The clock job's log line for a round (loyalnest/clock.py, ClockJob.send).
ROUND_LINE = re.compile(r"tick at \S+: (\d+) due, (\d+) ticked, .*; ([0-9.]+)s \(")


def earn_day(now: datetime) -> datetime:
    """Midnight UTC 60 days before `now`: the lots expire 31 days later, and the clock, which
    refuses a time in the future, can tick one minute after that."""
    day = now.astimezone(UTC).date() - timedelta(days=60)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def earn(customer: int, n: int, day: datetime) -> PointsChange:
    """Customer `customer`'s one order earn, at some second of `day`, under lot:30 terms."""
    order_id = 8_000_000 + n
    return PointsChange(
        shop=SHOP,
        customer=customer,
        source=Source.ORDER,
        source_id=str(order_id),
        kind=Kind.EARN,
        points=100 + n % 400,
        text_key="points.earned.order",
        locale="en",
        at=day + timedelta(seconds=n % 86_400),
        order_id=order_id,
        key="earn",
        terms=Terms(expiry=EXPIRY),
    )


def produce_earns(env: Deployment, count: int, day: datetime) -> None:
    producer = Producer(
        {
            "bootstrap.servers": env.settings.kafka_bootstrap_servers,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    merchant = str(ids.merchant_id(SHOP))
    topic = env.topic(POINTS_COMMANDS)
    for n in range(count):
        customer = FIRST_CUSTOMER + n
        key, value = customer_key(merchant, customer), encode_change(earn(customer, n, day))
        produce_patiently(producer, topic, value, key)
    if producer.flush(120):
        raise RuntimeError("earn commands not all produced")


def flow_counts(port: int) -> tuple[float, float]:
    """(balance writes the flow's sink has had acknowledged, expire ledger entries the flow has
    decided so far: counted before they go to the sink), from one read of its /metrics."""
    balances = expires = 0.0
    for line in metrics_text(port).splitlines():
        sample, _, value = line.rpartition(" ")
        name, _, labels = sample.partition("{")
        found = dict(LABEL.findall(labels))
        if name == "loyalnest_mongo_sink_writes_total" and found == APPLIED_BALANCES:
            balances = float(value)
        elif name == "points_transactions_total" and found.get("type") == Kind.EXPIRE.value:
            expires += float(value)  # every locale's
    return balances, expires


def start_clock(env: Deployment, at: datetime, log: Path) -> subprocess.Popen[bytes]:
    """`python -m loyalnest.clock --at` on the deployment, as an operator runs one round."""
    environ = env.environ(LOYALNEST_LOG_LEVEL="INFO")
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "loyalnest.clock", "--at", at.isoformat()],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def clock_round(log: Path, customers: int) -> float:
    """The round's seconds, from the clock's log; it must have ticked every customer."""
    text = log.read_text(errors="replace")
    rounds = ROUND_LINE.findall(text)
    if len(rounds) != 1:
        raise RuntimeError(f"expected one clock round in its log, found {len(rounds)}:\n{text}")
    due, ticked, seconds = rounds[0]
    if (int(due), int(ticked)) != (customers, customers):
        raise RuntimeError(f"the clock found {due} due and ticked {ticked} of {customers}")
    return float(seconds)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sweep(
    env: Deployment, flow: FlowProcess, port: int, customers: int, at: datetime
) -> dict[str, float]:
    """One clock round at `at` and the flow's expiries after it, timed and costed."""
    log = env.workdir / "clock.log"
    store = store_pid(env.settings)
    flow_cpu, store_cpu = cpu_seconds(flow.pid), cpu_seconds(store) if store else 0.0
    reaped_cpu = children_cpu()  # the flow is not reaped before the end: only the clock counts
    started = time.perf_counter()
    clock = start_clock(env, at, log)
    clock_exit: float | None = None
    first: float | None = None  # the first expired balance written
    decided: float | None = None  # every expiry decided (not all written yet)
    deadline = started + TIMEOUT_SECONDS
    while True:
        now = time.perf_counter()
        if clock_exit is None and clock.poll() is not None:
            clock_exit = now
            if clock.returncode != 0:
                raise RuntimeError(f"the clock exited with {clock.returncode}:\n{log.read_text()}")
        balances, expires = flow_counts(port)
        written = balances - customers  # the earns' balances came first
        if written > 0 and first is None:
            first = now
        if expires >= customers and decided is None:
            decided = now
        if written >= customers and clock_exit is not None:
            break
        if not flow.alive():
            raise RuntimeError(f"the flow exited during the sweep:\n{flow.log_tail()}")
        if now > deadline:
            raise TimeoutError(f"{written:.0f} of {customers} expired balances written")
        time.sleep(POLL_SECONDS)
    # The sweep is over once the last balance is written and the clock has exited (`now`).
    flow_cpu = cpu_seconds(flow.pid) - flow_cpu
    store_cpu = cpu_seconds(store) - store_cpu if store else float("nan")
    clock_cpu = children_cpu() - reaped_cpu
    assert first is not None
    assert clock_exit is not None
    assert decided is not None
    if expires != customers or written != customers:
        raise RuntimeError(
            f"the flow decided {expires:.0f} expiries and wrote {written:.0f} balances for "
            f"{customers} customers"
        )
    round_seconds = clock_round(log, customers)
    per_1k = 1000 / customers
    return {
        "sweep_customers_per_s": customers / (now - started),
        "sweep_steady_customers_per_s": customers / max(now - first, POLL_SECONDS),
        "sweep_s": now - started,
        "clock_round_s": round_seconds,
        "clock_ticks_per_s": customers / round_seconds,
        "clock_process_s": clock_exit - started,
        "sweep_first_write_s": first - started,
        "sweep_all_decided_s": decided - started,
        "flow_cpu_s_per_1k_customers": flow_cpu * per_1k,
        "store_cpu_s_per_1k_customers": store_cpu * per_1k,
        "clock_cpu_s_per_1k_customers": clock_cpu * per_1k,
    }


def verify(settings: Settings, database: str, customers: int) -> None:
    """Every balance at 0 and one expire entry per customer, counted once in the store."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    try:
        db = client[database]
        balances = db[BALANCES].count_documents({})
        nonzero = db[BALANCES].count_documents({"balance": {"$ne": 0}})
        entries = db[LEDGER].count_documents({"type": Kind.EXPIRE.value})
    finally:
        client.close()
    if (balances, nonzero, entries) != (customers, 0, customers):
        raise RuntimeError(
            f"after the sweep: {balances} balances ({nonzero} not 0) and {entries} expire "
            f"entries, for {customers} customers"
        )


def store_writes(outputs: list[CustomerOutput]) -> list[MongoWrite]:
    """The documents the flow writes for these outputs (events and cache left out)."""
    writes: list[MongoWrite] = []
    for output in outputs:
        if isinstance(output, LedgerEntry):
            writes.append(entry_write(output, BUILT_IN))
        elif isinstance(output, BalanceSnapshot):
            writes.append(balance_write(output))
    return writes


def ceiling_writes(
    customers: int, day: datetime, at: datetime
) -> tuple[list[MongoWrite], list[MongoWrite]]:
    """(the earns' writes, the expiries' writes) for `customers` customers, as the flow makes
    them: each customer's earn, then the tick at `at` that expires it."""
    merchant = str(ids.merchant_id(SHOP))
    earns: list[MongoWrite] = []
    expiries: list[MongoWrite] = []
    for n in range(customers):
        customer = FIRST_CUSTOMER + n
        state, earned = apply_customer(None, earn(customer, n, day))
        _, expired = apply_customer(state, Tick(merchant, customer, at))
        earns += store_writes(earned)
        expiries += store_writes(expired)
    return earns, expiries


def store_ceiling(settings: Settings, customers: int, day: datetime, at: datetime) -> float:
    """Customers/s the store expires when the sweep's writes are bulk-written directly."""
    earns, expiries = ceiling_writes(customers, day, at)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    db = client[f"bench_sweep_ceiling_{uuid.uuid4().hex[:8]}"]
    try:
        ensure_collections(db)
        writer = MongoWriter(db)
        write_all(writer, earns)
        started = time.perf_counter()
        write_all(writer, expiries)
        return customers / (time.perf_counter() - started)
    finally:
        client.drop_database(db.name)
        client.close()


def write_all(writer: MongoWriter, writes: list[MongoWrite]) -> None:
    for i in range(0, len(writes), 2000):  # batches as the flow's sink sees them
        stats = writer.write(writes[i : i + 2000])
        if stats.duplicates:
            raise RuntimeError(f"the ceiling run left {stats.duplicates} writes unapplied")


def measure(settings: Settings, customers: int, port: int | None = None) -> dict[str, float]:
    port = port or free_port()
    day = earn_day(datetime.now(UTC))
    expires_at = lot_expiry(day, EXPIRY)
    assert expires_at is not None
    with bench_env(settings) as env:
        produce_started = time.perf_counter()
        produce_earns(env, customers, day)
        produce_seconds = time.perf_counter() - produce_started
        started = time.perf_counter()
        flow = flow_process(env, port)
        try:
            wait_for_earns(flow, port, customers)
            earn_seconds = time.perf_counter() - started
            figures = sweep(env, flow, port, customers, expires_at + timedelta(minutes=1))
        finally:
            flow.stop()
        verify(settings, env.database, customers)
    ceiling = store_ceiling(settings, customers, day, expires_at + timedelta(minutes=1))
    return {
        "customers": customers,
        **figures,
        "sweep_store_ceiling_customers_per_s": ceiling,
        "sweep_vs_store_ceiling": figures["sweep_customers_per_s"] / ceiling,
        "earns_produce_s": produce_seconds,
        "earns_written_s": earn_seconds,
    }


def wait_for_earns(flow: FlowProcess, port: int, customers: int) -> None:
    """Until the flow has written every customer's first balance (flow start-up included)."""
    deadline = time.perf_counter() + TIMEOUT_SECONDS
    while (written := balances_written(port)) < customers:
        if not flow.alive():
            raise RuntimeError(f"the flow exited before the earns were in:\n{flow.log_tail()}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{written:.0f} of {customers} earn balances written")
        time.sleep(0.25)
