"""Referrals at scale on the real stack, with the points flow beside the referrals flow.

More than 2,000 referred friends of two merchants (one paying rewards at once, one holding them
for a ten-day review), a fifth of the webhooks delivered twice and many orders as create, paid
and updated; every fraud case; revocations by full and partial refunds and by cancellations,
before and after the review period; friends' earlier paid orders arriving after their referred
one (revoking a completed referral, blocking a pending one, or becoming the referral); the
clock job releasing what is still pending. Both flows are SIGKILLed mid-stream and restarted on
their recovery stores, and the referrals flow is then replayed from offset 0 with a fresh
recovery store.

The judge is tests/integration/referral_harness.py: each case's referral as the rules say, and
every advocate's and friend's balance document computed from order earns, rewards and
reversals. PostgreSQL `referrals`, MongoDB `point_balances` and the referral entries of
`points_transactions` must equal it after each phase, and the replay must leave all three as
they were. So must the flow's other outputs: each row's Redis cache entry holds the row's
document, and `referral.completed` / `referral.revoked` carry one event per referral completed
/ revoked, with the oracle's fields (repeated after a SIGKILL or the replay, with the same id).
Time is the records' own: webhooks carry the time the API received them, and the clock job is
run for one given instant.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import psycopg
import pymongo
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from psycopg.rows import class_row
from pymongo.database import Database

from connectors.avro import AvroDecoder
from connectors.referral_records import COLUMNS, ReferralRow
from connectors.shopify import encode_body, kafka_headers, partition_key
from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import ROOT, FlowProcess, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import (
    POINTS_COMMANDS,
    POINTS_DLQ,
    REFERRAL_COMMANDS,
    REFERRAL_COMPLETED,
    REFERRAL_DLQ,
    REFERRAL_FRIENDS,
    REFERRAL_REVOKED,
    SHOPIFY_ORDERS,
)
from loyalty import ids
from loyalty.commands import customer_key, encode_adjustment
from loyalty.customers import Adjustment
from loyalty.referral_commands import (
    decode_code_record,
    decode_friend_record,
    encode_code_created,
    referral_key,
)
from loyalty.referrals import Claim, FriendOrder
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
    EventRecord,
    Row,
    Scenario,
    build,
    expected_events,
    expected_points,
    expected_rows,
)

pytestmark = pytest.mark.integration

TIMEOUT = 240.0  # per wait, generous: other jobs may share this machine's two CPUs
MARKER = 99_000  # customers of the markers that tell the points flow has read to the end
ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner picks by key
CACHE_SECONDS = 3_600  # the referral cache's TTL here: no entry expires during the test
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
    ("revoked", "not_first_order"),
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
                REFERRAL_CACHE_SECONDS=str(CACHE_SECONDS),
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
            partition=ANY_PARTITION if d.partition is None else d.partition,
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


def read_values(settings: Settings, topic: str) -> list[bytes | None]:
    """Every record's value on a topic, its partitions read together to their ends (much
    quicker than one after the other: the broker holds each fetch of an empty one)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"refscale-{uuid.uuid4()}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        values: list[bytes | None] = []
        ended: set[int] = set()
        while len(ended) < len(partitions):
            m = consumer.poll(10)
            assert m is not None, f"no end of {topic} in sight"
            error = m.error()
            if error is None:
                values.append(m.value())
            elif error.code() == KafkaError._PARTITION_EOF:
                ended.add(cast(int, m.partition()))
            else:
                raise AssertionError(f"reading {topic}: {error}")
        return values
    finally:
        consumer.close()


def referral_rows(core_url: str) -> list[ReferralRow]:
    """The stored referrals as the API and the cache show them."""
    query = f"SELECT merchant_id::text AS merchant_id, {COLUMNS} FROM referrals"  # noqa: S608
    with (
        psycopg.connect(core_url) as conn,
        conn.cursor(row_factory=class_row(ReferralRow)) as cur,
    ):
        cur.execute(query)
        return cur.fetchall()


