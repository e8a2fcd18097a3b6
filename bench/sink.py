"""MongoDB sink throughput against the store's own ceiling (the same documents bulk-inserted)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pymongo
from pymongo import InsertOne

from connectors.store import LEDGER
from loyalnest.bootstrap.mongo import ensure_collections
from loyalnest.settings import Settings
from sinks.mongo import MongoWrite, MongoWriter


def ledger_docs(count: int) -> list[dict[str, Any]]:
    merchant = str(uuid.uuid4())
    return [
        {
            "event_id": str(uuid.uuid4()),
            "merchant_id": merchant,
            "customer_id": f"c{n % 500}",
            "points": n % 300,
            "type": "earn",
        }
        for n in range(count)
    ]


def measure(settings: Settings, count: int) -> dict[str, float]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    db = client[f"bench_{uuid.uuid4().hex[:8]}"]
    try:
        ensure_collections(db)
        direct = ledger_docs(count)
        start = time.perf_counter()
        for i in range(0, count, 1000):
            db[LEDGER].insert_many(direct[i : i + 1000], ordered=False)
        ceiling = count / (time.perf_counter() - start)

        writes: list[MongoWrite] = [(LEDGER, InsertOne(d)) for d in ledger_docs(count)]
        start = time.perf_counter()
        MongoWriter(db).write(writes)
        sink = count / (time.perf_counter() - start)

        start = time.perf_counter()
        stats = MongoWriter(db).write(writes)  # the same batch replayed: all duplicates
        replay = count / (time.perf_counter() - start)
        assert stats.duplicates == count
    finally:
        client.drop_database(db.name)
        client.close()
    return {
        "store_ceiling_docs_per_s": ceiling,
        "sink_docs_per_s": sink,
        "sink_replay_docs_per_s": replay,
        "sink_vs_ceiling": sink / ceiling,
    }
