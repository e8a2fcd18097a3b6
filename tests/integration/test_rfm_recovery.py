"""The RFM flow killed mid-stream (SIGKILL) and restarted, and replayed from offset 0 into
fresh state and a fresh database: both converge to the same documents a batch recomputation
gives."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.database import Database

from connectors.store import COLLECTIONS, RFM_CUSTOMERS
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import FlowProcess
from loyalnest.settings import Settings
from tests.integration.rfm_harness import (
    AS_OF,
    LAST_DAY,
    assert_as_batch,
    converge,
    picture,
    produce_hooks,
    shopping,
    total,
    wait_for,
)

pytestmark = pytest.mark.integration


def documents(db: Database[Any]) -> dict[str, Any]:
    """What a run leaves: every customer's values and scores, and the merchant's counts."""
    customers = {
        d["_id"]: {
            k: d[k] for k in ("last_order_day", "frequency", "monetary", "r", "f", "m", "segment")
        }
        for d in db[RFM_CUSTOMERS].find()
    }
    found = picture(db)
    assert found is not None
    return {"customers": customers, "counts": found["counts"], "total": found["total"]}


def test_sigkill_mid_stream_and_a_replay_from_offset_0_converge_to_the_same_scores(
    settings: Settings,
    rfm_env: Deployment,
    tz_mongo: pymongo.MongoClient[dict[str, Any]],
    tmp_path: Path,
) -> None:
    bought = shopping(random.Random(31), orders=3_000, customers=400, days=420, last=LAST_DAY)
    values = bought.values(AS_OF)
    produce_hooks(settings, rfm_env, bought.hooks)
    db = tz_mongo[rfm_env.database]

    flow = FlowProcess(rfm_env, tmp_path / "rfm.log", flow="rfm")
    try:
        wait_for(lambda: db[RFM_CUSTOMERS].count_documents({}) >= 150, flow, "some customers")
        flow.kill()  # SIGKILL: no snapshot, no flush, no goodbye
    finally:
        flow.stop()
    restarted = FlowProcess(rfm_env, tmp_path / "rfm.log", flow="rfm")
    try:
        wait_for(lambda: total(db) == len(values), restarted, "every customer after the restart")
        converge(settings, rfm_env, db, restarted, AS_OF)
    finally:
        restarted.stop()
    assert_as_batch(db, values, AS_OF)
    first = documents(db)
    records = versions(db)

    # The same logs (orders, and every tick and day the rounds sent) from offset 0, into a
    # fresh recovery store and a fresh database.
    replay_env = dataclasses.replace(
        rfm_env, database=f"{rfm_env.database}_replay", recovery=tmp_path / "replay-recovery"
    )
    replay_db = tz_mongo[replay_env.database]
    replay_db[RFM_CUSTOMERS].create_indexes(COLLECTIONS[RFM_CUSTOMERS])
    try:
        replay = FlowProcess(replay_env, tmp_path / "replay.log", flow="rfm")
        try:
            # A customer's version counts the records it applied: once every customer is back
            # at the first run's, the replay has read both logs to their end.
            wait_for(lambda: versions(replay_db) == records, replay, "the replay to catch up")
            converge(settings, replay_env, replay_db, replay, AS_OF)
        finally:
            replay.stop()
        assert_as_batch(replay_db, values, AS_OF)
        assert documents(replay_db) == first
    finally:
        tz_mongo.drop_database(replay_env.database)


def versions(db: Database[Any]) -> dict[str, int]:
    return {d["_id"]: d["v"] for d in db[RFM_CUSTOMERS].find({}, {"v": 1})}
