"""The tiers flow: customers' VIP tiers from their order changes, under each merchant's tiers.

    points.commands ─ decode (order changes, ticks; the rest is not ours) ─ key merchant:customer
        ─ tier-state ─┬─> points.tier and entry bonuses: points.commands
                      ├─> vip_tier.assigned (Avro)
                      ├─> PostgreSQL customer_tiers (the API's read model; due_at for the clock)
                      └─ moves ─ key merchant ─ count-state ─> PostgreSQL vip_tier_counts
    (anything unusable ─> tiers.dlq)

It reads the same log the points flow's customer stage applies, so it sees each customer's
order earns and reversals (base points, before any multiplier, and their amounts) in the order
they were applied, and the clock's ticks. What it sends back travels on that log too: the
customer stage applies a tier's multiplier to the order earns after the assignment in its log,
so a replay applies exactly the same multipliers. Its own records (tier assignments, bonuses)
are not order changes: it never counts them, so a tier cannot feed its own progress.

The rules are `loyalty/tier_customers.py`; the configuration in force at each input's time
comes from `connectors/tier_configs.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter

from connectors.avro import AvroEncoder, Encoder
from connectors.kafka import SinkMessage, SourceItem, SourceMessage
from connectors.kafka import source as kafka_source
from connectors.tier_configs import postgres_history
from connectors.tier_records import tier_event
from flows.common import (
    Rejected,
    StateCodec,
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
from loyalnest.topics import POINTS_COMMANDS, TIERS_DLQ, VIP_TIER_ASSIGNED
from loyalty.commands import customer_key, decode_command, encode_change, encode_tier
from loyalty.customers import Tick
from loyalty.ledger import ORDER_SOURCES, Kind, PointsChange
from loyalty.ledger import Source as ChangeSource
from loyalty.tier_config import TierConfig
from loyalty.tier_counts import CountsSnapshot, TierCounts, apply_count
from loyalty.tier_customers import (
    CountChange,
    OrderCount,
    TierCustomer,
    TierInput,
    TierMove,
    TierSnapshot,
    TierTick,
    apply_tiers,
)
from loyalty.tier_rows import counts_from_row, counts_row, tier_from_row, tier_row
from sinks.kafka import SnapshotKafkaSink, dead_letter_sink, routed
from sinks.tiers import customer_tiers_sink, tier_counts_sink

FLOW = "tiers"
ERRORS = Counter("tier_errors_total", "Messages sent to tiers.dlq", ["step"])
MOVES = Counter("tier_moves_total", "Customers' tier changes", ["direction"])
MOVES_UP, MOVES_DOWN = MOVES.labels("up"), MOVES.labels("down")
DECIDED = Counter("tier_inputs_total", "Order changes and ticks decided", ["kind"])
BONUSES = Counter("tier_entry_bonuses_total", "Entry bonus commands sent")
DECIDED_BY_KIND = {kind: DECIDED.labels(kind) for kind in ("order_change", "tick")}
ZERO = Decimal(0)
# Only these command types can concern tiers; the others are skipped before parsing.
_OURS = (b'"type":"points.change"', b'"type":"points.tick"')
# Nor can changes from other sources (entry bonuses are a third of the log under tiers). The
# log is compact JSON, where a quote inside a string is escaped: this text is the field.
_NOT_COUNTED = tuple(
    f'"source":"{source.value}"'.encode() for source in ChangeSource if source not in ORDER_SOURCES
)

ConfigAt = Callable[[str, datetime], TierConfig | None]


STATES = StateCodec(tier_row, tier_from_row)  # one compact row per customer
COUNTS = StateCodec(counts_row, counts_from_row)  # a count per tier name


@dataclass(frozen=True)
class Keyed:
    message: SourceMessage
    item: TierInput
    key: str  # merchant:customer


@dataclass
class Effects:
    """Everything one input decided, encoded before its state change is kept: one record per
    input through the flow's later steps (not one per output: each step costs per record)."""

    points: list[SinkMessage] = field(default_factory=list)  # assignments and bonuses
    events: list[SinkMessage] = field(default_factory=list)
    snapshots: list[TierSnapshot] = field(default_factory=list)
    counts: list[CountChange] = field(default_factory=list)
    bonuses: int = 0
    up: int = 0
    down: int = 0


def tier_input(raw: bytes | None) -> TierInput | None:
    """What a points.commands record means to tiers: an order change, a tick, or nothing."""
    if raw is None or not any(kind in raw for kind in _OURS):
        return None
    if any(source in raw for source in _NOT_COUNTED):
        return None
    command = decode_command(raw)
    if isinstance(command, Tick):
        return TierTick(command.merchant_id, command.customer, command.at)
    if not isinstance(command, PointsChange) or command.source not in ORDER_SOURCES:
        return None  # bonuses, referral rewards, pending releases: never counted
    assert command.order_id is not None  # order sources always name their order
    sign = 1 if command.kind is Kind.EARN else -1
    release = command.terms.release_at
    return OrderCount(
        shop=command.shop,
        customer=command.customer,
        order_id=command.order_id,
        at=command.at,
        counts_from=release if release is not None and release > command.at else command.at,
        points=sign * command.points,
        amount=sign * (command.amount or ZERO),
        locale=command.locale,
        change_key=command.key or command.source.value,
    )


def decode(message: SourceMessage) -> Keyed | None:
    item = tier_input(message.value)
    if item is None:
        return None
    return Keyed(message, item, f"{item.merchant_id}:{item.customer}")