class Outputs:
    """The referrals flow's outputs besides its rows and commands: the Redis referral cache
    and the Avro events."""

    def __init__(self, settings: Settings, env: Deployment, core_url: str) -> None:
        self.settings, self.env, self.core_url = settings, env, core_url
        self.cache_prefix = f"{env.redis_prefix}referral:"
        self.redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self.decoders: dict[str, AvroDecoder] = {}

    def close(self) -> None:
        self.redis.close()

    def cache_keys(self) -> set[str]:
        return set(self.redis.scan_iter(match=f"{self.cache_prefix}*", count=1_000))

    def forget_cache(self) -> None:
        """A fresh start: no entries."""
        keys = sorted(self.cache_keys())
        if keys:
            self.redis.unlink(*keys)

    def cache_mismatch(self) -> str | None:
        """Whether some row's entry (`referral:{merchant}:{id}`) does not hold the row's
        document, or outlives the TTL, or an entry has no row. Strict also after a SIGKILL:
        a refresh the kill cut short, after its upsert's commit, is made by the restarted
        flow, which writes the same batch again and refreshes every row of it."""
        rows = {
            f"{self.cache_prefix}{r.merchant_id}:{r.referral_id}": r
            for r in referral_rows(self.core_url)
        }
        pipe = self.redis.pipeline(transaction=False)
        for key in rows:
            pipe.hget(key, "document")
            pipe.pttl(key)
        found = pipe.execute()
        entries = zip(rows, found[0::2], found[1::2], strict=True)
        got: dict[str, Any] = {}
        want = {key: row.document() for key, row in rows.items()}
        for key, document, ttl in entries:
            if document is not None and not 0 < ttl <= CACHE_SECONDS * 1000:
                return f"cache entry {key} lives {ttl} ms"
            got[key] = None if document is None else json.loads(document)
        got |= dict.fromkeys(self.cache_keys() - rows.keys(), "an entry without a row")
        return diff("cached referrals", got, want)

    def events(self, contract: str) -> list[dict[str, Any]]:
        """Every event on the contract's topic, decoded (the flow registered its schema when
        it started)."""
        topic = self.env.topic(contract)
        decode = self.decoders.get(contract)
        if decode is None:
            with SchemaRegistryClient({"url": self.settings.schema_registry_url}) as registry:
                decode = self.decoders[contract] = AvroDecoder.registered(registry, contract, topic)
        return [decode(value) for value in read_values(self.settings, topic)]

    def events_mismatch(self, want: dict[str, dict[str, EventRecord]]) -> str | None:
        """Whether the events differ from the oracle's: one event id per referral, its copies
        (after a SIGKILL, a replay) all alike, its fields the oracle's."""
        for contract, expected in want.items():
            copies: dict[str, list[EventRecord]] = defaultdict(list)
            for event in self.events(contract):
                record = dict(event)
                event_id = str(record.pop("event_id"))
                assert record.pop("schema_version") == "1.0.0"
                for field in ("referral_id", "merchant_id"):
                    record[field] = str(record[field])
                copies[event_id].append(record)
            unlike = [i for i, c in copies.items() if any(r != c[0] for r in c)]
            if unlike:
                return f"{contract}: the copies of event {unlike[0]} differ: {copies[unlike[0]]}"
            ids_of: dict[str, set[str]] = defaultdict(set)
            for event_id, c in copies.items():
                ids_of[c[0]["referral_id"]].add(event_id)
            several = [r for r, i in ids_of.items() if len(i) > 1]
            if several:
                return f"{contract}: referral {several[0]} has events {sorted(ids_of[several[0]])}"
            got = {c[0]["referral_id"]: c[0] for c in copies.values()}
            found = diff(contract, got, expected)
            if found is not None:
                return found
        return None


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
    scenario: Scenario, phase: int, core_url: str, db: Database[Any], outputs: Outputs
) -> Callable[[], str | None]:
    rows = expected_rows(scenario, phase)
    points = expected_points(scenario, phase)
    events = expected_events(scenario, phase)

    def mismatch() -> str | None:
        return (
            diff("referrals", stored_rows(core_url), rows)
            or diff("balances", stored_balances(db), points.balances)
            or diff("referral ledger entries", referral_ledger(db), points.ledger)
            or outputs.cache_mismatch()
            or outputs.events_mismatch(events)
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


def claimed(settings: Settings, env: Deployment) -> set[str]:
    """The referrals the friends' states asked a code about (claims on referral.commands)."""
    records = map(decode_code_record, read_values(settings, env.topic(REFERRAL_COMMANDS)))
    return {r.referral_id for r in records if isinstance(r, Claim)}


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
    # Friends' earlier paid orders, received after the referred one though stamped before it.
    pairs = [(o, o.earlier) for o in scenario.orders if o.earlier is not None]
    assert all(e.paid_at < o.paid_at and e.phase >= o.phase for o, e in pairs)
    behind = [o for o, e in pairs if e.phase == o.phase]  # arriving while it is pending
    assert len(behind) == 3
    assert cases["revoked", "not_first_order"] == len(pairs) - len(behind) == 7
    assert sum(e.code is not None for _, e in pairs) == 4  # the referral moves to it
    in_review = scenario.order(94_031)  # shop B: revoked while its rewards were pending
    flows = Flows(env, core_url, tmp_path)
    outputs = Outputs(settings, env, core_url)
    produce_codes(settings, env, scenario)
    flows.start()
    try:
        # 1. History: what later orders are judged against is decided first.
        produce(settings, env, scenario.phase(HISTORY))
        settle("the history", phase_mismatch(scenario, HISTORY, core_url, db, outputs), flows)
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
        settle("the bulk", phase_mismatch(scenario, BULK, core_url, db, outputs), flows)
        earned = balance_of(db, bulk_b.key).balance
        assert balance_of(db, bulk_b.key).pending == SHOP_B.terms.friend_points  # under review
        # The earlier orders right behind their referred one came while it was pending: each
        # was claimed (asked its code), then blocked as not_first_order before the answer.
        asked = claimed(settings, env)
        assert all(o.referral_id in asked for o in behind), [o.order_id for o in behind]

        # 3. Refunds and cancellations; the IP's referral after its week.
        produce(settings, env, scenario.phase(VOIDS))
        settle("the revocations", phase_mismatch(scenario, VOIDS, core_url, db, outputs), flows)
        held = sum(b.pending for b in stored_balances(db).values())
        assert held > 0  # shop B's rewards wait for their review period
        ledger = referral_ledger(db)
        for role in ("advocate", "friend"):
            # Revoked in review: reversed from pending, never released...
            for revoked in (early, in_review):
                assert ("release", f"referral:{revoked.referral_id}:{role}") not in ledger
                assert ledger["reverse", f"{revoked.referral_id}:{role}"] == 1
            # ...revoked after it: released when the refund's time came, then reversed.
            assert ledger["release", f"referral:{late.referral_id}:{role}"] == 1
            assert ledger["reverse", f"{late.referral_id}:{role}"] == 1
        # Revoked by an earlier order stamped before the completion: dated at the completion.
        revoked_late = stored_rows(core_url)[in_review.referral_id]
        assert (revoked_late.status, revoked_late.reason) == ("revoked", "not_first_order")
        assert revoked_late.decided_at == in_review.paid_at

        # 4. The clock job, after every review period: what is still pending is released.
        log = run_clock(env, TICK_AT)
        assert " due, " in log
        settle("the releases", phase_mismatch(scenario, TICKS, core_url, db, outputs), flows)
        assert sum(b.pending for b in stored_balances(db).values()) == 0
        after_review = balance_of(db, bulk_b.key)
        assert after_review.balance == earned + SHOP_B.terms.friend_points
        assert after_review.due_at is None
        # One reward per friend: never two referral bonuses standing for one friend (a friend
        # whose earlier order became the referral had the first one reversed).
        standing: dict[str, set[str]] = defaultdict(set)
        friend_entries = db.points_transactions.find(
            {"source": "referral", "source_id": {"$regex": ":friend$"}},
            {"customer_id": 1, "type": 1, "source_id": 1},
        )
        for d in sorted(friend_entries, key=lambda d: d["type"] != "bonus"):  # bonuses first
            if d["type"] == "bonus":
                standing[d["customer_id"]].add(d["source_id"])
            else:
                standing[d["customer_id"]].discard(d["source_id"])
        assert all(len(rewards) <= 1 for rewards in standing.values())
        assert sum(len(s) == 0 for s in standing.values()) > 0  # revoked ones: none left

        # Replay from offset 0, fresh recovery store, no rows: the same rows, and the points
        # flow applies none of the re-posted rewards twice.
        flows.stop_referrals()
        rows_before = full_rows(core_url)
        balances_before = sorted(db.point_balances.find(), key=lambda d: str(d["_id"]))
        ledger_before = sorted(db.points_transactions.find(), key=lambda d: str(d["_id"]))
        posted = referral_commands(settings, env)
        with psycopg.connect(core_url) as conn:
            conn.execute("DELETE FROM referrals")
        outputs.forget_cache()  # a fresh store: its cache goes with it
        flows.referrals_recovery = tmp_path / "referrals-replay-recovery"
        flows.start(points=False)
        settle(
            "the replayed referrals",
            lambda: None if full_rows(core_url) == rows_before else "rows differ",
            flows,
        )
        replayed = expected_events(scenario, TICKS)
        settle(
            "the replayed cache and events",
            lambda: outputs.cache_mismatch() or outputs.events_mismatch(replayed),
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
        assert phase_mismatch(scenario, TICKS, core_url, db, outputs)() is None
        assert list(read_log(settings, env.topic(REFERRAL_DLQ))) == []
        assert list(read_log(settings, env.topic(POINTS_DLQ))) == []
        # The replay announced every referral again, under the same event ids.
        repeated = [outputs.events(c) for c in (REFERRAL_COMPLETED, REFERRAL_REVOKED)]
        assert all(len(e) >= 2 * len(replayed[c]) for e, c in zip(repeated, replayed, strict=True))
    finally:
        flows.stop()
        outputs.close()
