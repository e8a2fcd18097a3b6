"""Clock round throughput: ticks/s for N due customers, with the clock job's own code.

A round is the due query (`due_at <= now` on `point_balances`) and one produce per due
customer, flushed until the broker acknowledged every record. The figures separate the two:
how fast the store hands over due documents (`clock_store_read_docs_per_s`), how fast the job
turns them into acknowledged ticks (`clock_produce_ticks_per_s`), and whole rounds. A tenth
more customers are not due, so the index has something to leave out.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.report import Targets, at_least
from connectors.points_records import balance_id
from connectors.store import BALANCES
from loyalnest.bootstrap.mongo import ensure_collections
from loyalnest.clock import ClockJob, due_documents, kafka_producer
from loyalnest.settings import Settings
from loyalnest.topics import CLOCK_TICKS, POINTS_COMMANDS
from loyalty import ids

TARGETS: Targets = {"clock_produce_ticks_per_s": at_least(20_000)}
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MERCHANTS = 20


def balance_docs(due: int, not_due: int) -> list[dict[str, Any]]:
    """Balance documents shaped as the points flow writes them."""
    merchants = [str(ids.merchant_id(f"bench-clock-{n}.myshopify.com")) for n in range(MERCHANTS)]
    docs = []
    for n in range(due + not_due):
        merchant, customer = merchants[n % MERCHANTS], 3_000_000 + n
        due_at = NOW - timedelta(seconds=n) if n < due else NOW + timedelta(days=1, seconds=n)
        docs.append(
            {
                "_id": balance_id(merchant, customer),
                "merchant_id": merchant,
                "customer_id": ids.customer_key(merchant, customer),
                "shopify_customer_id": customer,
                "balance": 120,
                "seq": 3,
                "updated_at": due_at - timedelta(days=365),
                "pending": 0,
                "lifetime_earned": 120,
                "next_expiry": {"points": 120, "at": due_at},
                "due_at": due_at,
                "v": 4,
            }
        )
    return docs


def records_in(settings: Settings, topic: str, partitions: int) -> int:
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "bench-clock-count"}
    )
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        )
    finally:
        consumer.close()


def delete_topics(admin: AdminClient, names: list[str]) -> None:
    for future in admin.delete_topics(names, operation_timeout=60).values():
        try:
            future.result(90)
        except KafkaException as exc:
            # A request retried on a loaded VM finds the topic deleted by its first attempt.
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def measure(settings: Settings, customers: int) -> dict[str, float]:
    tag = uuid.uuid4().hex[:10]
    commands, ticks = f"benchclock{tag}.{POINTS_COMMANDS}", f"benchclock{tag}.{CLOCK_TICKS}"
    partitions = settings.kafka_topic_partitions
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    topics = [NewTopic(commands, partitions, 1), NewTopic(ticks, 1, 1)]
    for future in admin.create_topics(topics).values():
        future.result(30)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo_url, tz_aware=True
    )
    db = client[f"bench_clock_{tag}"]
    producer = kafka_producer(settings)
    try:
        ensure_collections(db)
        docs = balance_docs(customers, customers // 10)
        for i in range(0, len(docs), 5_000):
            db[BALANCES].insert_many(docs[i : i + 5_000], ordered=False)
        balances = db[BALANCES]

        def job() -> ClockJob:  # a fresh one remembers nothing: every due customer is sent
            return ClockJob(balances, producer, commands_topic=commands, ticks_topic=ticks)

        started = time.perf_counter()
        rows = list(due_documents(balances, NOW))
        read = time.perf_counter() - started
        if len(rows) != customers:
            raise RuntimeError(f"the due query returned {len(rows)} of {customers}")

        produced = job().send(NOW, rows)
        fresh = job()
        whole = fresh.run_round(NOW + timedelta(seconds=1))
        repeat = fresh.run_round(NOW + timedelta(seconds=2))  # all ticked lately: none sent
        if (produced.sent, whole.sent, repeat.sent, repeat.suppressed) != (
            customers,
            customers,
            0,
            customers,
        ):
            raise RuntimeError(f"unexpected rounds: {produced}, {whole}, {repeat}")
        stored = records_in(settings, commands, partitions), records_in(settings, ticks, 1)
        if stored != (2 * customers, 3):
            raise RuntimeError(f"topics hold {stored}, expected {(2 * customers, 3)}")
    finally:
        client.drop_database(db.name)
        client.close()
        delete_topics(admin, [commands, ticks])
    return {
        "clock_store_read_docs_per_s": customers / read,
        "clock_produce_ticks_per_s": produced.ticks_per_second,
        "clock_round_ticks_per_s": whole.ticks_per_second,
        "clock_round_s": whole.seconds,
        "clock_repeat_round_s": repeat.seconds,
    }
