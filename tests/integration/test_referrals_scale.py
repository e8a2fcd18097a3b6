"""Referrals at scale on the real stack, with the points flow beside the referrals flow.

More than 2,000 referred friends of two merchants (one paying rewards at once, one holding them
for a ten-day review), a fifth of the webhooks delivered twice and many orders as create, paid
and updated; every fraud case; revocations by full and partial refunds and by cancellations,
before and after the review period; the clock job releasing what is still pending. Both flows
are SIGKILLed mid-stream and restarted on their recovery stores, and the referrals flow is then
replayed from offset 0 with a fresh recovery store.

The judge is tests/integration/referral_harness.py: each case's referral as the rules say, and
every advocate's and friend's balance document computed from order earns, rewards and
reversals. PostgreSQL `referrals`, MongoDB `point_balances` and the referral entries of
`points_transactions` must equal it after each phase, and the replay must leave all three as
they were. Time is the records' own: webhooks carry the time the API received them, and the
clock job is run for one given instant.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest
from confluent_kafka import Producer
from pymongo.database import Database

from connectors.shopify import encode_body, kafka_headers, partition_key
from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import ROOT, FlowProcess, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import (
    POINTS_COMMANDS,
    POINTS_DLQ,
    REFERRAL_COMMANDS,
    REFERRAL_DLQ,
    REFERRAL_FRIENDS,
    SHOPIFY_ORDERS,
)
from loyalty import ids
from loyalty.commands import customer_key, encode_adjustment
from loyalty.customers import Adjustment
from loyalty.referral_commands import decode_friend_record, encode_code_created, referral_key
from loyalty.referrals import FriendOrder
from tests.integration.points_harness import read_log
from tests.integration.referral_harness import (
    BULK,
    HISTORY,
    ROW_COLUMNS,
    SHOP_A,
    SHOP_B,
    TICK_AT,
    TICKS,
    VOIDS,
    Balance,
    Delivery,
    Row,
    Scenario,
    build,
    expected_points,
    expected_rows,
)

pytestmark = pytest.mark.integration

TIMEOUT = 240.0  # per wait, generous: other jobs may share this machine's two CPUs
MARKER = 99_000  # customers of the markers that tell the points flow has read to the end
CASES = {
    ("completed", None),
    ("blocked", "self_referral"),
    ("blocked", "not_first_order"),
    ("blocked", "ip_velocity"),
    ("blocked", "already_referred"),
    ("blocked", "unknown_code"),
    ("blocked", "below_minimum"),
    ("revoked", "refunded"),
    ("revoked", "cancelled"),
    ("revoked", "below_minimum"),
}


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    with isolated_deployment(settings, "refscale", tmp_path) as deployment:
        yield deployment


@pytest.fixture
def core_url(settings: Settings) -> Iterator[str]:
    with fresh_postgres(settings, "refscale") as url:
        yield url


@pytest.fixture
def db(settings: Settings, env: Deployment) -> Iterator[Database[Any]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo_url, tz_aware=True
    )
    yield client[env.database]
    client.close()


class Flows:
    """The referrals and points flows of one deployment, each with its own recovery store."""

    def __init__(self, env: Deployment, core_url: str, workdir: Path) -> None:
        self.env, self.core_url, self.workdir = env, core_url, workdir
        self.referrals_recovery = workdir / "referrals-recovery"
        self.points_recovery = workdir / "points-recovery"
        self.runs = 0
        self.referrals: FlowProcess | None = None
        self.points: FlowProcess | None = None

    def start(self, *, referrals: bool = True, points: bool = True) -> None:
        self.runs += 1
        if referrals:
            self.referrals = FlowProcess(
                self.env,
                self.workdir / f"referrals-{self.runs}.log",
                flow="referrals",
                recovery=self.referrals_recovery,
                POSTGRES_URL=self.core_url,
            )
        if points:
            self.points = FlowProcess(
                self.env, self.workdir / f"points-{self.runs}.log", recovery=self.points_recovery
            )

    def running(self) -> list[FlowProcess]:
        return [p for p in (self.referrals, self.points) if p is not None]

    def check_alive(self) -> None:
        for process in self.running():
            if not process.alive():
                raise RuntimeError(f"a flow exited:\n{process.log_tail()}")

    def kill(self) -> None:
        for process in self.running():
            process.kill()  # SIGKILL: no snapshot, no flush
        self.referrals = self.points = None

    def stop_referrals(self) -> None:
        if self.referrals is not None:
            self.referrals.stop()
            self.referrals = None

    def stop(self) -> None:
        for process in self.running():
            process.stop()
        self.referrals = self.points = None

    def tails(self) -> str:
        return "\n".join(p.log_tail(15) for p in self.running())


# ------------------------------------------------------------------------------ producing


def producer(settings: Settings) -> Producer:
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "linger.ms": 10,
            "enable.idempotence": True,
        }
    )


def millis(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def produce_codes(settings: Settings, env: Deployment, scenario: Scenario) -> None:
    """Each advocate's code, as the API announces it on referral.commands."""
    out = producer(settings)
    for created in scenario.code_records():
        out.produce(
            env.topic(REFERRAL_COMMANDS),
            key=referral_key(created.merchant_id, created.code),
            value=encode_code_created(created),
        )
    assert out.flush(60) == 0


