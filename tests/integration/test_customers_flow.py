"""The customers flow on the real stack: rfm.updated (Avro, from the registry) in, Core's
customers.rfm_score (PostgreSQL) out, newest event per customer whatever the order, duplicates
and replays harmless, and what it cannot store in customers.dlq with the reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.avro import AvroEncoder
from connectors.customers import SEGMENT_MEMBERS, rfm_score_row
from connectors.dead_letters import DLQ_REASON
from connectors.rfm_records import updated_event
from loyalnest.harness.deployment import Deployment, fresh_postgres
from loyalnest.harness.processes import FlowProcess, free_port, wait_until
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.settings import Settings
from loyalnest.topics import CUSTOMERS_DLQ, RFM_UPDATED
from loyalty import ids
from loyalty.rfm import Scores, Segment, Values
from loyalty.rfm_customers import RfmUpdate
from tests.integration.points_harness import read_log

pytestmark = pytest.mark.integration

KNOWN = "core-known.myshopify.com"
UNKNOWN = "core-unknown.myshopify.com"
AS_OF = 20_634
SEGMENTS = (Segment.CHAMPIONS, Segment.AT_RISK, Segment.HIBERNATING, Segment.LOYAL)


@pytest.fixture
def core_url(settings: Settings) -> Iterator[str]:
    with fresh_postgres(settings, "core") as url:
        add_merchants(url, Shop(KNOWN, "unused-secret", Decimal(1)))
        yield url


def event(shop: str, customer: int, sequence: int) -> dict[str, Any]:
    """The customer's `sequence`-th update: its segment and figures follow from the sequence,
    so a row holding an older event shows."""
    segment = SEGMENTS[sequence % len(SEGMENTS)]
    values = Values(AS_OF - sequence, sequence, Decimal(sequence) * Decimal("10.25"))
    update = RfmUpdate(values, Scores(sequence % 5 + 1, 2, 3, segment), None, AS_OF, sequence)
    return updated_event(str(ids.merchant_id(shop)), customer, update)


def produce(settings: Settings, env: Deployment, records: list[dict[str, Any]]) -> None:
    topic = env.topic(RFM_UPDATED)
    with SchemaRegistryClient({"url": settings.schema_registry_url}) as registry:
        encode = AvroEncoder.registered(registry, RFM_UPDATED, topic)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for record in records:
        producer.produce(topic, key=record["customer_id"].encode(), value=encode(record))
    producer.produce(topic, key=b"garbage", value=b"not avro at all")
    assert producer.flush(30) == 0


def stored(url: str) -> dict[int, dict[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT shopify_customer_id, rfm_score FROM customers").fetchall()
    return dict(rows)


def dead_letter_reasons(settings: Settings, env: Deployment) -> list[str]:
    return [
        dict(m.headers)[DLQ_REASON].decode() for m in read_log(settings, env.topic(CUSTOMERS_DLQ))
    ]


def test_rows_hold_each_customers_newest_event_and_replays_change_nothing(
    settings: Settings, rfm_env: Deployment, core_url: str, tmp_path: Path
) -> None:
    # 50 customers, 6 updates each, sent newest-first for half of them and every one twice;
    # plus 5 customers of a merchant Core does not know, and one record that is not Avro.
    records = []
    for customer in range(1, 51):
        order = range(6, 0, -1) if customer % 2 else range(1, 7)
        records += [event(KNOWN, customer, seq) for seq in order for _ in range(2)]
    records += [event(UNKNOWN, customer, 1) for customer in range(1, 6)]
    produce(settings, rfm_env, records)
    newest = {c: json.loads(rfm_score_row(event(KNOWN, c, 6)).score) for c in range(1, 51)}

    applied = [run_flow(settings, rfm_env, core_url, tmp_path, run, len(records)) for run in (1, 2)]

    assert stored(core_url) == newest
    assert applied[0] >= 50  # a batch may apply an update a later batch supersedes
    assert applied[1] == 0  # the replay (from offset 0, a fresh store) changed no row
    reasons = dead_letter_reasons(settings, rfm_env)
    unknown = str(ids.merchant_id(UNKNOWN))
    assert sorted(set(reasons)) == [
        f"merchant {unknown} is not in Core's merchants table: register it, then re-drive "
        "this record",
        "not an Avro value in the Confluent wire format",
    ]
    assert len(reasons) == 12  # each run: 5 unknown-merchant records and the garbage
    with psycopg.connect(core_url) as conn:
        members = conn.execute(
            SEGMENT_MEMBERS, {"merchant": str(ids.merchant_id(KNOWN)), "segment": "at_risk"}
        ).fetchall()
    assert sorted(c for (c,) in members) == sorted(
        c for c, score in newest.items() if score["segment"] == "at_risk"
    )


# Each run from offset 0: a dead letter for each of the 5 unknown-merchant records (from the
# customers sink) and one for the garbage record (from the decode step, through dlq-out).
DEAD_LETTERS_PER_RUN = 6


def run_flow(
    settings: Settings, env: Deployment, core_url: str, tmp_path: Path, run: int, records: int
) -> float:
    """The flow from offset 0 (a fresh recovery store) until its sink has handled every
    record and every dead letter of the run is in customers.dlq; the rows it changed. The
    garbage record's dead letter goes out through another sink than the rows, so the sink's
    counts can be complete while it is yet to be written: wait for both."""
    port = free_port()
    flow = FlowProcess(
        env,
        tmp_path / f"customers-{run}.log",
        flow="customers",
        recovery=tmp_path / f"recovery-{run}",
        api_port=port,
        POSTGRES_URL=core_url,
    )

    def rows(outcome: str) -> float:
        return sink_rows(port, outcome)

    try:
        wait_until(
            lambda: (
                sum(rows(o) for o in ("applied", "superseded", "dead_letter")) == records
                and len(dead_letter_reasons(settings, env)) >= DEAD_LETTERS_PER_RUN * run
            ),
            120,
            "every record handled and every dead letter written",
            flow,
            0.25,
        )
        return rows("applied")
    finally:
        flow.stop()


def sink_rows(port: int, outcome: str) -> float:
    sample = f'loyalnest_customers_sink_rows_total{{outcome="{outcome}"}}'
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0
