"""Feed the points flow's topics, and compute from them what the flow must produce.

The expectation is a pure fold of the Kafka logs the flow consumed: `apply_order` over
`shopify.orders` and `apply_customer` over `points.commands`, each partition in log order.
Comparing MongoDB with that fold checks the flow against the domain rules exactly, whatever
the interleaving, duplicates or crashes of the run.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from bytewax.connectors.kafka import KafkaSourceMessage
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.shopify import encode_body, kafka_headers, partition_key
from flows.common import Rejected, guarded_decode
from flows.points import Command, Received, decode_command_message, decode_order
from loyalnest.harness.deployment import Deployment
from loyalnest.samples import Webhook
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_COMMANDS, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.commands import customer_key, encode_redemption
from loyalty.customers import (
    CustomerState,
    LedgerEntry,
    Redemption,
    RedemptionOutcome,
    apply_customer,
)
from loyalty.ledger import OrderState, PointsChange, apply_order
from loyalty.orders import InvalidEventError


def produce_webhooks(settings: Settings, topic: str, webhooks: list[Webhook]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "linger.ms": 10,
            "enable.idempotence": True,
        }
    )
    for n, hook in enumerate(webhooks):
        producer.produce(
            topic,
            key=partition_key(hook.shop, hook.topic, hook.body),
            value=encode_body(hook.body),
            headers=kafka_headers(hook.headers, f"corr-{n}"),
        )
        producer.poll(0)
    assert producer.flush(60) == 0


def produce_raw(
    settings: Settings,
    topic: str,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, str | bytes | None]],
    partition: int | None = None,
) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    if partition is None:
        producer.produce(topic, key=key, value=value, headers=headers)
    else:
        producer.produce(topic, key=key, value=value, headers=headers, partition=partition)
    assert producer.flush(30) == 0


def redemption(shop: str, customer: int, points: int, key: str) -> Redemption:
    merchant = str(ids.merchant_id(shop))
    return Redemption(
        redemption_id=str(ids.redemption_id(merchant, key)),
        merchant_id=merchant,
        customer=customer,
        points=points,
        reward_id="reward-10-off",
        idempotency_key=key,
        locale="en",
        at=datetime.now(UTC),
    )


def produce_redemptions(
    settings: Settings, topic: str, redemptions: list[Redemption], partition: int | None = None
) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True}
    )
    for r in redemptions:
        key = customer_key(r.merchant_id, r.customer)
        if partition is None:
            producer.produce(topic, key=key, value=encode_redemption(r))
        else:
            producer.produce(topic, key=key, value=encode_redemption(r), partition=partition)
    assert producer.flush(60) == 0


def read_log(settings: Settings, topic: str) -> Iterator[KafkaSourceMessage[Any, Any]]:
    """Every record of a topic, partition by partition, in offset order."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"fold-{uuid.uuid4()}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        for p in sorted(partitions):
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
            while True:
                msg = consumer.poll(10)
                assert msg is not None, f"no EOF reading {topic}/{p}"
                if msg.error() is not None:
                    break  # partition EOF
                yield KafkaSourceMessage(
                    key=msg.key(),
                    value=msg.value(),
                    topic=msg.topic(),
                    headers=cast(list[tuple[str, bytes]], msg.headers() or []),
                    offset=msg.offset(),
                    partition=msg.partition(),
                    timestamp=msg.timestamp(),
                )
    finally:
        consumer.close()


@dataclass
class Expected:
    changes: dict[str, PointsChange] = field(default_factory=dict)  # from shopify.orders
    commanded_changes: set[str] = field(default_factory=set)  # change ids in points.commands
    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    outcomes: dict[str, RedemptionOutcome] = field(default_factory=dict)
    balances: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> balance, seq
    rejected: list[Rejected] = field(default_factory=list)


def fold(settings: Settings, env: Deployment) -> Expected:
    expected = Expected()
    orders: dict[str, OrderState] = {}
    decode = guarded_decode("decode-order", decode_order)
    for message in read_log(settings, env.topic(SHOPIFY_ORDERS)):
        decoded = decode(message)
        if isinstance(decoded, Rejected):
            expected.rejected.append(decoded)
            continue
        assert isinstance(decoded, Received)
        key = decoded.key
        try:  # on a copy: a refused update leaves the order's state as it was
            orders[key], outputs = apply_order(copy.deepcopy(orders.get(key)), decoded.update)
        except InvalidEventError as exc:
            expected.rejected.append(Rejected(message, str(exc), "order-state"))
            continue
        for out in outputs:
            if isinstance(out, PointsChange):
                expected.changes.setdefault(out.event_id, out)
    customers: dict[str, CustomerState] = {}
    for message in read_log(settings, env.topic(POINTS_COMMANDS)):
        command = guarded_decode("decode-command", decode_command_message)(message)
        assert isinstance(command, Command), command
        if isinstance(command.item, PointsChange):
            expected.commanded_changes.add(command.item.event_id)
        key = f"{command.item.merchant_id}:{command.item.customer}"
        state, results = apply_customer(customers.get(key), command.item)
        if state is not None:  # None: a tick for someone without points, nothing kept
            customers[key] = state
        for result in results:
            if isinstance(result, LedgerEntry):
                expected.entries[result.event_id] = result
            elif isinstance(result, RedemptionOutcome):
                expected.outcomes[result.redemption.redemption_id] = result
    expected.balances = {k: (s.balance, s.seq) for k, s in customers.items() if s.seq}
    return expected
