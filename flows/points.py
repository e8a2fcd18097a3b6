"""The points flow: Shopify order webhooks in, an exact ledger and balances out.

    shopify.orders ─ decode ─ key shop:order ─ order-state ─┬─ changes ─> points.commands
        (bad ─> points.dlq)                                 └─ skipped (counted, logged)
    points.commands ─ decode ─ key merchant:customer ─ customer-state ─┬─> MongoDB (ledger,
        (changes above + redemptions from the API)                     │   balances, redemptions)
                                                                       ├─> points.earned,
                                                                       │   reward.redemption
                                                                       └─> Redis balance cache

The order stage also reads `points.replay`: dead letters re-driven from a topic no flow reads.
Both stages live in one dataflow, so one recovery snapshot covers both states and both input
offsets. The customer stage reads only `points.commands`, whose per-customer order is fixed by
the log: a replay after a crash re-makes the same decisions, and every write is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
import pymongo
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter, Gauge

from connectors.avro import AvroEncoder, Encoder
from connectors.kafka import (
    CORRELATION_HEADER,
    SinkMessage,
    SourceItem,
    SourceMessage,
    correlation_headers,
    header_map,
)
from connectors.kafka import source as kafka_source
from connectors.points_records import (
    Translations,
    balance_id,
    balance_write,
    cache_update,
    entry_write,
    expiring_event,
    outcome_write,
    points_event,
    redemption_event,
)
from connectors.shopify import SHOP_HEADER, TOPIC_HEADER, read_policy
from connectors.store import load_translations
from flows.common import (
    Rejected,
    StateCodec,
    broker_time,
    collect_garbage_less_often,
    dead_letters_out,
    guarded_decode,
    guarded_state,
    keyed_outputs,
    keyed_state,
    only,
)
from loyalnest import logs
from loyalnest.priority import apply_priority
from loyalnest.settings import Settings
from loyalnest.topics import (
    POINTS_COMMANDS,
    POINTS_DLQ,
    POINTS_EARNED,
    POINTS_EXPIRING,
    POINTS_REPLAY,
    REWARD_REDEMPTION,
    SHOPIFY_ORDERS,
)
from loyalty import fields
from loyalty.commands import Command as CommandItem
from loyalty.commands import customer_key, decode_command, encode_change
from loyalty.customers import (
    AdjustmentOutcome,
    BalanceSnapshot,
    CustomerOutput,
    CustomerState,
    ExpiryWarning,
    LedgerEntry,
    RedemptionOutcome,
    Status,
    apply_customer,
)
from loyalty.ledger import (
    OrderState,
    OrderUpdate,
    PointsChange,
    Skipped,
    apply_order,
)
from loyalty.ledger import Source as ChangeSource
from loyalty.orders import InvalidEventError, parse_order_event
from loyalty.state_rows import customer_from_row, customer_row, order_from_row, order_row
from sinks.kafka import ReliableKafkaSink, dead_letter_sink
from sinks.mongo import Latest, MongoSink, MongoWrite, RoutedWrite
from sinks.redis_cache import BalanceCacheSink, CacheUpdate

log = logging.getLogger("loyalnest.flows.points")

FLOW = "points"
TRANSACTIONS = Counter("points_transactions_total", "Ledger entries written", ["type", "locale"])
ERRORS = Counter("points_errors_total", "Messages sent to the dead-letter topic", ["error_type"])
REDEMPTIONS = Counter("points_redemptions_total", "Redemptions decided", ["status"])
ADJUSTMENTS = Counter("points_adjustments_total", "Manual adjustments decided", ["status"])
WARNINGS = Counter("points_expiry_warnings_total", "points.expiring warnings sent")
ORDER_AGE = Gauge(
    "loyalnest_order_age_seconds",
    "End-to-end age of the newest order earn the customer stage applied: then minus when the "
    "API received its webhook (its ledger write follows in the same batch)",
    ["flow"],
)
SKIPPED = Counter("points_orders_skipped_total", "Orders that earn nothing", ["reason"])

# How each stage keeps its states: one compact row per key (loyalty/state_rows.py).
ORDER_STATES = StateCodec(order_row, order_from_row)
CUSTOMER_STATES = StateCodec(customer_row, customer_from_row)


@dataclass(frozen=True)
class Received:
    message: SourceMessage
    update: OrderUpdate
    key: str  # shop:order


@dataclass(frozen=True)
class Command:
    message: SourceMessage
    item: CommandItem
    key: str  # merchant:customer


# ------------------------------------------------------------------------- stage 1: orders


def decode_order(message: SourceMessage) -> Received:
    headers = header_map(message)
    event = parse_order_event(
        headers.get(SHOP_HEADER.lower()), headers.get(TOPIC_HEADER.lower()), message.value
    )
    received_at = broker_time(message)
    if received_at is None:
        raise InvalidEventError("record has no timestamp")
    update = OrderUpdate(
        shop=event.shop,
        topic=event.topic,
        facts=event.facts,
        received_at=received_at,
        policy=read_policy(lambda name: headers.get(name.lower())),
        correlation_id=_correlation_id(headers.get(CORRELATION_HEADER.lower())),
    )
    return Received(message, update, f"{event.shop}:{event.order_id}")


def _correlation_id(value: str | None) -> str | None:
    """A tracing id is kept only in its valid form: a malformed one is not worth an order."""
    return value if value is not None and fields.is_correlation_id(value) else None


def order_step(
    state: OrderState | None, received: Received
) -> tuple[OrderState | None, list[SinkMessage | Skipped]]:
    new_state, outputs = apply_order(state, received.update)
    return new_state, [change_message(o) if isinstance(o, PointsChange) else o for o in outputs]


def change_message(change: PointsChange) -> SinkMessage:
    return KafkaSinkMessage(
        key=customer_key(change.merchant_id, change.customer),
        value=encode_change(change),
        headers=correlation_headers(change.correlation_id),
    )


def count_skipped(skipped: Skipped) -> None:
    SKIPPED.labels(skipped.reason.value).inc()
    # DEBUG: an unpaid or test order is routine (a line each would flood a busy merchant's log);
    # the counter above is what operators watch.
    log.debug(
        "order %s of %s earns nothing: %s", skipped.order_id, skipped.shop, skipped.reason.value
    )


# ---------------------------------------------------------------------- stage 2: customers


def decode_command_message(message: SourceMessage) -> Command:
    item = decode_command(message.value)
    return Command(message, item, f"{item.merchant_id}:{item.customer}")


@dataclass(frozen=True)
class Effects:
    """Everything one command changes, built (encoded) before its state change is kept."""

    outputs: list[CustomerOutput]
    writes: list[RoutedWrite] = field(default_factory=list)
    events: list[SinkMessage] = field(default_factory=list)
    cache: list[CacheUpdate] = field(default_factory=list)


@dataclass(frozen=True)
class Outputs:
    """How customer outputs become records: descriptions, Avro encoders, topic names."""

    translations: Translations
    encoders: dict[str, Encoder]
    topic: Callable[[str], str]

    def effects(self, outputs: list[CustomerOutput]) -> Effects:
        effects = Effects(outputs)
        for output in outputs:
            if isinstance(output, BalanceSnapshot):
                # Only the newest balance of those waiting in the sink together is written.
                key = balance_id(output.merchant_id, output.customer)
                effects.writes.append((key, Latest(key, balance_write(output))))
                effects.cache.append(cache_update(output))
                continue
            write = self.write(output)
            if write is not None:
                effects.writes.append(write)
            event = self.event(output)
            if event is not None:
                effects.events.append(event)
        return effects

    def write(self, output: CustomerOutput) -> RoutedWrite | None:
        """The document an output changes, routed by customer (one customer's in order)."""
        if isinstance(output, LedgerEntry):
            write = entry_write(output, self.translations)
            return _routed(output.merchant_id, output.customer, write)
        if isinstance(output, RedemptionOutcome):
            r = output.redemption
            return _routed(r.merchant_id, r.customer, outcome_write(output))
        if isinstance(output, AdjustmentOutcome):
            a = output.adjustment
            return _routed(a.merchant_id, a.customer, outcome_write(output))
        return None

    def event(self, output: CustomerOutput) -> SinkMessage | None:
        if isinstance(output, LedgerEntry):
            record, contract = points_event(output, self.translations), POINTS_EARNED
            customer = output.customer
        elif isinstance(output, RedemptionOutcome) and output.status == Status.COMPLETED:
            record, contract = redemption_event(output), REWARD_REDEMPTION
            customer = output.redemption.customer
        elif isinstance(output, ExpiryWarning):
            record, contract = expiring_event(output), POINTS_EXPIRING
            customer = output.customer
        else:
            return None
        key = customer_key(record["merchant_id"], customer)
        value = self.encoders[contract](record)
        headers = correlation_headers(record.get("correlation_id"))
        return KafkaSinkMessage(key=key, value=value, topic=self.topic(contract), headers=headers)


def _routed(merchant_id: str, customer: int, write: MongoWrite) -> RoutedWrite:
    return balance_id(merchant_id, customer), write


def count_outputs(effects: Effects, locales: frozenset[str]) -> None:
    received: datetime | None = None  # the webhook time of the batch's newest order earn
    for output in effects.outputs:
        if isinstance(output, LedgerEntry):
            # Only known locales become label values: the series stay bounded.
            locale = output.locale if output.locale in locales else "other"
            TRANSACTIONS.labels(output.kind.value, locale).inc()
            if output.source is ChangeSource.ORDER and (received is None or output.at > received):
                received = output.at
        elif isinstance(output, RedemptionOutcome):
            REDEMPTIONS.labels(output.status.value).inc()
        elif isinstance(output, AdjustmentOutcome):
            ADJUSTMENTS.labels(output.status.value).inc()
        elif isinstance(output, ExpiryWarning):
            WARNINGS.inc()
    if received is not None:
        ORDER_AGE.labels(FLOW).set((datetime.now(UTC) - received).total_seconds())


def count_rejected(rejected: Rejected) -> None:
    ERRORS.labels(rejected.step.rsplit(".", 1)[-1]).inc()


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
    flow = Dataflow(FLOW)
    # Stage 1: orders -> points changes on points.commands.
    decoded = op.map(
        "decode-order",
        op.input("orders-in", flow, orders),
        guarded_decode("decode-order", decode_order),
    )
    keyed_orders = op.key_on(
        "key-by-order", op.filter_map("received", decoded, only(Received)), lambda r: r.key
    )
    order_state = guarded_state("order-state", order_step, lambda r: r.message)
    order_out = op.flat_map(
        "order-outputs",
        keyed_state("order-state", keyed_orders, order_state, ORDER_STATES),
        keyed_outputs,
    )
    op.output(
        "commands-out", op.filter_map("changes", order_out, only(KafkaSinkMessage)), sinks.commands
    )
    op.inspect(
        "count-skipped",
        op.filter_map("skipped", order_out, only(Skipped)),
        lambda _step, s: count_skipped(s),
    )

    # Stage 2: points.commands -> ledger, balances, redemptions, events, cache.
    records = Outputs(translations, encoders, topic)

    def customer_step(
        state: CustomerState | None, command: Command
    ) -> tuple[CustomerState | None, list[Effects]]:
        new_state, outputs = apply_customer(state, command.item)
        return new_state, [records.effects(outputs)] if outputs else []

    decoded_cmds = op.map(
        "decode-command",
        op.input("commands-in", flow, commands),
        guarded_decode("decode-command", decode_command_message),
    )
    keyed_cmds = op.key_on(
        "key-by-customer", op.filter_map("commands", decoded_cmds, only(Command)), lambda c: c.key
    )
    customer_state = guarded_state("customer-state", customer_step, lambda c: c.message)
    customer_out = op.flat_map(
        "customer-outputs",
        keyed_state("customer-state", keyed_cmds, customer_state, CUSTOMER_STATES),
        keyed_outputs,
    )
    effects = op.filter_map("effects", customer_out, only(Effects))
    locales = frozenset(locale for _key, locale in translations)
    op.inspect("count-outputs", effects, lambda _step, e: count_outputs(e, locales))
    op.output("ledger-out", op.flat_map("to-writes", effects, lambda e: e.writes), sinks.ledger)
    op.output("events-out", op.flat_map("to-events", effects, lambda e: e.events), sinks.events)
    op.output("cache-out", op.flat_map("to-cache", effects, lambda e: e.cache), sinks.cache)

    # Anything unusable, from any step of either stage, goes to the dead-letter topic.
    dead_letters_out(
        FLOW,
        sinks.dead_letters,
        count_rejected,
        [
            ("orders", decoded),
            ("order-state", order_out),
            ("commands", decoded_cmds),
            ("customer-state", customer_out),
        ],
    )
    return flow


def flow() -> Dataflow:
    """Production wiring, for `python -m bytewax.run "flows.points:flow()"`."""
    settings = Settings()
    return wired(
        settings,
        ledger=MongoSink(
            settings.mongo_url, settings.mongo_database, hold=settings.balance_write_hold_seconds
        ),
        cache=BalanceCacheSink(
            settings.redis_url, settings.redis_key_prefix, settings.balance_cache_seconds
        ),
    )


def wired(settings: Settings, *, ledger: Sink[RoutedWrite], cache: Sink[CacheUpdate]) -> Dataflow:
    """The flow on the configured Kafka topics, translations and schemas, writing its store
    documents to `ledger` and its balance cache updates to `cache`."""
    collect_garbage_less_often()
    logs.configure_job(settings)
    apply_priority(settings, FLOW)
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(settings.mongo_url) as client:
        translations = load_translations(client[settings.mongo_database])
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    encoders: dict[str, Encoder] = {
        topic: AvroEncoder.registered(registry, topic, settings.topic(topic))
        for topic in (POINTS_EARNED, REWARD_REDEMPTION, POINTS_EXPIRING)
    }
    brokers = settings.kafka_brokers
    sinks = PointsSinks(
        ledger=ledger,
        commands=ReliableKafkaSink(brokers, settings.topic(POINTS_COMMANDS)),
        events=ReliableKafkaSink(brokers),
        dead_letters=dead_letter_sink(brokers, settings.topic(POINTS_DLQ)),
        cache=cache,
    )
    return build(
        # points.replay: dead letters re-driven from a topic no flow reads (loyalnest/dlq.py).
        kafka_source(
            brokers, [settings.topic(SHOPIFY_ORDERS), settings.topic(POINTS_REPLAY)], flow=FLOW
        ),
        kafka_source(brokers, [settings.topic(POINTS_COMMANDS)], flow=FLOW),
        sinks,
        translations,
        encoders,
        topic=settings.topic,
    )
