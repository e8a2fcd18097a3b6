"""VIP tiers at scale on the real stack, the points flow beside the tiers flow.

500 customers of one merchant place about 5,500 orders (paid webhooks, a fifth delivered
twice), some refunded in part or in full and some cancelled, crossing tier thresholds up and
down. The merchant's tiers change mid-stream: a second version, in force from an hour into the
orders, lowers the thresholds and raises a multiplier and a bonus. Both flows are SIGKILLed
after the first half and restarted on their recovery stores; at the end the tiers flow is
replayed from offset 0 with a fresh recovery store.

The judge:
- tiers: each customer's net base points (order earns less reversals, from the ledger rules
  folded over `shopify.orders`), under the version in force at their latest change;
- entry bonuses: every tier a customer entered, walking their order changes in the log's order
  under the version in force at each (lifetime: each tier's bonus once);
- balances: the points flow's rules folded over `points.commands` as it stands (order earns
  multiplied by the tier assigned before them in the log, bonuses, reversals);
and PostgreSQL `customer_tiers`, the bonus commands on `points.commands`, MongoDB
`point_balances` and the merchant's counts must equal it after the kill and after the replay.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest
from confluent_kafka import Producer
from pymongo.database import Database

from connectors.merchants import upsert_merchant
from connectors.shopify import encode_body, kafka_headers, partition_key
from connectors.tier_configs import save_tiers
from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.commands import decode_command
from loyalty.customers import TierChange
from loyalty.ledger import ORDER_SOURCES, Kind, PointsChange, Source
from loyalty.policy import Policy
from loyalty.tier_config import TierConfig, parse_tiers
from loyalty.tiers import qualified
from tests.integration.points_harness import fold, read_log

pytestmark = pytest.mark.integration

SHOP = "tiers-scale.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
CUSTOMERS = 500
TIMEOUT = 300.0
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
SWITCH = BASE + timedelta(hours=1)  # the second version's effective time
FIRST = parse_tiers(
    {
        "metric": "points_earned",
        "period": "lifetime",
        "tiers": [
            {"name": "Silver", "threshold": 600, "multiplier": "1.25", "entry_bonus": 50},
            {"name": "Gold", "threshold": 1500, "multiplier": "1.5", "entry_bonus": 150},
            {"name": "Platinum", "threshold": 3000, "multiplier": "2", "entry_bonus": 400},
        ],
    }
)
SECOND = parse_tiers(
    {
        "metric": "points_earned",
        "period": "lifetime",
        "tiers": [
            {"name": "Silver", "threshold": 500, "multiplier": "1.25", "entry_bonus": 50},
            {"name": "Gold", "threshold": 1200, "multiplier": "1.75", "entry_bonus": 200},
            {"name": "Platinum", "threshold": 2500, "multiplier": "2.5", "entry_bonus": 400},
        ],
    }
)


@dataclass(frozen=True)
class Delivery:
    topic: str
    body: dict[str, Any]
    at: datetime


def config_at(at: datetime) -> TierConfig | None:
    if at >= SWITCH:
        return SECOND
    return FIRST if at >= BASE else None


def scenario(seed: int = 11) -> tuple[list[Delivery], list[Delivery]]:
    """The two halves of the deliveries, each in time order, duplicates included."""
    rng = random.Random(seed)
    halves: tuple[list[Delivery], list[Delivery]] = ([], [])
    order_id, refund_id = 1_000_000, 9_000_000
    for customer in range(1, CUSTOMERS + 1):
        for n in range(rng.randint(8, 14)):
            order_id += 1
            half = 0 if n < 5 else 1
            start = BASE if half == 0 else SWITCH
            at = start + timedelta(seconds=rng.randint(1, 3_000))
            subtotal = Decimal(rng.randint(2_000, 40_000)) / 100
            body = order_body(order_id, customer, subtotal)
            deliveries = [Delivery("orders/paid", body, at)]
            roll = rng.random()
            if roll < 0.12:
                refund_id += 1
                amount = (
                    subtotal if rng.random() < 0.4 else (subtotal / 3).quantize(Decimal("0.01"))
                )
                refund = {
                    "id": refund_id,
                    "order_id": order_id,
                    "created_at": at.isoformat(),
                    "refund_line_items": [{"subtotal": str(amount), "total_tax": "0.00"}],
                }
                deliveries.append(Delivery("refunds/create", refund, at + timedelta(seconds=60)))
            elif roll < 0.16:
                cancelled = {**body, "cancelled_at": at.isoformat()}
                deliveries.append(
                    Delivery("orders/cancelled", cancelled, at + timedelta(seconds=90))
                )
            for d in deliveries:
                halves[half].append(d)
                if rng.random() < 0.2:  # delivered twice
                    halves[half].append(Delivery(d.topic, d.body, d.at + timedelta(seconds=5)))
    return sorted(halves[0], key=lambda d: d.at), sorted(halves[1], key=lambda d: d.at)


def order_body(order_id: int, customer: int, subtotal: Decimal) -> dict[str, Any]:
    return {
        "id": order_id,
        "financial_status": "paid",
        "subtotal_price": str(subtotal),
        "total_tax": "0.00",
        "taxes_included": False,
        "test": False,
        "currency": "USD",
        "customer": {"id": customer},
    }


def produce(settings: Settings, env: Deployment, deliveries: list[Delivery]) -> None:
    out = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "linger.ms": 10,
            "enable.idempotence": True,
        }
    )
    for n, d in enumerate(deliveries):
        headers = {"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Topic": d.topic}
        out.produce(
            env.topic(SHOPIFY_ORDERS),
            key=partition_key(SHOP, d.topic, d.body),
            value=encode_body(d.body),
            headers=kafka_headers(headers, f"corr-{n}", Policy()),
            timestamp=int(d.at.timestamp() * 1000),
        )
        out.poll(0)
    assert out.flush(60) == 0


# -------------------------------------------------------------------------------- oracle


@dataclass
class Judged:
    tiers: dict[int, str | None]
    bonuses: set[tuple[int, str, int]]  # (customer, source id, points)
    balances: dict[str, tuple[int, int]]  # merchant:customer -> (balance, seq)
    moved_by_switch: int  # customers whose tier the second version decided differently


def judge(settings: Settings, env: Deployment) -> Judged:
    expected = fold(settings, env)
    net: Counter[int] = Counter()
    last: dict[int, datetime] = {}
    for change in expected.changes.values():
        sign = 1 if change.kind is Kind.EARN else -1
        net[change.customer] += sign * change.points
        last[change.customer] = max(change.at, last.get(change.customer, change.at))
    tiers: dict[int, str | None] = {}
    moved = 0
    for customer, at in last.items():
        config = config_at(at)
        assert config is not None
        tiers[customer] = _tier(config, net[customer])
        moved += at >= SWITCH and tiers[customer] != _tier(FIRST, net[customer])
    return Judged(tiers, _bonuses(settings, env), expected.balances, moved)


def _tier(config: TierConfig, points: int) -> str | None:
    index = qualified(Decimal(points), config.tiers)
    return None if index is None else config.tiers[index].name


def _bonuses(settings: Settings, env: Deployment) -> set[tuple[int, str, int]]:
    """Walk each customer's order changes in the log's order, as the tiers flow does."""
    net: Counter[int] = Counter()
    clock: dict[int, datetime] = {}
    held: dict[int, str | None] = defaultdict(lambda: None)
    paid: dict[int, set[str]] = defaultdict(set)
    seen: set[str] = set()
    bonuses: set[tuple[int, str, int]] = set()
    for message in read_log(settings, env.topic(POINTS_COMMANDS)):
        change = decode_command(message.value)
        if not isinstance(change, PointsChange) or change.source not in ORDER_SOURCES:
            continue
        if change.event_id in seen:  # re-sent after a crash: counted once, by both flows
            continue
        seen.add(change.event_id)
        c = change.customer
        net[c] += change.points if change.kind is Kind.EARN else -change.points
        clock[c] = max(change.at, clock.get(c, change.at))
        config = config_at(clock[c])
        assert config is not None
        index = qualified(Decimal(net[c]), config.tiers)
        names = [t.name for t in config.tiers]
        holding = held[c]
        before = names.index(holding) if holding is not None and holding in names else None
        if index is not None and (before is None or index > before):
            for tier in config.tiers[(0 if before is None else before + 1) : index + 1]:
                if tier.entry_bonus and tier.name not in paid[c]:
                    paid[c].add(tier.name)
                    tier_id = ids.event_id(MERCHANT, "tier", tier.name.casefold())
                    bonuses.add((c, f"{c}:{tier_id}:lifetime", tier.entry_bonus))
        held[c] = None if index is None else names[index]
    return bonuses


# ------------------------------------------------------------------------------- reading


def stored_tiers(url: str) -> dict[int, str | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT customer_id, tier FROM customer_tiers").fetchall()
    return dict(rows)


def stored_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT counts FROM vip_tier_counts").fetchone()
    return {} if row is None else dict(row[0])


def sent_bonuses(settings: Settings, env: Deployment) -> set[tuple[int, str, int]]:
    out = set()
    for message in read_log(settings, env.topic(POINTS_COMMANDS)):
        c = decode_command(message.value)
        if isinstance(c, PointsChange) and c.source is Source.TIER:
            out.add((c.customer, c.source_id, c.points))
    return out


def tier_commands(settings: Settings, env: Deployment) -> list[TierChange]:
    commands = (decode_command(m.value) for m in read_log(settings, env.topic(POINTS_COMMANDS)))
    return [c for c in commands if isinstance(c, TierChange)]


def stored_balances(db: Database[Any]) -> dict[str, tuple[int, int]]:
    return {
        f"{d['merchant_id']}:{d['shopify_customer_id']}": (d["balance"], d["seq"])
        for d in db.point_balances.find()
    }


def bonus_entries(db: Database[Any]) -> int:
    return db.points_transactions.count_documents({"source": Source.TIER.value})


# --------------------------------------------------------------------------------- flows


class Flows:
    def __init__(self, env: Deployment, core_url: str, workdir: Path) -> None:
        self.env, self.core_url, self.workdir = env, core_url, workdir
        self.runs = 0
        self.tiers_recovery = workdir / "tiers-recovery"
        self.points_recovery = workdir / "points-recovery"
        self.running: list[FlowProcess] = []

    def start(self) -> None:
        self.runs += 1
        self.running = [
            FlowProcess(
                self.env,
                self.workdir / f"tiers-{self.runs}.log",
                flow="tiers",
                recovery=self.tiers_recovery,
                POSTGRES_URL=self.core_url,
            ),
            FlowProcess(
                self.env, self.workdir / f"points-{self.runs}.log", recovery=self.points_recovery
            ),
        ]

    def kill(self) -> None:
        for process in self.running:
            process.kill()  # SIGKILL: no snapshot, no flush
        self.running = []

    def stop(self) -> None:
        for process in self.running:
            process.stop()
        self.running = []


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    with isolated_deployment(settings, "tierscale", tmp_path) as deployment:
        yield deployment


@pytest.fixture
def core_url(settings: Settings) -> Iterator[str]:
    with fresh_postgres(settings, "tierscale") as url:
        yield url


@pytest.fixture
def db(settings: Settings, env: Deployment) -> Iterator[Database[Any]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo_url, tz_aware=True
    )
    yield client[env.database]
    client.close()


def save_versions(url: str) -> None:
    """Both versions, in force from BASE and SWITCH (set here: the test's orders are dated)."""
    with psycopg.connect(url) as conn:
        upsert_merchant(conn, "k", shop=SHOP, secret="s", points_per_unit=Decimal(1), locale="en")
        conn.commit()
        for config, at in ((FIRST, BASE), (SECOND, SWITCH)):
            version = save_tiers(conn, MERCHANT, config).version
            conn.execute(
                "UPDATE vip_tier_programs SET effective_at = %s WHERE version = %s",
                (at, version),
            )
        conn.commit()


def settled(settings: Settings, env: Deployment, core_url: str, db: Database[Any]) -> Judged | None:
    """The judgement once every output equals it; None while the flows are still at work."""
    judged = judge(settings, env)
    if stored_tiers(core_url) != judged.tiers:
        return None
    if sent_bonuses(settings, env) != judged.bonuses:
        return None
    if stored_balances(db) != judged.balances:
        return None
    return judged


@pytest.mark.timeout(900)  # about 90 s alone; room for a busy machine
def test_tiers_at_scale_survive_a_sigkill_and_a_replay(
    settings: Settings, env: Deployment, core_url: str, db: Database[Any], tmp_path: Path
) -> None:
    first_half, second_half = scenario()
    orders = {d.body["id"] for d in first_half + second_half if d.topic == "orders/paid"}
    assert len(orders) >= 5_000
    save_versions(core_url)
    flows = Flows(env, core_url, tmp_path)
    flows.start()
    try:
        produce(settings, env, first_half)
        wait_until(lambda: len(stored_tiers(core_url)) >= CUSTOMERS // 2, TIMEOUT, "half")
        flows.kill()
        flows.start()
        produce(settings, env, second_half)
        outcome: list[Judged] = []

        def done() -> bool:
            judged = settled(settings, env, core_url, db)
            outcome[:] = [] if judged is None else [judged]
            return judged is not None

        # Cheap first: every customer has a row. Then the judgement, which reads both logs.
        wait_until(lambda: len(stored_tiers(core_url)) == CUSTOMERS, TIMEOUT, "every customer")
        wait_until(done, TIMEOUT, "tiers, bonuses and balances as the rules say", None, 5.0)
        (judged,) = outcome
        assert len(judged.tiers) == CUSTOMERS
        assert judged.moved_by_switch > 0  # the second version decided some customers
        assert set(judged.tiers.values()) == {None, "Silver", "Gold", "Platinum"}
        multiplied = db.points_transactions.count_documents({"multiplier": {"$exists": True}})
        assert multiplied > 0
        bonuses = bonus_entries(db)
        assert bonuses == len(judged.bonuses)  # each applied once, whatever was re-sent
        counts = Counter(t or "" for t in judged.tiers.values())
        wait_until(lambda: stored_counts(core_url) == counts, TIMEOUT, "counts")

        # Replay the tiers flow from offset 0 with a fresh recovery store.
        flows.stop()
        before = tier_commands(settings, env)
        with psycopg.connect(core_url) as conn:
            conn.execute("DELETE FROM customer_tiers")
            conn.execute("DELETE FROM vip_tier_counts")
        flows.tiers_recovery = tmp_path / "tiers-recovery-replay"
        flows.start()
        wait_until(lambda: stored_tiers(core_url) == judged.tiers, TIMEOUT, "replayed tiers")
        wait_until(lambda: stored_counts(core_url) == counts, TIMEOUT, "replayed counts")
        # The replay decides each assignment once more (the first run's log may hold some
        # twice: those re-sent after the SIGKILL).
        decisions = set(map(repr, before))
        wait_until(
            lambda: len(tier_commands(settings, env)) >= len(before) + len(decisions),
            TIMEOUT,
            "re-sent",
        )
        assert set(map(repr, tier_commands(settings, env))) == decisions
        again = settled(settings, env, core_url, db)
        assert again is not None
        assert again.balances == judged.balances
        assert bonus_entries(db) == bonuses
    finally:
        flows.stop()