def produce(settings: Settings, env: Deployment, deliveries: list[Delivery]) -> None:
    """Webhooks as the API produces them: redacted bodies keyed by order, the merchant's terms
    in the headers, stamped with the time they were received."""
    out = producer(settings)
    for n, d in enumerate(deliveries):
        delivery = {
            "X-Shopify-Shop-Domain": d.merchant.shop,
            "X-Shopify-Topic": d.topic,
            "X-Shopify-Webhook-Id": f"{d.topic}:{d.body['id']}",
        }
        out.produce(
            env.topic(SHOPIFY_ORDERS),
            key=partition_key(d.merchant.shop, d.topic, d.body),
            value=encode_body(d.body),
            headers=kafka_headers(delivery, f"corr-{n}", d.merchant.policy, d.merchant.terms),
            timestamp=millis(d.at),
        )
        out.poll(0)
    assert out.flush(60) == 0


def produce_markers(settings: Settings, env: Deployment) -> set[str]:
    """One adjustment per partition of points.commands, after everything else on it: once the
    points flow has applied all of them, it has read every command before them."""
    topic = env.topic(POINTS_COMMANDS)
    merchant = SHOP_A.merchant_id
    out = producer(settings)
    partitions = len(out.list_topics(topic, timeout=10).topics[topic].partitions)
    for p in range(partitions):
        adjustment = Adjustment(
            adjustment_id=str(ids.event_id("marker", merchant, p)),
            merchant_id=merchant,
            customer=MARKER + p,
            points=1,
            reason="end of the log",
            idempotency_key=f"marker-{p}",
            locale="en",
            at=TICK_AT,
        )
        key = customer_key(merchant, MARKER + p)
        out.produce(topic, key=key, value=encode_adjustment(adjustment), partition=p)
    assert out.flush(60) == 0
    return {f"{merchant}:{MARKER + p}" for p in range(partitions)}


def run_clock(env: Deployment, at: datetime) -> str:
    """The clock job as operators run it, once, as of `at`."""
    done = subprocess.run(
        [sys.executable, "-m", "loyalnest.clock", "--at", at.isoformat()],
        cwd=ROOT,
        env=env.environ(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


# -------------------------------------------------------------------------------- reading


def stored_rows(core_url: str) -> dict[str, Row]:
    with psycopg.connect(core_url) as conn:
        found = conn.execute(f"SELECT {ROW_COLUMNS} FROM referrals").fetchall()  # noqa: S608
    return {str(r[0]): Row(*r[1:]) for r in found}


def full_rows(core_url: str) -> list[tuple[Any, ...]]:
    """Every column but the row's own insert and update times."""
    with psycopg.connect(core_url) as conn:
        return conn.execute(
            "SELECT id, merchant_id, customer_id, friend_id, code, order_id, advocate_id, status,"
            " reason, advocate_points, friend_points, release_at, decided_at, status_rank"
            " FROM referrals ORDER BY id"
        ).fetchall()


def balance_of(db: Database[Any], key: str) -> Balance:
    found = stored_balances(db).get(key)
    assert found is not None, key
    return found


def stored_balances(db: Database[Any]) -> dict[str, Balance]:
    return {
        d["_id"]: Balance(d["balance"], d["pending"], d["lifetime_earned"], d["due_at"])
        for d in db.point_balances.find()
        if d["shopify_customer_id"] < MARKER
    }


def referral_ledger(db: Database[Any]) -> dict[tuple[str, str], int]:
    """How many ledger entries of each (type, source_id) referrals caused: rewards and their
    reversals (source referral), and releases of pending rewards (source pending)."""
    found = db.points_transactions.find(
        {
            "$or": [
                {"source": "referral"},
                {"source": "pending", "source_id": {"$regex": "^referral:"}},
            ]
        },
        {"type": 1, "source_id": 1},
    )
    return dict(Counter((d["type"], d["source_id"]) for d in found))


def diff(what: str, got: dict[Any, Any], want: dict[Any, Any]) -> str | None:
    if got == want:
        return None
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    wrong = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]]
    return (
        f"{what}: {len(got)} stored, {len(want)} expected; {len(missing)} missing "
        f"{missing[:3]}, {len(extra)} unexpected {extra[:3]}, {len(wrong)} wrong {wrong[:3]}"
    )


