"""The RFM flow: order webhooks and RFM commands in, customers' scores and merchants' pictures out.

    shopify.orders ─ decode ─ key merchant:order ─ order-state ─ changes ─┐
    rfm.commands ─ decode ─┬─ rfm.tick ──────────────────────────────────┴─ key merchant:customer
                           │       ─ customer-state ─┬─> rfm_customers (MongoDB), rfm.updated
                           │                         └─ value changes ─┐
                           └─ rfm.day, rfm.settings ───────────────────┴─ key merchant
                                   ─ merchant-state ─> rfm_merchants (MongoDB)
    (anything unusable, from any step ─> rfm.dlq)

The rules are `loyalty/rfm*.py`. The merchant stage holds histograms only and refreshes its
picture once per batch of records. Customers are scored by `rfm.tick` records, which a
rescoring round produces from the stored documents and the merchant's picture: the loop goes
through the store and a log, never inside the dataflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter

from connectors.avro import AvroEncoder, Encoder
from connectors.kafka import SinkMessage, SourceItem, SourceMessage, header
from connectors.kafka import source as kafka_source
from connectors.rfm_records import customer_write, merchant_write, updated_event
from connectors.shopify import RFM_LOOKBACK_HEADER, SHOP_HEADER, TOPIC_HEADER
from flows.common import (
    Rejected,
    StateCodec,
    collect_garbage_less_often,
    dead_letters_out,
    failure_reason,
    guarded_decode,
    guarded_state,
    keyed_outputs,
    keyed_state,
    only,
)
from loyalnest import logs
from loyalnest.priority import apply_priority
from loyalnest.settings import Settings
from loyalnest.topics import RFM_COMMANDS, RFM_DLQ, RFM_UPDATED, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.orders import Facts, parse_order_event
from loyalty.rfm import Values
from loyalty.rfm_commands import CustomerTick, DayTick, RfmCommand, lookback_days
from loyalty.rfm_commands import Settings as RfmSettings
from loyalty.rfm_commands import decode as decode_rfm_command
from loyalty.rfm_customers import RfmCustomer, Tick, apply_order_change, apply_tick
from loyalty.rfm_merchants import RfmMerchant
from loyalty.rfm_orders import OrderChange, RfmOrder, apply_order_facts
from loyalty.rfm_rows import (
    customer_from_row,
    customer_row,
    merchant_from_row,
    merchant_row,
    order_from_row,
    order_row,
)
from loyalty.rfm_window import DEFAULT_LOOKBACK_DAYS
from sinks.kafka import ReliableKafkaSink, dead_letter_sink
from sinks.mongo import Latest, MongoSink, RoutedWrite

log = logging.getLogger("loyalnest.flows.rfm")

FLOW = "rfm"
ERRORS = Counter("rfm_errors_total", "Messages sent to rfm.dlq", ["step"])
UPDATES = Counter("rfm_updates_total", "rfm.updated events", ["segment"])

ORDER_STATES = StateCodec(order_row, order_from_row)
CUSTOMER_STATES = StateCodec(customer_row, customer_from_row)
MERCHANT_STATES = StateCodec(merchant_row, merchant_from_row)


@dataclass(frozen=True)
class OrderIn:
    message: SourceMessage
    facts: Facts
    lookback: int
    merchant_id: str

    @property
    def key(self) -> str:
        return f"{self.merchant_id}:{self.facts.order_id}"


@dataclass(frozen=True)
class CustomerIn:
    message: SourceMessage
    merchant_id: str
    customer: int
    item: OrderChange | Tick
    lookback: int

    @property
    def key(self) -> str:
        return f"{self.merchant_id}:{self.customer}"


@dataclass(frozen=True)
class ValuesChange:
    before: Values | None
    after: Values
    lookback: int  # the window the customer's record carried


@dataclass(frozen=True)
class MerchantIn:
    message: SourceMessage
    merchant_id: str
    item: ValuesChange | DayTick | RfmSettings


@dataclass(frozen=True)
class CustomerEffects:
    to_merchant: MerchantIn | None
    writes: list[RoutedWrite] = field(default_factory=list)
    events: list[SinkMessage] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)  # of the events, for the metric


# ------------------------------------------------------------------------- stage 1: orders


def decode_order(message: SourceMessage) -> OrderIn:
    event = parse_order_event(
        header(message, SHOP_HEADER), header(message, TOPIC_HEADER), message.value
    )
    raw_lookback = header(message, RFM_LOOKBACK_HEADER)
    lookback = DEFAULT_LOOKBACK_DAYS if raw_lookback is None else lookback_days(raw_lookback)
    merchant_id = str(ids.merchant_id(event.shop))
    return OrderIn(message, event.facts, lookback, merchant_id)


def order_step(state: RfmOrder | None, received: OrderIn) -> tuple[RfmOrder, list[CustomerIn]]:
    new_state, changes = apply_order_facts(state, received.facts)
    return new_state, [
        CustomerIn(received.message, received.merchant_id, c.customer, c, received.lookback)
        for c in changes
    ]


# ------------------------------------------------------------------ commands on rfm.commands


def decode_command(message: SourceMessage) -> CustomerIn | MerchantIn:
    command: RfmCommand = decode_rfm_command(message.value)
    if isinstance(command, CustomerTick):
        return CustomerIn(
            message, command.merchant_id, command.customer, command.tick, command.lookback_days
        )
    return MerchantIn(message, command.merchant_id, command)


# ---------------------------------------------------------------------- stage 2: customers


@dataclass(frozen=True)
class Outputs:
    """How customer outcomes become records: the rfm.updated encoder and topic."""

    encode_updated: Encoder
    updated_topic: str

    def customer_step(
        self, state: RfmCustomer | None, item: CustomerIn
    ) -> tuple[RfmCustomer, list[CustomerEffects]]:
        if isinstance(item.item, OrderChange):
            customer, outcome = apply_order_change(state, item.item, item.lookback)
        else:
            customer, outcome = apply_tick(state, item.item, item.lookback)
        to_merchant = None
        if outcome.values_change is not None:
            change = ValuesChange(*outcome.values_change, item.lookback)
            to_merchant = MerchantIn(item.message, item.merchant_id, change)
        effects = CustomerEffects(to_merchant)
        write = customer_write(item.merchant_id, item.customer, customer, item.lookback)
        # Only the newest document of those waiting in the sink together is written.
        effects.writes.append((item.key, Latest(item.key, write)))
        if outcome.update is not None:
            record = updated_event(item.merchant_id, item.customer, outcome.update)
            effects.segments.append(record["segment"])
            effects.events.append(
                KafkaSinkMessage(
                    key=item.key.encode(),
                    value=self.encode_updated(record),
                    topic=self.updated_topic,
                )
            )
        return customer, [effects]


def count_updates(effects: CustomerEffects) -> None:
    for segment in effects.segments:  # eleven names: the series stay bounded
        UPDATES.labels(segment).inc()


# ---------------------------------------------------------------------- stage 3: merchants


class MerchantLogic(StatefulBatchLogic[MerchantIn, RoutedWrite | Rejected, bytes]):
    """One merchant: its histograms take a whole batch of records, then the picture is
    refreshed once (recomputing scales is linear in the histograms, not per record)."""

    __slots__ = ("_merchant",)

    def __init__(self, resume: bytes | None) -> None:
        self._merchant = RfmMerchant() if resume is None else MERCHANT_STATES.decode(resume)

    def on_batch(self, values: list[MerchantIn]) -> tuple[list[RoutedWrite | Rejected], bool]:
        out: list[RoutedWrite | Rejected] = []
        merchant_id = values[0].merchant_id if values else ""
        for value in values:
            try:
                self._apply(value.item)
            except Exception as exc:  # the record, not the flow, failed; the state is untouched
                out.append(Rejected(value.message, failure_reason(exc), "merchant-state"))
        picture = self._merchant.refresh()
        if picture is not None:
            write = merchant_write(merchant_id, picture)
            out.append((merchant_id, Latest(merchant_id, write)))
        return out, False

    def _apply(self, item: ValuesChange | DayTick | RfmSettings) -> None:
        if isinstance(item, ValuesChange):
            self._merchant.change(item.before, item.after, item.lookback)
        elif isinstance(item, DayTick):
            self._merchant.advance(item.as_of)
        else:
            self._merchant.use(item.thresholds)

    def snapshot(self) -> bytes:
        return MERCHANT_STATES.encode(self._merchant)


# -------------------------------------------------------------------------------- wiring


@dataclass(frozen=True)
class RfmSinks:
    writes: Sink[RoutedWrite]
    events: Sink[SinkMessage]
    dead_letters: Sink[SinkMessage]


def build(
    orders: Source[SourceItem],
    commands: Source[SourceItem],
    sinks: RfmSinks,
    encode_updated: Encoder,
    topic: Callable[[str], str] = str,
) -> Dataflow:
    flow = Dataflow(FLOW)
    decoded = op.map(
        "decode-order",
        op.input("orders-in", flow, orders),
        guarded_decode("decode-order", decode_order),
    )
    keyed_orders = op.key_on(
        "key-by-order", op.filter_map("received", decoded, only(OrderIn)), lambda r: r.key
    )
    order_out = op.flat_map(
        "order-outputs",
        keyed_state(
            "order-state",
            keyed_orders,
            guarded_state("order-state", order_step, lambda r: r.message),
            ORDER_STATES,
        ),
        keyed_outputs,
    )
    decoded_cmds = op.map(
        "decode-command",
        op.input("commands-in", flow, commands),
        guarded_decode("decode-command", decode_command),
    )
    for_customers = op.merge(
        "for-customers",
        op.filter_map("order-changes", order_out, only(CustomerIn)),
        op.filter_map("ticks", decoded_cmds, only(CustomerIn)),
    )
    outputs = Outputs(encode_updated, topic(RFM_UPDATED))
    customer_out = op.flat_map(
        "customer-outputs",
        keyed_state(
            "customer-state",
            op.key_on("key-by-customer", for_customers, lambda c: c.key),
            guarded_state("customer-state", outputs.customer_step, lambda c: c.message),
            CUSTOMER_STATES,
        ),
        keyed_outputs,
    )
    effects = op.filter_map("effects", customer_out, only(CustomerEffects))
    op.inspect("count-updates", effects, lambda _step, e: count_updates(e))
    for_merchants = op.merge(
        "for-merchants",
        op.filter_map("value-changes", effects, lambda e: e.to_merchant),
        op.filter_map("merchant-commands", decoded_cmds, only(MerchantIn)),
    )
    merchant_out = op.flat_map(
        "merchant-outputs",
        op.stateful_batch(
            "merchant-state",
            op.key_on("key-by-merchant", for_merchants, lambda m: m.merchant_id),
            MerchantLogic,
        ),
        lambda keyed: [keyed[1]],
    )
    writes = op.merge(
        "writes",
        op.flat_map("customer-writes", effects, lambda e: e.writes),
        op.filter_map("merchant-writes", merchant_out, _write),
    )
    op.output("writes-out", writes, sinks.writes)
    op.output("events-out", op.flat_map("to-events", effects, lambda e: e.events), sinks.events)
    dead_letters_out(
        FLOW,
        sinks.dead_letters,
        count_rejected,
        [
            ("orders", decoded),
            ("order-state", order_out),
            ("commands", decoded_cmds),
            ("customer-state", customer_out),
            ("merchant-state", merchant_out),
        ],
    )
    return flow


def _write(item: RoutedWrite | Rejected) -> RoutedWrite | None:
    return None if isinstance(item, Rejected) else item


def count_rejected(rejected: Rejected) -> None:
    ERRORS.labels(rejected.step.rsplit(".", 1)[-1]).inc()


def flow() -> Dataflow:
    """Production wiring, for `python -m bytewax.run "flows.rfm:flow()"`."""
    collect_garbage_less_often()
    settings = Settings()
    logs.configure_job(settings)
    apply_priority(settings, FLOW)
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    brokers = settings.kafka_brokers
    sinks = RfmSinks(
        writes=MongoSink(settings.mongo_url, settings.mongo_database),
        events=ReliableKafkaSink(brokers),
        dead_letters=dead_letter_sink(brokers, settings.topic(RFM_DLQ)),
    )
    return build(
        kafka_source(brokers, [settings.topic(SHOPIFY_ORDERS)], flow=FLOW),
        kafka_source(brokers, [settings.topic(RFM_COMMANDS)], flow=FLOW),
        sinks,
        AvroEncoder.registered(registry, RFM_UPDATED, settings.topic(RFM_UPDATED)),
        topic=settings.topic,
    )
