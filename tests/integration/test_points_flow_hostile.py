"""No record stops the points flow (issue 7): a real flow process on the real stack meets
every class of hostile record, each followed by a valid one of another merchant.

Every hostile record lands in the dead-letter topic, whole, with its reason; every valid record
is credited; the flow process never exits, so nothing had to restart it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from connectors.dead_letters import DLQ_FLOW, DLQ_ORIGIN, DLQ_REASON, DLQ_STEP
from loyalnest.harness.deployment import Deployment, isolated_deployment
from loyalnest.harness.processes import FlowProcess
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS, POINTS_DLQ, SHOPIFY_ORDERS, SOURCE_RECORD_BYTES
from tests.hostile_orders import CORPUS, Hostile, order
from tests.integration.points_harness import read_log

GOOD_SHOP = "good-neighbour.myshopify.com"
GOOD_HEADERS = [
    ("X-Shopify-Shop-Domain", GOOD_SHOP.encode()),
    ("X-Shopify-Topic", b"orders/paid"),
]
TIMEOUT = 120.0
# Just under the source topic's record limit, so that only headers separate it from the limit.
LARGEST = SOURCE_RECORD_BYTES - 8 * 1024
HOSTILE_COMMANDS = [
    (b'{"type": "points.change"', "not JSON"),
    (b'{"type": "points.change", "points": 0}', "unknown change kind None"),
    (b"[" * 200_000, "not JSON"),
    (b'{"type": "points.redeem", "redemption_id": "\\ud800"}', "lone UTF-16 surrogate"),
]

Record = tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]


@pytest.fixture
def env(settings: Settings, admin: AdminClient, tmp_path: Path) -> Iterator[Deployment]:
    with isolated_deployment(settings, "test", tmp_path) as deployment:
        yield deployment


def produce_in_order(settings: Settings, topic: str, records: list[Record]) -> None:
    """Into one partition, so that each hostile record really is followed by its valid one."""
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "message.max.bytes": SOURCE_RECORD_BYTES + 64 * 1024,
        }
    )
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers, partition=0)
        producer.poll(0)
    assert producer.flush(60) == 0


def hostile_orders() -> tuple[list[Record], dict[int, Hostile]]:
    """Each hostile record, then a valid order of another merchant; the hostile ones by offset."""
    corpus = [*CORPUS, Hostile("largest-record", b"x" * LARGEST, "not JSON")]
    records: list[Record] = []
    by_offset: dict[int, Hostile] = {}
    for n, hostile in enumerate(corpus):
        by_offset[len(records)] = hostile
        records.append((f"hostile-{n}".encode(), hostile.body, [*hostile.headers()]))
        valid = order(10_000 + n, customer={"id": 50_000 + n})
        records.append((f"{GOOD_SHOP}:{10_000 + n}".encode(), valid, [*GOOD_HEADERS]))
    return records, by_offset


def count(settings: Settings, topic: str) -> int:
    return sum(1 for _ in read_log(settings, topic))


def wait_until(what: str, flow: FlowProcess, condition: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert flow.alive(), f"the flow exited waiting for {what}:\n{flow.log_tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{flow.log_tail()}"
        time.sleep(0.25)


def test_every_hostile_record_is_dead_lettered_and_every_valid_one_credited(
    settings: Settings, env: Deployment, tmp_path: Path
) -> None:
    orders, by_offset = hostile_orders()
    produce_in_order(settings, env.topic(SHOPIFY_ORDERS), orders)
    produce_in_order(
        settings,
        env.topic(POINTS_COMMANDS),
        [(b"bad-command", value, []) for value, _reason in HOSTILE_COMMANDS],
    )
    valid = len(orders) - len(by_offset)
    expected_dead = len(by_offset) + len(HOSTILE_COMMANDS)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    balances = client[env.database].point_balances
    flow = FlowProcess(env, tmp_path / "flow.log")
    try:
        started = flow.pid
        wait_until("every valid order", flow, lambda: balances.count_documents({}) == valid)
        dlq = env.topic(POINTS_DLQ)
        wait_until("every dead letter", flow, lambda: count(settings, dlq) >= expected_dead)
        assert flow.alive()
        assert flow.pid == started
        assert sorted(b["balance"] for b in balances.find()) == [100] * valid
    finally:
        flow.stop()
        client.close()

    letters = list(read_log(settings, env.topic(POINTS_DLQ)))
    assert len(letters) == expected_dead
    origin_prefix = f"{env.topic(SHOPIFY_ORDERS)}/0/"
    from_orders = {}
    for letter in letters:
        headers = dict(letter.headers)
        assert headers[DLQ_FLOW] == b"points"
        origin = headers[DLQ_ORIGIN].decode()
        if origin.startswith(origin_prefix):
            from_orders[int(origin.removeprefix(origin_prefix))] = (letter, headers)
    assert set(from_orders) == set(by_offset), "exactly the hostile orders are dead letters"
    for offset, hostile in by_offset.items():
        letter, headers = from_orders[offset]
        assert hostile.reason.encode() in headers[DLQ_REASON], (hostile.name, headers[DLQ_REASON])
        assert letter.value == hostile.body, f"{hostile.name}: the dead letter keeps the record"
        assert headers[DLQ_STEP] in (b"decode-order", b"order-state")
    command_reasons = [
        dict(m.headers)[DLQ_REASON]
        for m in letters
        if dict(m.headers)[DLQ_STEP] == b"decode-command"
    ]
    assert len(command_reasons) == len(HOSTILE_COMMANDS)
    for (_value, reason), got in zip(HOSTILE_COMMANDS, command_reasons, strict=True):
        assert reason.encode() in got
