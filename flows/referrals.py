"""The referrals flow: friends' orders and advocates' codes in; rewards, revocations and each
referral's status out.

    shopify.orders ─ decode ─ key shop:order ─ order-state ─────────────┐ friend orders
    referral.commands ─ decode ─ key merchant:code ─ code-state ─────────┤ verdicts
      (codes from the API, claims from below)                           v
                                                            referral.friends
    referral.friends ─ decode ─ key merchant:friend ─ friend-state ─┬─> claims: referral.commands
                                                                    ├─> rewards, reversals:
                                                                    │   points.commands
                                                                    ├─> PostgreSQL referrals
                                                                    │   (and its Redis cache)
                                                                    └─> referral.completed,
                                                                        referral.revoked (Avro)
    (anything unusable, from any step ─> referral.dlq)

The rules are `loyalty/referral*.py`. Each keyed state reads exactly one log, so the order it
sees things in is the log's, and a replay from offset 0 decides the same: the friend's and the
code's states talk through `referral.friends` and `referral.commands`, never directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter

from connectors.avro import AvroEncoder, Encoder
from connectors.kafka import SinkMessage, SourceItem, SourceMessage, header_map
from connectors.kafka import source as kafka_source
from connectors.referral_records import referral_event
from connectors.shopify import LOCALE_HEADER, SHOP_HEADER, TOPIC_HEADER, read_referral_terms
from flows.common import (
    Rejected,
    StateCodec,
    broker_time,
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
    REFERRAL_COMMANDS,
    REFERRAL_COMPLETED,
    REFERRAL_DLQ,
    REFERRAL_FRIENDS,
    REFERRAL_REVOKED,
    SHOPIFY_ORDERS,
)
from loyalty import fields, ids, json_input
from loyalty.commands import customer_key, encode_change
from loyalty.errors import InvalidEventError
from loyalty.ledger import PointsChange
from loyalty.orders import ORDER_TOPICS, read_facts
from loyalty.referral_commands import (
    decode_code_record,
    decode_friend_record,
    encode_claim,
    encode_friend_order,
    encode_verdict,
    friend_key,
    referral_key,
)
from loyalty.referral_orders import ReferralOrder, ReferralUpdate, apply_referral_order, extras_of
from loyalty.referral_rows import (
    code_from_row,
    code_row,
    friend_from_row,
    friend_row,
    order_from_row,
    order_row,
)
from loyalty.referrals import (
    Claim,
    CodeCreated,
    CodeState,
    FriendOrder,
    FriendState,
    Referral,
    Verdict,
    apply_code,
    apply_friend,
)
from sinks.kafka import ReliableKafkaSink, dead_letter_sink
from sinks.postgres import CacheTarget, ReferralsSink

log = logging.getLogger("loyalnest.flows.referrals")

FLOW = "referrals"
ERRORS = Counter("referral_errors_total", "Messages sent to referral.dlq", ["step"])
DECIDED = Counter("referrals_total", "Referral changes decided", ["status"])


# Each key holds its state as a versioned row (loyalty/referral_rows.py).
ORDER_STATES = StateCodec(order_row, order_from_row)
FRIEND_STATES = StateCodec(friend_row, friend_from_row)
CODE_STATES = StateCodec(code_row, code_from_row)


@dataclass(frozen=True)
class ToFriends:
    message: SinkMessage


@dataclass(frozen=True)
class ToCodes:
    message: SinkMessage


@dataclass(frozen=True)
class ToPoints:
    message: SinkMessage


@dataclass(frozen=True)
class Keyed:
    """A decoded record and the key of the state it goes to."""

    message: SourceMessage
    item: Any
    key: str


# ------------------------------------------------------------------------- the order stage


def decode_order(message: SourceMessage) -> Keyed:
    headers = header_map(message)
    shop = fields.shop_domain(headers.get(SHOP_HEADER.lower()))
    topic = headers.get(TOPIC_HEADER.lower())
    if topic not in ORDER_TOPICS:
        raise InvalidEventError(f"unsupported topic {fields.preview(topic)}")
    body = json_input.loads(message.value or b"")
    facts = read_facts(topic, body)
    received_at = broker_time(message)
    if received_at is None:
        raise InvalidEventError("record has no timestamp")
    locale = headers.get(LOCALE_HEADER.lower()) or "en"
    if not fields.is_locale(locale):
        raise InvalidEventError(f"{LOCALE_HEADER} is not a language code: {fields.preview(locale)}")
    update = ReferralUpdate(
        shop=shop,
        merchant_id=str(ids.merchant_id(shop)),
        facts=facts,
        extras=extras_of(body),
        received_at=received_at,
        terms=read_referral_terms(lambda name: headers.get(name.lower())),
        locale=locale,
    )
    return Keyed(message, update, f"{shop}:{facts.order_id}")


def order_step(state: ReferralOrder | None, keyed: Keyed) -> tuple[ReferralOrder, list[ToFriends]]:
    new_state, told = apply_referral_order(state, keyed.item)
    return new_state, [ToFriends(_friend_message(order)) for order in told]


def _friend_message(record: FriendOrder | Verdict) -> SinkMessage:
    value = (
        encode_friend_order(record) if isinstance(record, FriendOrder) else encode_verdict(record)
    )
    return KafkaSinkMessage(key=friend_key(record.merchant_id, record.friend), value=value)


# ------------------------------------------------------------------------ the friend stage


def decode_friend(message: SourceMessage) -> Keyed:
    item = decode_friend_record(message.value)
    return Keyed(message, item, f"{item.merchant_id}:{item.friend}")


def friend_step(
    state: FriendState | None, keyed: Keyed
) -> tuple[FriendState, list[ToCodes | ToPoints | Referral]]:
    new_state, outputs = apply_friend(state, keyed.item)
    routed: list[ToCodes | ToPoints | Referral] = []
    for output in outputs:
        if isinstance(output, Claim):
            key = referral_key(output.merchant_id, output.code)
            routed.append(ToCodes(KafkaSinkMessage(key=key, value=encode_claim(output))))
        elif isinstance(output, PointsChange):
            key = customer_key(output.merchant_id, output.customer)
            routed.append(ToPoints(KafkaSinkMessage(key=key, value=encode_change(output))))
        else:
            routed.append(output)
    return new_state, routed


# -------------------------------------------------------------------------- the code stage


def decode_code(message: SourceMessage) -> Keyed:
    item = decode_code_record(message.value)
    return Keyed(message, item, f"{item.merchant_id}:{item.code}")


def code_step(state: CodeState | None, keyed: Keyed) -> tuple[CodeState | None, list[ToFriends]]:
    item: CodeCreated | Claim = keyed.item
    new_state, verdicts = apply_code(state, item)
    return new_state, [ToFriends(_friend_message(v)) for v in verdicts]


# -------------------------------------------------------------------------------- wiring


@dataclass(frozen=True)
class ReferralSources:
    orders: Source[SourceItem]
    friends: Source[SourceItem]
    codes: Source[SourceItem]


@dataclass(frozen=True)
class ReferralSinks:
    friends: Sink[SinkMessage]
    codes: Sink[SinkMessage]
    points: Sink[SinkMessage]
    referrals: Sink[Referral]
    events: Sink[SinkMessage]
    dead_letters: Sink[SinkMessage]


@dataclass(frozen=True)
class EventEncoding:
    """How referral changes become events: an Avro encoder per contract (a base topic name),
    and the deployment's topic names."""

    encoders: dict[str, Encoder]
    topic: Callable[[str], str]

    def message(self, referral: Referral) -> SinkMessage | None:
        event = referral_event(referral)
        if event is None:
            return None
        contract, record = event
        return KafkaSinkMessage(
            key=friend_key(referral.merchant_id, referral.friend),
            value=self.encoders[contract](record),
            topic=self.topic(contract),
        )