@dataclass(frozen=True)
class EventEncoding:
    encoder: Encoder
    topic: str

    def message(self, move: TierMove) -> SinkMessage:
        value = self.encoder(tier_event(move))
        key = customer_key(move.merchant_id, move.customer)
        return KafkaSinkMessage(key=key, value=value, topic=self.topic)


def effects_of(items: list[Any], events: EventEncoding) -> Effects:
    """Each decision as the records it makes."""
    effects = Effects()
    for item in items:
        if isinstance(item, TierMove):
            key = customer_key(item.merchant_id, item.customer)
            effects.points.append(KafkaSinkMessage(key=key, value=encode_tier(item.change())))
            effects.events.append(events.message(item))
            if item.up:
                effects.up += 1
            else:
                effects.down += 1
        elif isinstance(item, PointsChange):
            key = customer_key(item.merchant_id, item.customer)
            effects.points.append(KafkaSinkMessage(key=key, value=encode_change(item)))
            effects.bonuses += 1
        elif isinstance(item, TierSnapshot):
            effects.snapshots.append(item)
        else:
            effects.counts.append(item)
    return effects


def count_effects(effects: Effects) -> None:
    if effects.bonuses:
        BONUSES.inc(effects.bonuses)
    if effects.up:
        MOVES_UP.inc(effects.up)
    if effects.down:
        MOVES_DOWN.inc(effects.down)


@dataclass(frozen=True)
class TierSinks:
    points: Sink[tuple[str, SinkMessage]]  # keyed (sinks.kafka.routed)
    events: Sink[tuple[str, SinkMessage]]
    tiers: Sink[TierSnapshot]
    counts: Sink[CountsSnapshot]
    dead_letters: Sink[SinkMessage]


def build(
    commands: Source[SourceItem], sinks: TierSinks, config_at: ConfigAt, events: EventEncoding
) -> Dataflow:
    flow = Dataflow(FLOW)
    decoded = op.map(
        "decode",
        op.input("commands-in", flow, commands),
        guarded_decode("decode", decode),
    )
    keyed = op.key_on("key", op.filter_map("ours", decoded, only(Keyed)), lambda k: k.key)

    def step(state: TierCustomer | None, k: Keyed) -> tuple[TierCustomer | None, list[Effects]]:
        # The configuration in force when the customer's clock says it is: the latest time
        # their log carried, so an input stamped earlier than one before it is decided under
        # the configuration the customer is already under.
        at = k.item.at if state is None or state.clock is None else max(k.item.at, state.clock)
        config = config_at(k.item.merchant_id, at)
        new_state, items = apply_tiers(state, k.item, config)
        effects = effects_of(list(items), events)
        DECIDED_BY_KIND[_kind(k.item)].inc()
        return new_state, [effects]

    state = guarded_state("tier-state", step, lambda k: k.message)
    out = op.flat_map(
        "tier-outputs", keyed_state("tier-state", keyed, state, STATES), keyed_outputs
    )
    effects = op.filter_map("effects", out, only(Effects))
    op.inspect("count-effects", effects, lambda _s, e: count_effects(e))
    to_points = op.flat_map("to-points", effects, lambda e: e.points)
    op.output("points-out", op.key_on("route-points", to_points, routed), sinks.points)
    to_events = op.flat_map("to-events", effects, lambda e: e.events)
    op.output("events-out", op.key_on("route-events", to_events, routed), sinks.events)
    op.output("tiers-out", op.flat_map("to-rows", effects, lambda e: e.snapshots), sinks.tiers)
    changes = op.key_on(
        "key-merchant", op.flat_map("to-counts", effects, lambda e: e.counts), merchant_of
    )
    counted = op.flat_map(
        "count-outputs",
        keyed_state("count-state", changes, count_step, COUNTS),
        keyed_outputs,
    )
    op.output("counts-out", counted, sinks.counts)
    dead_letters_out(
        FLOW, sinks.dead_letters, count_rejected, [("commands", decoded), ("tier-state", out)]
    )
    return flow


def _kind(item: TierInput) -> str:
    return "tick" if isinstance(item, TierTick) else "order_change"


def merchant_of(change: CountChange) -> str:
    return change.merchant_id


def count_step(
    state: TierCounts | None, change: CountChange
) -> tuple[TierCounts | None, list[CountsSnapshot]]:
    return apply_count(state, change)


def count_rejected(rejected: Rejected) -> None:
    ERRORS.labels(rejected.step).inc()


def flow() -> Dataflow:
    """Production wiring, for `python -m bytewax.run "flows.tiers:flow()"`."""
    settings = Settings()
    logs.configure_job(settings)
    apply_priority(settings, FLOW)
    brokers = settings.kafka_brokers
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    topic = settings.topic(VIP_TIER_ASSIGNED)
    history = postgres_history(settings.postgres_url)
    return build(
        kafka_source(brokers, [settings.topic(POINTS_COMMANDS)], flow=FLOW),
        TierSinks(
            points=SnapshotKafkaSink(brokers, settings.topic(POINTS_COMMANDS)),
            events=SnapshotKafkaSink(brokers),
            tiers=customer_tiers_sink(settings.postgres_url),
            counts=tier_counts_sink(settings.postgres_url),
            dead_letters=dead_letter_sink(brokers, settings.topic(TIERS_DLQ)),
        ),
        history.config_at,
        EventEncoding(AvroEncoder.registered(registry, VIP_TIER_ASSIGNED, topic), topic),
    )