def phase_mismatch(
    scenario: Scenario, phase: int, core_url: str, db: Database[Any]
) -> Callable[[], str | None]:
    rows = expected_rows(scenario, phase)
    points = expected_points(scenario, phase)

    def mismatch() -> str | None:
        return (
            diff("referrals", stored_rows(core_url), rows)
            or diff("balances", stored_balances(db), points.balances)
            or diff("referral ledger entries", referral_ledger(db), points.ledger)
        )

    return mismatch


def settle(
    what: str, mismatch: Callable[[], str | None], flows: Flows, interval: float = 1.0
) -> None:
    """Until `mismatch` finds nothing; fail with the last difference it found."""
    last: list[str | None] = [None]

    def settled() -> bool:
        flows.check_alive()
        last[0] = mismatch()
        return last[0] is None

    try:
        wait_until(settled, TIMEOUT, what, None, interval)
    except TimeoutError as exc:
        raise AssertionError(f"{what}: {last[0]}\n{flows.tails()}") from exc


def friend_orders_logged(settings: Settings, env: Deployment, orders: set[int]) -> str | None:
    """Whether the order stage has told the friends' states of these (paid) orders."""
    seen = set()
    for message in read_log(settings, env.topic(REFERRAL_FRIENDS)):
        record = decode_friend_record(message.value)
        if isinstance(record, FriendOrder) and record.paid:
            seen.add(record.order_id)
    missing = orders - seen
    return f"orders {sorted(missing)} not on referral.friends yet" if missing else None


def referral_commands(settings: Settings, env: Deployment) -> Counter[bytes]:
    """The referrals flow's rewards and reversals on points.commands, each with its count."""
    return Counter(
        m.value
        for m in read_log(settings, env.topic(POINTS_COMMANDS))
        if m.value is not None and b'"source":"referral"' in m.value
    )


def reposted(settings: Settings, env: Deployment, before: Counter[bytes]) -> str | None:
    """Whether each of the referrals flow's commands is on points.commands once more."""
    now = referral_commands(settings, env)
    waiting = [v for v, n in before.items() if now[v] <= n]
    if not waiting:
        return None
    return f"{len(waiting)} of {len(before)} not posted again, e.g. {waiting[0]!r}"


# ---------------------------------------------------------------------------------- test


