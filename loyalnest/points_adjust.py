"""`loyalnest points adjust`: a manual adjustment from the command line, as the API makes one.

It records the pending document and sends the command through what the API uses too
(connectors/adjustments.py), with the blocking clients, then waits (bounded) for the points
flow's decision and prints the adjustment. Exit status: 0 completed, 1 failed (the reason is
printed), 2 refused before anything was recorded (unknown shop, a key already used for another
adjustment), 3 still pending when the wait ended (running it again with the same
--idempotency-key sends the command again and waits again; it is applied once).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pymongo
from confluent_kafka import KafkaError, Message, Producer
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from connectors.adjustments import (
    ADJUSTMENTS,
    AdjustmentRequest,
    asks_the_same,
    command_record,
    is_pending,
    new_adjustment,
    pending_document,
    view,
)
from connectors.merchants import merchant_by_shop
from loyalnest.app_secrets import Secrets
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS
from loyalty.customers import Adjustment, Status

COMPLETED, FAILED, REFUSED, PENDING = 0, 1, 2, 3
POLL_SECONDS = 0.1  # between reads of the document while waiting for the decision
SEND_TIMEOUT = 10.0  # seconds the broker has to acknowledge the command
MONGO_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class AdjustArgs:
    shop: str
    customer: int
    points: int
    reason: str
    idempotency_key: str | None
    wait: float


def adjust(settings: Settings, secrets: Secrets, args: AdjustArgs) -> int:
    with psycopg.connect(settings.postgres_url) as conn:
        merchant = merchant_by_shop(conn, secrets.secrets_key, args.shop)
    if merchant is None:
        return _refuse(f"unknown shop {args.shop!r}: add it with `loyalnest merchants add`")
    key = args.idempotency_key or str(uuid.uuid4())
    asked = AdjustmentRequest(args.customer, args.points, args.reason)
    adjustment = new_adjustment(
        merchant.merchant_id,
        asked,
        idempotency_key=key,
        locale=merchant.locale,
        at=datetime.now(UTC),
        correlation_id=str(uuid.uuid4()),
    )
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS
    ) as client:
        documents: Collection[dict[str, Any]] = client[settings.mongo_database][ADJUSTMENTS]
        document = record(documents, adjustment)
        if not asks_the_same(document, asked):
            return _refuse(f"idempotency key {key!r} was already used for a different adjustment")
        if is_pending(document):
            sent = send(settings, adjustment)
            if sent is not None:
                print(f"loyalnest: the command was not sent ({sent})", file=sys.stderr)
            else:
                document = wait_for_decision(
                    lambda: documents.find_one({"_id": adjustment.adjustment_id}),
                    args.wait,
                )
    print(json.dumps({**view(document), "idempotency_key": key}))
    return outcome_status(document, key)


def record(documents: Collection[dict[str, Any]], adjustment: Adjustment) -> dict[str, Any]:
    """Insert the pending adjustment, or return the one this key already made."""
    document = pending_document(adjustment)
    try:
        documents.insert_one(document)
        return document
    except DuplicateKeyError:
        existing = documents.find_one({"_id": adjustment.adjustment_id})
        assert existing is not None, "an adjustment document cannot be deleted"
        return existing


def send(settings: Settings, adjustment: Adjustment) -> str | None:
    """Produce the command and wait for the broker's ack; the error, or None once acked."""
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": int(SEND_TIMEOUT * 1000),
        }
    )
    errors: list[str] = []
    acked: list[bool] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            acked.append(True)
        else:
            errors.append(str(err))

    key, value = command_record(adjustment)
    producer.produce(settings.topic(POINTS_COMMANDS), key=key, value=value, on_delivery=on_delivery)
    producer.flush(SEND_TIMEOUT + 1)
    if acked:
        return None
    return errors[0] if errors else "no acknowledgement from Kafka in time"


def wait_for_decision(
    read: Callable[[], dict[str, Any] | None],
    seconds: float,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Read the document until the flow has decided it or `seconds` have passed; the last read.

    The flow writes the outcome onto the document; nothing announces it, so it is read again
    every POLL_SECONDS, a bounded wait for that condition."""
    deadline = clock() + seconds
    while True:
        document = read()
        assert document is not None, "the pending adjustment was recorded before it was sent"
        if not is_pending(document) or clock() >= deadline:
            return document
        pause(min(POLL_SECONDS, max(0.0, deadline - clock())))


def outcome_status(document: dict[str, Any], key: str) -> int:
    status = document["status"]
    if status == Status.COMPLETED.value:
        return COMPLETED
    if status == Status.FAILED.value:
        print(f"loyalnest: adjustment failed: {document['reason']}", file=sys.stderr)
        return FAILED
    print(
        f"loyalnest: adjustment still pending; run again with --idempotency-key {key} to "
        "send it again and wait (it is applied once)",
        file=sys.stderr,
    )
    return PENDING


def _refuse(message: str) -> int:
    print(f"loyalnest: {message}", file=sys.stderr)
    return REFUSED