def build(sources: ReferralSources, sinks: ReferralSinks, events: EventEncoding) -> Dataflow:
    flow = Dataflow(FLOW)

    def stage(name: str, source: Source[SourceItem], decode: Any, step: Any, codec: Any) -> Any:
        decoded = op.map(
            f"decode-{name}",
            op.input(f"{name}-in", flow, source),
            guarded_decode(f"decode-{name}", decode),
        )
        keyed = op.key_on(
            f"key-{name}", op.filter_map(f"{name}-ok", decoded, only(Keyed)), lambda k: k.key
        )
        state = guarded_state(f"{name}-state", step, lambda k: k.message)
        out = op.flat_map(
            f"{name}-outputs", keyed_state(f"{name}-state", keyed, state, codec), keyed_outputs
        )
        return decoded, out

    orders_in, orders_out = stage("order", sources.orders, decode_order, order_step, ORDER_STATES)
    friends_in, friends_out = stage(
        "friend", sources.friends, decode_friend, friend_step, FRIEND_STATES
    )
    codes_in, codes_out = stage("code", sources.codes, decode_code, code_step, CODE_STATES)

    to_friends = op.merge(
        "to-friends",
        op.filter_map("order-friends", orders_out, only(ToFriends)),
        op.filter_map("code-friends", codes_out, only(ToFriends)),
    )
    op.output(
        "friends-out", op.map("friend-messages", to_friends, lambda t: t.message), sinks.friends
    )
    codes = op.filter_map("claims", friends_out, only(ToCodes))
    op.output("codes-out", op.map("claim-messages", codes, lambda t: t.message), sinks.codes)
    points = op.filter_map("rewards", friends_out, only(ToPoints))
    op.output("points-out", op.map("point-messages", points, lambda t: t.message), sinks.points)
    referrals = op.filter_map("statuses", friends_out, only(Referral))
    op.inspect("count-referrals", referrals, lambda _s, r: DECIDED.labels(r.status.value).inc())
    op.output("referrals-out", referrals, sinks.referrals)
    op.output(
        "events-out", op.filter_map("event-messages", referrals, events.message), sinks.events
    )

    dead_letters_out(
        FLOW,
        sinks.dead_letters,
        count_rejected,
        [
            ("orders", orders_in),
            ("order-state", orders_out),
            ("friends", friends_in),
            ("friend-state", friends_out),
            ("codes", codes_in),
            ("code-state", codes_out),
        ],
    )
    return flow


