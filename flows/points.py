"""The points flow: Shopify order webhooks in, an exact ledger and balances out.

    shopify.orders ─ decode ─ key shop:order ─ order-state ─┬─ changes ─> points.commands
        (bad ─> points.dlq)                                 └─ skipped (counted, logged)
    points.commands ─ decode ─ key merchant:customer ─ customer-state ─┬─> MongoDB (ledger,
        (changes above + redemptions from the API)                     │   balances, redemptions)
                                                                       ├─> points.earned,
                                                                       │   reward.redemption
                                                                       └─> Redis balance cache

Both stages live in one dataflow, so one recovery snapshot covers both states and both input
offsets. The customer stage reads only `points.commands`, whose per-customer order is fixed by
the log: a replay after a crash re-makes the same decisions, and every write is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import bytewax.operators as op
import pymongo
from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter

from connectors.avro import AvroEncoder
from connectors.kafka import SinkMessage, SourceItem, SourceMessage, header
from connectors.kafka import source as kafka_source
from connectors.points_records import (
    Translations,
    balance_id,
    cache_update,
    entry_writes,
    outcome_write,
    points_event,
    redemption_event,
)
from connectors.shopify import (
    CORRELATION_HEADER,
    LOCALE_HEADER,
    POINTS_PER_UNIT_HEADER,
)
from connectors.translations import load_translations
from flows.common import Rejected, broker_time, collect_garbage_less_often, only, to_dead_letter
from loyalnest.settings import Settings
from loyalnest.topics import (
    POINTS_COMMANDS,
    POINTS_DLQ,
    POINTS_EARNED,
    REWARD_REDEMPTION,
    SHOPIFY_ORDERS,
)
from loyalty import ids
from loyalty.commands import customer_key, decode_command, encode_change
from loyalty.ledger import (
    CustomerOutput,
    CustomerState,
    LedgerEntry,
    OrderOutput,
    OrderState,
    OrderUpdate,
    PointsChange,
    Policy,
    Redemption,
    RedemptionStatus,
    Skipped,
    apply_customer,
    apply_order,
)
from loyalty.orders import InvalidEventError, parse_order_event
from sinks.kafka import ReliableKafkaSink
from sinks.mongo import MongoSink, RoutedWrite
from sinks.redis_cache import BalanceCacheSink, CacheUpdate

log = logging.getLogger("loyalnest.flows.points")

TRANSACTIONS = Counter("points_transactions_total", "Ledger entries written", ["type", "locale"])
ERRORS = Counter("points_errors_total", "Messages sent to the dead-letter topic", ["error_type"])
REDEMPTIONS = Counter("points_redemptions_total", "Redemptions decided", ["status"])
SKIPPED = Counter("points_orders_skipped_total", "Orders that earn nothing", ["reason"])

Encoder = Callable[[dict[str, Any]], bytes]


@dataclass(frozen=True)
class Received:
    message: SourceMessage
    update: OrderUpdate


@dataclass(frozen=True)
class Command:
    message: SourceMessage
    item: PointsChange | Redemption


# ------------------------------------------------------------------------- stage 1: orders


def decode_order(item: SourceItem) -> Received | Rejected:
    step = "points.decode-order"
    if isinstance(item, KafkaError):
        return Rejected(item.msg, f"kafka error: {item.err}", step)
    try:
        event = parse_order_event(
            header(item, "X-Shopify-Shop-Domain"), header(item, "X-Shopify-Topic"), item.value
        )
        received_at = broker_time(item)
        if received_at is None:
            raise InvalidEventError("record has no timestamp")
        update = OrderUpdate(
            shop=event.shop,
            topic=event.topic,
            body=event.body,
            received_at=received_at,
            policy=_policy(item),
            correlation_id=header(item, CORRELATION_HEADER),
        )
    except InvalidEventError as exc:
        return Rejected(item, str(exc), step)
    return Received(item, update)


def _policy(message: SourceMessage) -> Policy:
    raw = header(message, POINTS_PER_UNIT_HEADER)
    try:
        rate = Decimal(raw) if raw is not None else Decimal(1)
    except InvalidOperation as exc:
        raise InvalidEventError(f"{POINTS_PER_UNIT_HEADER} is not a decimal: {raw!r}") from exc
    if not rate.is_finite() or rate < 0:
        raise InvalidEventError(f"{POINTS_PER_UNIT_HEADER} must be a non-negative amount")
    return Policy(points_per_unit=rate, locale=header(message, LOCALE_HEADER) or "en")


def order_key(received: Received) -> str:
    return f"{ids.normalize_shop(received.update.shop)}:{received.update.order_id}"


def step_order(
    state: OrderState | None, received: Received
) -> tuple[OrderState | None, list[OrderOutput | Rejected]]:
    try:
        new_state, outputs = apply_order(state, received.update)
    except InvalidEventError as exc:
        return state, [Rejected(received.message, str(exc), "points.order-state")]
    return new_state, list(outputs)


def change_message(change: PointsChange) -> SinkMessage:
    return KafkaSinkMessage(
        key=customer_key(change.merchant_id, change.customer), value=encode_change(change)
    )


def count_skipped(skipped: Skipped) -> None:
    SKIPPED.labels(skipped.reason.value).inc()
    log.info(
        "order %s of %s earns nothing: %s", skipped.order_id, skipped.shop, skipped.reason.value
    )


# ---------------------------------------------------------------------- stage 2: customers


def decode_command_message(item: SourceItem) -> Command | Rejected:
    step = "points.decode-command"
    if isinstance(item, KafkaError):
        return Rejected(item.msg, f"kafka error: {item.err}", step)
    try:
        return Command(item, decode_command(item.value))
    except InvalidEventError as exc:
        return Rejected(item, str(exc), step)


def command_key(command: Command) -> str:
    item = command.item
    merchant = item.merchant_id
    return f"{merchant}:{item.customer}"


def step_customer(
    state: CustomerState | None, command: Command
) -> tuple[CustomerState, list[CustomerOutput]]:
    return apply_customer(state, command.item)


def writes(output: CustomerOutput, translations: Translations) -> list[RoutedWrite]:
    """The documents an output changes, routed by customer (one customer's writes in order)."""
    if isinstance(output, LedgerEntry):
        TRANSACTIONS.labels(output.kind.value, output.locale).inc()
        key = balance_id(output.merchant_id, output.customer)
        return [(key, write) for write in entry_writes(output, translations)]
    REDEMPTIONS.labels(output.status.value).inc()
    r = output.redemption
    return [(balance_id(r.merchant_id, r.customer), outcome_write(output))]


def events(
    output: CustomerOutput,
    translations: Translations,
    encoders: dict[str, Encoder],
    topic: Callable[[str], str],
) -> list[SinkMessage]:
    if isinstance(output, LedgerEntry):
        record, contract = points_event(output, translations), POINTS_EARNED
    elif output.status == RedemptionStatus.COMPLETED:
        record, contract = redemption_event(output), REWARD_REDEMPTION
    else:
        return []
    key = customer_key(record["merchant_id"], _customer_of(output))
    return [KafkaSinkMessage(key=key, value=encoders[contract](record), topic=topic(contract))]


def _customer_of(output: CustomerOutput) -> int:
    return output.customer if isinstance(output, LedgerEntry) else output.redemption.customer


def dead_letter(rejected: Rejected) -> SinkMessage:
    ERRORS.labels(rejected.step.rsplit(".", 1)[-1]).inc()
    return to_dead_letter(rejected)


# -------------------------------------------------------------------------------- wiring


@dataclass(frozen=True)
class PointsSinks:
    ledger: Sink[RoutedWrite]
    commands: Sink[SinkMessage]
    events: Sink[SinkMessage]
    dead_letters: Sink[SinkMessage]
    cache: Sink[CacheUpdate]


def build(
    orders: Source[SourceItem],
    commands: Source[SourceItem],
    sinks: PointsSinks,
    translations: Translations,
    encoders: dict[str, Encoder],
    topic: Callable[[str], str] = str,
) -> Dataflow:
    """Wire the flow. `encoders` maps a contract (a base topic name) to its Avro encoder;
    `topic` turns a base topic name into the real one (the configured prefix)."""
    flow = Dataflow("points")
    # Stage 1: orders -> points changes on points.commands.
    decoded = op.map("decode-order", op.input("orders-in", flow, orders), decode_order)
    received = op.filter_map("received", decoded, only(Received))
    keyed_orders = op.key_on("key-by-order", received, order_key)
    order_out = op.flat_map(
        "order-outputs", op.stateful_map("order-state", keyed_orders, step_order), lambda kv: kv[1]
    )
    changes = op.filter_map("changes", order_out, only(PointsChange))
    op.output("commands-out", op.map("change-message", changes, change_message), sinks.commands)
    op.inspect(
        "count-skipped",
        op.filter_map("skipped", order_out, only(Skipped)),
        lambda _step, s: count_skipped(s),
    )

    # Stage 2: points.commands -> ledger, balances, redemptions, events, cache.
    decoded_cmds = op.map(
        "decode-command", op.input("commands-in", flow, commands), decode_command_message
    )
    cmds = op.filter_map("commands", decoded_cmds, only(Command))
    keyed_cmds = op.key_on("key-by-customer", cmds, command_key)
    outputs = op.flat_map(
        "customer-outputs",
        op.stateful_map("customer-state", keyed_cmds, step_customer),
        lambda kv: kv[1],
    )
    op.output(
        "ledger-out",
        op.flat_map("to-writes", outputs, lambda o: writes(o, translations)),
        sinks.ledger,
    )
    op.output(
        "events-out",
        op.flat_map("to-events", outputs, lambda o: events(o, translations, encoders, topic)),
        sinks.events,
    )
    entries = op.filter_map("entries", outputs, only(LedgerEntry))
    op.output("cache-out", op.map("to-cache", entries, cache_update), sinks.cache)

    # Anything unusable, from either stage, goes to the dead-letter topic with its reason.
    rejected = op.merge(
        "rejected",
        op.filter_map("bad-orders", decoded, only(Rejected)),
        op.filter_map("bad-order-state", order_out, only(Rejected)),
        op.filter_map("bad-commands", decoded_cmds, only(Rejected)),
    )
    op.output("dlq-out", op.map("to-dead-letter", rejected, dead_letter), sinks.dead_letters)
    return flow


def flow() -> Dataflow:
    """Production wiring, for `python -m bytewax.run "flows.points:flow()"`."""
    collect_garbage_less_often()
    settings = Settings()
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(settings.mongo_url) as client:
        translations = load_translations(client[settings.mongo_database])
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    encoders: dict[str, Encoder] = {
        topic: AvroEncoder(registry, topic, settings.topic(topic))
        for topic in (POINTS_EARNED, REWARD_REDEMPTION)
    }
    brokers = settings.kafka_brokers
    sinks = PointsSinks(
        ledger=MongoSink(settings.mongo_url, settings.mongo_database),
        commands=ReliableKafkaSink(brokers, settings.topic(POINTS_COMMANDS)),
        events=ReliableKafkaSink(brokers),
        dead_letters=ReliableKafkaSink(brokers, settings.topic(POINTS_DLQ)),
        cache=BalanceCacheSink(settings.redis_url, settings.redis_key_prefix),
    )
    return build(
        kafka_source(brokers, [settings.topic(SHOPIFY_ORDERS)]),
        kafka_source(brokers, [settings.topic(POINTS_COMMANDS)]),
        sinks,
        translations,
        encoders,
        topic=settings.topic,
    )
