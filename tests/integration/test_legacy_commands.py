"""Records an earlier version wrote to `points.commands` still make exactly the same ledger.

The fixture (tests/fixtures/legacy_commands) is the `points.commands` log that the code at
03c9971, before commands named their source, wrote in a real run, and the MongoDB documents that
run produced. Replayed through today's flow on the real stack, every field those documents had
must come out byte for byte the same (BSON, types included); today's code only adds fields.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pymongo
import pytest
from bson import json_util
from confluent_kafka import Producer
from pymongo.database import Database

from loyalnest.harness.deployment import Deployment, isolated_deployment
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS, POINTS_DLQ
from tests.integration.points_harness import read_log

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_commands"
COLLECTIONS = ("points_transactions", "point_balances", "reward_redemptions")
# What today's documents add to the fields the legacy ones had.
ADDED = {
    "points_transactions": {"source", "source_id"},
    "point_balances": {"pending", "lifetime_earned", "next_expiry", "due_at", "v"},
    "reward_redemptions": set(),
}


def expected() -> dict[str, list[dict[str, Any]]]:
    text = (FIXTURE / "expected.json").read_text()
    loaded: dict[str, list[dict[str, Any]]] = json_util.loads(text)
    return loaded


def produce_fixture_log(settings: Settings, topic: str) -> int:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True}
    )
    count = 0
    for line in (FIXTURE / "commands.jsonl").read_text().splitlines():
        record = json.loads(line)
        producer.produce(
            topic,
            key=base64.b64decode(record["key"]),
            value=base64.b64decode(record["value"]),
            headers=[(k, base64.b64decode(v) if v else None) for k, v in record["headers"]],
            partition=record["partition"],
        )
        count += 1
    assert producer.flush(30) == 0
    return count


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    with isolated_deployment(settings, "legacy", tmp_path) as deployment:
        yield deployment


def test_the_legacy_log_replays_to_a_byte_identical_ledger(
    settings: Settings, env: Deployment, tmp_path: Path
) -> None:
    want = expected()
    assert produce_fixture_log(settings, env.topic(POINTS_COMMANDS)) == 26
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    db: Database[Any] = client[env.database]
    flow = FlowProcess(env, tmp_path / "flow.log")
    try:

        def replayed() -> bool:
            return all(db[c].count_documents({}) == len(want[c]) for c in COLLECTIONS) and (
                db.reward_redemptions.count_documents({"status": "pending"}) == 0
                and _seqs_landed(db)
            )

        wait_until(replayed, 120, "the legacy log replayed", flow, 0.25)
    finally:
        flow.stop()
    try:
        for collection in COLLECTIONS:
            actual = {d["_id"]: d for d in db[collection].find()}
            for doc in want[collection]:
                got = actual.pop(doc["_id"])
                assert set(got) - set(doc) == ADDED[collection], (collection, doc["_id"])
                projected = {key: got[key] for key in doc}
                assert bson.encode(projected) == bson.encode(doc), (collection, doc["_id"])
            assert actual == {}, f"{collection} has documents the legacy run did not"
        # The bootstrap's migration gives a balance written before versions `v = seq`: it is
        # right only if, replayed, every legacy customer's version is its sequence number.
        assert all(d["v"] == d["seq"] for d in db.point_balances.find()), "v != seq"
        assert list(read_log(settings, env.topic(POINTS_DLQ))) == []
    finally:
        client.close()


def _seqs_landed(db: Database[Any]) -> bool:
    """Every balance document shows its customer's last ledger entry."""
    last: dict[str, int] = {}
    for entry in db.points_transactions.find({}, {"merchant_id": 1, "shopify_customer_id": 1}):
        key = f"{entry['merchant_id']}:{entry['shopify_customer_id']}"
        last[key] = last.get(key, 0) + 1
    balances = {d["_id"]: d["seq"] for d in db.point_balances.find({}, {"seq": 1})}
    return balances == last