def count_rejected(rejected: Rejected) -> None:
    ERRORS.labels(rejected.step).inc()


def flow() -> Dataflow:
    """Production wiring, for `python -m bytewax.run "flows.referrals:flow()"`."""
    settings = Settings()
    logs.configure_job(settings)
    apply_priority(settings, FLOW)
    brokers = settings.kafka_brokers
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    encoders: dict[str, Encoder] = {
        topic: AvroEncoder.registered(registry, topic, settings.topic(topic))
        for topic in (REFERRAL_COMPLETED, REFERRAL_REVOKED)
    }
    return build(
        ReferralSources(
            orders=kafka_source(brokers, [settings.topic(SHOPIFY_ORDERS)], flow=FLOW),
            friends=kafka_source(brokers, [settings.topic(REFERRAL_FRIENDS)], flow=FLOW),
            codes=kafka_source(brokers, [settings.topic(REFERRAL_COMMANDS)], flow=FLOW),
        ),
        ReferralSinks(
            friends=ReliableKafkaSink(brokers, settings.topic(REFERRAL_FRIENDS)),
            codes=ReliableKafkaSink(brokers, settings.topic(REFERRAL_COMMANDS)),
            points=ReliableKafkaSink(brokers, settings.topic(POINTS_COMMANDS)),
            referrals=ReferralsSink(
                settings.postgres_url,
                CacheTarget(
                    settings.redis_url,
                    settings.redis_key_prefix,
                    settings.referral_cache_seconds,
                ),
            ),
            events=ReliableKafkaSink(brokers),
            dead_letters=dead_letter_sink(brokers, settings.topic(REFERRAL_DLQ)),
        ),
        EventEncoding(encoders, settings.topic),
    )
