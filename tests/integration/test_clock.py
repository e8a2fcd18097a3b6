"""The clock job as operators run it (`python -m loyalnest.clock --at ...`) against the real
store and broker: exactly one tick command per due customer, and one clock tick."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client.parser import text_string_to_metric_families
from pymongo.database import Database

from connectors.points_records import balance_id
from connectors.store import BALANCES
from loyalnest.bootstrap.mongo import ensure_collections
from loyalnest.harness.processes import free_port, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import CLOCK_TICKS, POINTS_COMMANDS
from loyalty.clock_ticks import CLOCK_KEY, decode_clock_tick
from loyalty.commands import customer_key, decode_command
from loyalty.customers import Tick

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
OTHER = "9f0e2d3c-aaaa-4bbb-8ccc-ddddeeeeffff"


@pytest.fixture
def prefix(admin: AdminClient) -> Iterator[str]:
    """A topic prefix of this test's own, with the two topics the clock writes."""
    prefix = f"clock{uuid.uuid4().hex[:10]}."
    topics = [
        NewTopic(f"{prefix}{POINTS_COMMANDS}", num_partitions=4, replication_factor=1),
        NewTopic(f"{prefix}{CLOCK_TICKS}", num_partitions=1, replication_factor=1),
    ]
    for future in admin.create_topics(topics).values():
        future.result(30)
    yield prefix
    for future in admin.delete_topics([t.topic for t in topics]).values():
        future.result(30)


def balance(merchant: str, customer: int, **fields: Any) -> dict[str, Any]:
    return {
        "_id": balance_id(merchant, customer),
        "merchant_id": merchant,
        "shopify_customer_id": customer,
        "balance": 100,
        "seq": 2,
        **fields,
    }


def read_all(settings: Settings, topic: str) -> list[Message]:
    """Every record of the topic, up to the end of each partition."""
    partitions = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers}).list_topics(
        topic, timeout=10
    )
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"clock-test-{uuid.uuid4()}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    records = []
    try:
        for p in sorted(partitions.topics[topic].partitions):
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
            while True:
                msg = consumer.poll(10)
                assert msg is not None, f"no end of partition reading {topic}/{p}"
                error = msg.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    break
                records.append(msg)
    finally:
        consumer.close()
    return records


def test_one_round_ticks_exactly_the_due_customers_and_the_clock(
    settings: Settings, mongo_db: Database[Any], prefix: str
) -> None:
    ensure_collections(mongo_db)
    mongo_db[BALANCES].insert_many(
        [
            balance(MERCHANT, 1, due_at=AT - timedelta(days=3), v=2),
            balance(MERCHANT, 2, due_at=AT, v=2),  # due exactly then: due
            balance(OTHER, 3, due_at=AT - timedelta(minutes=1), v=2),
            balance(MERCHANT, 4, due_at=AT + timedelta(seconds=1), v=2),
            balance(MERCHANT, 5, due_at=None, v=2),  # nothing will ever be due
            balance(MERCHANT, 6),  # written before due_at existed
        ]
    )

    done = subprocess.run(
        [sys.executable, "-m", "loyalnest.clock", "--at", "2026-03-01T13:00:00+01:00"],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KAFKA_TOPIC_PREFIX": prefix,
            "MONGO_DATABASE": mongo_db.name,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    commands = read_all(settings, f"{prefix}{POINTS_COMMANDS}")
    assert sorted(
        ((m.key(), decode_command(m.value())) for m in commands),
        key=lambda kc: kc[0] or b"",
    ) == [
        (customer_key(MERCHANT, 1), Tick(MERCHANT, 1, AT)),
        (customer_key(MERCHANT, 2), Tick(MERCHANT, 2, AT)),
        (customer_key(OTHER, 3), Tick(OTHER, 3, AT)),
    ]
    ticks = read_all(settings, f"{prefix}{CLOCK_TICKS}")
    assert [(m.key(), decode_clock_tick(m.value())) for m in ticks] == [(CLOCK_KEY, AT)]
    assert "3 due, 3 ticked" in done.stderr


def test_running_forever_the_clock_serves_its_health_and_the_time_of_its_last_round(
    settings: Settings, mongo_db: Database[dict[str, Any]], prefix: str, tmp_path: Path
) -> None:
    """As the supervisor runs it: rounds every CLOCK_INTERVAL_SECONDS, /health and /metrics on
    ROUND_HEALTH_PORT, and a clean exit on SIGTERM."""
    ensure_collections(mongo_db)
    mongo_db[BALANCES].insert_one(balance(MERCHANT, 1, due_at=AT, v=2))
    port, log = free_port(), tmp_path / "clock.log"
    with log.open("wb") as out:
        clock = subprocess.Popen(
            [sys.executable, "-m", "loyalnest.clock"],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "KAFKA_TOPIC_PREFIX": prefix,
                "MONGO_DATABASE": mongo_db.name,
                "CLOCK_INTERVAL_SECONDS": "1",
                "ROUND_HEALTH_PORT": str(port),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # The gauge exists once a round has finished; each round ticks the due customer.
        wait_until(lambda: "job" in health(port), 60, "the clock's health")
        wait_until(lambda: last_round(port) is not None, 60, "a finished round")
        first = last_round(port)
        wait_until(lambda: (last_round(port) or 0.0) > (first or 0.0), 60, "a second round")
        body = health(port)
        assert (body["status"], body["job"]) == ("ok", "clock")
        assert isinstance(body["seconds_since_last_round"], float)
        assert body["seconds_since_last_round"] < 60
        commands = read_all(settings, f"{prefix}{POINTS_COMMANDS}")
        ticks = [decode_command(m.value()) for m in commands]
        assert ticks, "no tick command"
        assert all(isinstance(t, Tick) for t in ticks), ticks
        assert {(t.merchant_id, t.customer) for t in ticks if isinstance(t, Tick)} == {
            (MERCHANT, 1)
        }
    finally:
        clock.send_signal(signal.SIGTERM)
        returncode = clock.wait(60)
    assert returncode == 0, log.read_text()


def health(port: int) -> dict[str, Any]:
    """The health check's body, or {} while nothing answers."""
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except httpx.HTTPError:
        return {}
    body: dict[str, Any] = reply.json()
    return body


def last_round(port: int) -> float | None:
    """The clock's loyalnest_round_last_completed_timestamp_seconds, if it has one yet."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "loyalnest_round_last_completed_timestamp_seconds":
                return float(sample.value)
    return None
