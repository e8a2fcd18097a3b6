"""The tiers flow on the real stack: a merchant's tiers saved in PostgreSQL, order changes and a
clock tick on points.commands in; tier assignments and entry bonuses back on points.commands,
`vip_tier.assigned` events (Avro, through the schema registry) and PostgreSQL `customer_tiers`
out, with the due times the clock job reads. Run again from offset 0 with a fresh recovery
store, it decides the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.avro import AvroDecoder
from connectors.merchants import upsert_merchant
from connectors.tier_configs import TierHistory, load_versions, save_tiers
from loyalnest.clock import due_tiers
from loyalnest.harness.deployment import Deployment, fresh_postgres
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS, TIERS_DLQ, VIP_TIER_ASSIGNED
from loyalty import ids
from loyalty.commands import customer_key, decode_command, encode_change, encode_tick
from loyalty.customers import Tick, TierChange
from loyalty.ledger import Kind, PointsChange, Source
from loyalty.tier_config import parse_tiers
from loyalty.tier_customers import tier_id
from tests.integration.points_harness import read_log

pytestmark = pytest.mark.integration
BAD_KEY = b"bad"

SHOP = "tiers-flow.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
CONFIG = parse_tiers(
    {
        "metric": "points_earned",
        "period": "rolling_12_months",
        "tiers": [
            {"name": "Silver", "threshold": 100, "multiplier": "1.5", "entry_bonus": 20},
            {"name": "Gold", "threshold": 300, "multiplier": "2", "entry_bonus": 50},
        ],
    }
)


@pytest.fixture
def core_url(settings: Settings) -> Iterator[str]:
    with fresh_postgres(settings, "tiers") as url:
        yield url


def change(customer: int, order_id: int, kind: Kind, points: int, at: datetime) -> PointsChange:
    earn = kind is Kind.EARN
    return PointsChange(
        shop=SHOP,
        customer=customer,
        source=Source.ORDER if earn else Source.CANCEL,
        source_id=str(order_id),
        kind=kind,
        points=points,
        text_key="points.earned.order" if earn else "points.reversed.cancel",
        locale="en",
        at=at,
        order_id=order_id,
        key="earn" if earn else "cancel",
        amount=Decimal(points) / 10,
    )


def save(url: str) -> datetime:
    """The merchant and its tiers; when they take effect."""
    with psycopg.connect(url) as conn:
        upsert_merchant(conn, "k", shop=SHOP, secret="s", points_per_unit=Decimal(1), locale="en")
        conn.commit()
        return save_tiers(conn, MERCHANT, CONFIG).effective_at


def produce(settings: Settings, env: Deployment, start: datetime) -> None:
    at = start + timedelta(minutes=1)
    records = [
        change(1, 11, Kind.EARN, 120, at),  # Silver
        change(2, 21, Kind.EARN, 350, at),  # Gold, skipping Silver: both bonuses
        change(3, 31, Kind.EARN, 150, at),  # Silver...
        change(3, 31, Kind.REVERSE, 150, at + timedelta(minutes=1)),  # ...and out again
        change(4, 41, Kind.EARN, 50, at),  # no tier
    ]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    topic = env.topic(POINTS_COMMANDS)
    for c in records:
        producer.produce(topic, key=customer_key(MERCHANT, c.customer), value=encode_change(c))
    producer.produce(topic, key=BAD_KEY, value=b'{"type":"points.change"}')  # a dead letter
    # A year and a day later, customer 1's order has aged out of the window.
    tick = Tick(MERCHANT, 1, at + timedelta(days=366))
    producer.produce(topic, key=customer_key(MERCHANT, 1), value=encode_tick(tick))
    assert producer.flush(30) == 0


def rows(url: str) -> dict[int, tuple[str | None, int]]:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT customer_id, tier, revision FROM customer_tiers").fetchall()
    return {customer: (tier, revision) for customer, tier, revision in found}


EXPECTED = {1: (None, 2), 2: ("Gold", 1), 3: (None, 2), 4: (None, 0)}


def sent(settings: Settings, env: Deployment) -> list[Any]:
    log = read_log(settings, env.topic(POINTS_COMMANDS))
    commands = [decode_command(m.value) for m in log if m.key != BAD_KEY]
    return [
        c
        for c in commands
        if isinstance(c, TierChange) or (isinstance(c, PointsChange) and c.source is Source.TIER)
    ]


# Each run from offset 0: 5 tier changes and 4 entry bonuses on points.commands, an event for
# each tier change, and one dead letter.
SENT_PER_RUN = 9
EVENTS_PER_RUN = 5


def run_flow(settings: Settings, env: Deployment, url: str, tmp_path: Path, run: int) -> None:
    """The flow from offset 0 until every output of this run is out. The sinks write each
    partition's batch independently, so the rows can be complete while the partition holding
    the bad record is yet to be read: wait for all three outputs, not the rows alone."""
    flow = FlowProcess(
        env,
        tmp_path / f"tiers-{run}.log",
        flow="tiers",
        recovery=tmp_path / f"recovery-{run}",
        POSTGRES_URL=url,
    )

    def count(topic: str) -> int:
        return len(list(read_log(settings, env.topic(topic))))

    def settled() -> bool:
        return (
            rows(url) == EXPECTED
            and count(TIERS_DLQ) >= run
            and count(VIP_TIER_ASSIGNED) >= EVENTS_PER_RUN * run
            and len(sent(settings, env)) >= SENT_PER_RUN * run
        )

    try:
        wait_until(settled, 120, "every customer's tier, bonus and dead letter", flow, 0.25)
    finally:
        flow.stop()


def test_tiers_are_decided_from_order_changes_and_a_replay_decides_the_same(
    settings: Settings, rfm_env: Deployment, core_url: str, tmp_path: Path
) -> None:
    effective_at = save(core_url)
    produce(settings, rfm_env, effective_at)

    run_flow(settings, rfm_env, core_url, tmp_path, 1)

    first = sent(settings, rfm_env)
    tiers = sorted((c.customer, c.revision, c.tier) for c in first if isinstance(c, TierChange))
    assert tiers == [(1, 1, "Silver"), (1, 2, None), (2, 1, "Gold"), (3, 1, "Silver"), (3, 2, None)]
    bonuses = sorted((c.customer, c.points) for c in first if isinstance(c, PointsChange))
    assert bonuses == [(1, 20), (2, 20), (2, 50), (3, 20)]
    with SchemaRegistryClient({"url": settings.schema_registry_url}) as registry:
        topic = rfm_env.topic(VIP_TIER_ASSIGNED)
        decode = AvroDecoder.registered(registry, VIP_TIER_ASSIGNED, topic)
    events = [decode(m.value) for m in read_log(settings, topic)]
    assert len(events) == EVENTS_PER_RUN
    (dead,) = read_log(settings, rfm_env.topic(TIERS_DLQ))  # the first run's
    assert dead.key == BAD_KEY
    gold = next(e for e in events if e["shopify_customer_id"] == 2)
    assert (gold["tier_name"], str(gold["tier_id"]), gold["multiplier"]) == (
        "Gold",
        tier_id(MERCHANT, "Gold"),
        "2",
    )
    # Gold is held while the order is in the window: the clock must come when it leaves.
    due = list(due_tiers(core_url)(effective_at + timedelta(days=400)))
    assert {d["shopify_customer_id"] for d in due} == {2}
    assert list(due_tiers(core_url)(effective_at)) == []

    with psycopg.connect(core_url) as conn:
        conn.execute("DELETE FROM customer_tiers")
    run_flow(settings, rfm_env, core_url, tmp_path, 2)  # from offset 0, a fresh recovery store

    again = sent(settings, rfm_env)
    assert sorted(map(repr, again)) == sorted(map(repr, first + first))


def test_the_configuration_in_force_at_a_time_is_the_version_saved_before_it(
    settings: Settings, core_url: str
) -> None:
    first = save(core_url)
    lower = parse_tiers({**CONFIG.document(), "tiers": [{"name": "Silver", "threshold": 10}]})
    with psycopg.connect(core_url) as conn:
        second = save_tiers(conn, MERCHANT, lower)
        history = TierHistory(lambda: load_versions(conn))

        assert second.version == 2
        assert second.effective_at > first
        assert history.config_at(MERCHANT, first - timedelta(seconds=1)) is None
        assert history.config_at(MERCHANT, first) == CONFIG
        assert history.config_at(MERCHANT, second.effective_at) == lower
        assert history.config_at(str(ids.merchant_id("other.myshopify.com")), first) is None