@pytest.mark.timeout(900)  # about 70 s alone; room for a busy machine
def test_2000_referred_friends_fraud_revocations_and_review_survive_sigkill_and_replay(
    settings: Settings, env: Deployment, core_url: str, db: Database[Any], tmp_path: Path
) -> None:
    scenario = build()
    assert len(scenario.referred_friends()) >= 2_000
    assert scenario.duplicates >= 0.2 * (len(scenario.deliveries) - scenario.duplicates)
    cases = Counter((r.status, r.reason) for r in expected_rows(scenario, VOIDS).values())
    assert set(cases) == CASES, set(cases) ^ CASES
    assert cases["blocked", "self_referral"] == 4  # same customer, email, name, address
    bulk_b = next(o for o in scenario.orders if o.merchant == SHOP_B and o.order_id >= 100_000)
    early, late = scenario.order(93_001), scenario.order(93_005)  # revoked before/after release
    flows = Flows(env, core_url, tmp_path)
    produce_codes(settings, env, scenario)
    flows.start()
    try:
        # 1. History: what later orders are judged against is decided first.
        produce(settings, env, scenario.phase(HISTORY))
        settle("the history", phase_mismatch(scenario, HISTORY, core_url, db), flows)
        settle(
            "the first order of friend 9004 on referral.friends",
            lambda: friend_orders_logged(settings, env, {90_041}),
            flows,
        )

        # 2. The bulk, with a SIGKILL of both flows in the middle of it.
        bulk = scenario.phase(BULK)
        cut = len(bulk) * 3 // 5
        produce(settings, env, bulk[:cut])
        wanted = len(expected_rows(scenario, BULK))
        wait_until(lambda: len(stored_rows(core_url)) >= 400, TIMEOUT, "400 referrals", None, 0.1)
        decided_at_kill = len(stored_rows(core_url))
        flows.kill()
        assert decided_at_kill < wanted  # mid-stream: the rest is not even produced yet
        produce(settings, env, bulk[cut:])
        flows.start()
        settle("the bulk", phase_mismatch(scenario, BULK, core_url, db), flows)
        earned = balance_of(db, bulk_b.key).balance
        assert balance_of(db, bulk_b.key).pending == SHOP_B.terms.friend_points  # under review

        # 3. Refunds and cancellations; the IP's referral after its week.
        produce(settings, env, scenario.phase(VOIDS))
        settle("the revocations", phase_mismatch(scenario, VOIDS, core_url, db), flows)
        held = sum(b.pending for b in stored_balances(db).values())
        assert held > 0  # shop B's rewards wait for their review period
        ledger = referral_ledger(db)
        for role in ("advocate", "friend"):
            # Revoked in review: reversed from pending, never released...
            assert ("release", f"referral:{early.referral_id}:{role}") not in ledger
            assert ledger["reverse", f"{early.referral_id}:{role}"] == 1
            # ...revoked after it: released when the refund's time came, then reversed.
            assert ledger["release", f"referral:{late.referral_id}:{role}"] == 1
            assert ledger["reverse", f"{late.referral_id}:{role}"] == 1

        # 4. The clock job, after every review period: what is still pending is released.
        log = run_clock(env, TICK_AT)
        assert " due, " in log
        settle("the releases", phase_mismatch(scenario, TICKS, core_url, db), flows)
        assert sum(b.pending for b in stored_balances(db).values()) == 0
        after_review = balance_of(db, bulk_b.key)
        assert after_review.balance == earned + SHOP_B.terms.friend_points
        assert after_review.due_at is None
        # One reward per friend: never two referral bonuses for one friend.
        friend_bonuses = Counter(
            d["_id"]
            for d in db.points_transactions.aggregate(
                [
                    {"$match": {"source": "referral", "type": "bonus"}},
                    {"$match": {"source_id": {"$regex": ":friend$"}}},
                    {"$group": {"_id": "$customer_id", "n": {"$sum": 1}}},
                    {"$match": {"n": {"$gt": 1}}},
                ]
            )
        )
        assert not friend_bonuses

        # Replay from offset 0, fresh recovery store, no rows: the same rows, and the points
        # flow applies none of the re-posted rewards twice.
        flows.stop_referrals()
        rows_before = full_rows(core_url)
        balances_before = sorted(db.point_balances.find(), key=lambda d: str(d["_id"]))
        ledger_before = sorted(db.points_transactions.find(), key=lambda d: str(d["_id"]))
        posted = referral_commands(settings, env)
        with psycopg.connect(core_url) as conn:
            conn.execute("DELETE FROM referrals")
        flows.referrals_recovery = tmp_path / "referrals-replay-recovery"
        flows.start(points=False)
        settle(
            "the replayed referrals",
            lambda: None if full_rows(core_url) == rows_before else "rows differ",
            flows,
        )
        settle(
            "every reward and reversal posted again",
            lambda: reposted(settings, env, posted),
            flows,
            interval=2.0,
        )
        markers = produce_markers(settings, env)
        settle(
            "the points flow at the end of points.commands",
            lambda: (
                None
                if db.point_balances.count_documents({"_id": {"$in": sorted(markers)}})
                == len(markers)
                else "not yet"
            ),
            flows,
        )
        mine = {"_id": {"$nin": sorted(markers)}}
        assert sorted(db.point_balances.find(mine), key=lambda d: str(d["_id"])) == balances_before
        entries = sorted(
            db.points_transactions.find({"shopify_customer_id": {"$lt": MARKER}}),
            key=lambda d: str(d["_id"]),
        )
        assert entries == ledger_before
        assert phase_mismatch(scenario, TICKS, core_url, db)() is None
        assert list(read_log(settings, env.topic(REFERRAL_DLQ))) == []
        assert list(read_log(settings, env.topic(POINTS_DLQ))) == []
    finally:
        flows.stop()
