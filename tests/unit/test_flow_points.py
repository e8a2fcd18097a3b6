"""The points flow run in-process (Bytewax testing sources and sinks): no record stops it.

Every record a step cannot use becomes a dead letter naming the flow, the step and the reason,
and the records after it are processed as if it had never been there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import bson
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import KafkaError as ConfluentKafkaError
from prometheus_client import REGISTRY

from connectors.avro import AvroEncoder, Encoder
from connectors.dead_letters import DLQ_FLOW, DLQ_ORIGIN, DLQ_REASON, DLQ_STEP
from connectors.kafka import SinkMessage, SourceItem, SourceMessage
from flows.points import PointsSinks, build
from loyalnest.schemas import schema_text
from loyalnest.topics import POINTS_EARNED, POINTS_EXPIRING, REWARD_REDEMPTION
from loyalty import ids
from loyalty.commands import decode_command, encode_adjustment, encode_change, encode_tick
from loyalty.customers import Adjustment, Tick
from loyalty.i18n import BUILT_IN
from loyalty.ledger import Kind, PointsChange, Source
from sinks.mongo import Latest, RoutedWrite
from sinks.redis_cache import CacheUpdate
from tests.hostile_orders import CORPUS, Hostile, order

GOOD_SHOP = "good.myshopify.com"
RECEIVED_MS = 1_763_700_000_000
AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def encoders() -> dict[str, Encoder]:
    contracts = (POINTS_EARNED, REWARD_REDEMPTION, POINTS_EXPIRING)
    return {t: AvroEncoder(n, schema_text(t)) for n, t in enumerate(contracts)}


def record(
    value: bytes, headers: list[tuple[str, bytes]], offset: int, topic: str
) -> SourceMessage:
    return KafkaSourceMessage(
        key=b"k",
        value=value,
        topic=topic,
        headers=headers,
        partition=0,
        offset=offset,
        timestamp=(1, RECEIVED_MS + offset),
    )


class Run:
    def __init__(
        self,
        orders: list[SourceItem],
        commands: list[SourceItem],
        translations: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.writes: list[RoutedWrite] = []
        self.commands: list[SinkMessage] = []
        self.events: list[SinkMessage] = []
        self.dead_letters: list[SinkMessage] = []
        self.cache: list[CacheUpdate] = []
        sinks = PointsSinks(
            ledger=TestingSink(self.writes),
            commands=TestingSink(self.commands),
            events=TestingSink(self.events),
            dead_letters=TestingSink(self.dead_letters),
            cache=TestingSink(self.cache),
        )
        flow = build(
            TestingSource(orders),
            TestingSource(commands),
            sinks,
            BUILT_IN if translations is None else translations,
            encoders(),
        )
        run_main(flow)  # type: ignore[no-untyped-call]  # bytewax's stub leaves it unannotated

    def dead(self) -> list[dict[str, bytes]]:
        return [dict(d.headers) for d in self.dead_letters]

    def documents(self, collection: str) -> list[dict[str, Any]]:
        """The fields written to `collection`, decoded: an insert's document, an update's
        `$set`, a guarded balance update's new document (a customer's first balance is
        inserted, later ones update it)."""
        plain = [w.write if isinstance(w, Latest) else w for _key, w in self.writes]
        return [written(op._doc) for name, op in plain if name == collection]


def written(document: object) -> dict[str, Any]:
    if isinstance(document, list):  # an update pipeline: the balance's version guard
        (stage,) = document
        return cast(dict[str, Any], decoded(stage)["$replaceWith"]["$cond"][1]["$literal"])
    doc = decoded(document)
    return cast(dict[str, Any], doc.get("$set", doc))


def decoded(document: object) -> dict[str, Any]:
    assert isinstance(document, RawBSONDocument)  # encoded by the step, not by the sink
    return bson.decode(document.raw, CodecOptions(tz_aware=True))


def good_order(n: int) -> SourceMessage:
    headers = [("X-Shopify-Shop-Domain", GOOD_SHOP.encode()), ("X-Shopify-Topic", b"orders/paid")]
    return record(order(5_000 + n, customer={"id": 900 + n}), headers, 2 * n + 1, "shopify.orders")


def hostile(h: Hostile, n: int) -> SourceMessage:
    return record(h.body, h.headers(), 2 * n, "shopify.orders")


# ------------------------------------------------------------------------------ stage 1


def test_every_hostile_order_is_dead_lettered_and_the_valid_order_after_it_earns() -> None:
    items: list[SourceItem] = []
    for n, h in enumerate(CORPUS):
        items += [hostile(h, n), good_order(n)]

    run = Run(items, [])

    dead = {d[DLQ_ORIGIN]: d for d in run.dead()}
    for n, h in enumerate(CORPUS):
        letter = dead.pop(f"shopify.orders/0/{2 * n}".encode(), None)
        assert letter is not None, f"{h.name} was not dead-lettered"
        assert h.reason.encode() in letter[DLQ_REASON], (h.name, letter[DLQ_REASON])
        assert letter[DLQ_FLOW] == b"points"
        assert letter[DLQ_STEP] in (b"decode-order", b"order-state")
    assert dead == {}, "only the hostile records are dead letters"
    earned = [decode_command(c.value) for c in run.commands]
    assert [(c.customer, c.points) for c in earned if isinstance(c, PointsChange)] == [
        (900 + n, 100) for n in range(len(CORPUS))
    ]


def test_a_dead_letter_keeps_the_whole_original_record() -> None:
    big = next(h for h in CORPUS if h.name == "over-a-megabyte")

    run = Run([hostile(big, 0)], [])

    (letter,) = run.dead_letters
    assert letter.value == big.body
    assert letter.headers[:2] == big.headers()


def test_an_order_refused_by_the_state_machine_leaves_the_order_state_as_it_was() -> None:
    # The same order first too rich for the limit (refused), then valid: it earns once.
    rich = next(h for h in CORPUS if h.name == "points-over-limit-1")
    again = record(order(108), rich.headers()[:2], 1, "shopify.orders")

    run = Run([hostile(rich, 0), again], [])

    assert [d[DLQ_STEP] for d in run.dead()] == [b"order-state"]
    (earn,) = [decode_command(c.value) for c in run.commands]
    assert isinstance(earn, PointsChange)
    assert (earn.order_id, earn.points) == (108, 100)


def test_a_consumer_error_is_dead_lettered() -> None:
    failed = record(b"partial", [], 5, "shopify.orders")
    error = KafkaError(ConfluentKafkaError(ConfluentKafkaError._MSG_TIMED_OUT), failed)

    run = Run([error, good_order(0)], [])

    assert [d[DLQ_REASON].startswith(b"kafka error") for d in run.dead()] == [True]
    assert len(run.commands) == 1


# ------------------------------------------------------------------------------ stage 2


def change(customer: int, points: int, order_id: int, locale: str = "en") -> bytes:
    return encode_change(
        PointsChange(
            shop=GOOD_SHOP,
            customer=customer,
            source=Source.ORDER,
            source_id=str(order_id),
            order_id=order_id,
            kind=Kind.EARN,
            points=points,
            key="earn",
            text_key="points.earned.order",
            locale=locale,
            at=AT,
        )
    )


def command(value: bytes, offset: int) -> SourceMessage:
    return record(value, [], offset, "points.commands")


def mutated(field: str, value: object) -> bytes:
    body = json.loads(change(5, 10, 1))
    body[field] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (mutated("points", 0), "points must be from 1"),
        (mutated("points", 10**13), "points must be from 1"),
        (mutated("customer", 2**63), "customer must be an id"),
        (mutated("kind", "spend"), "unknown change kind"),
        (mutated("key", "earn; drop"), "key is malformed"),
        (mutated("text_key", "points.nope"), "text_key is not a known description"),
        (mutated("locale", "x" * 100), "locale is not a language code"),
        (mutated("correlation_id", "a b"), "correlation_id is malformed"),
        (mutated("at", "yesterday"), "at must be an ISO-8601 time"),
        (mutated("shop", "evil.example.com"), "not a myshopify.com shop domain"),
        (b'{"type": "points.change"', "not JSON"),
        (b'{"type": "points.burn"}', "unknown command type"),
    ],
)
def test_a_malformed_command_is_dead_lettered_and_the_next_applies(
    value: bytes, reason: str
) -> None:
    run = Run([], [command(value, 0), command(change(6, 40, 2), 1)])

    (letter,) = run.dead()
    assert reason.encode() in letter[DLQ_REASON]
    assert letter[DLQ_STEP] == b"decode-command"
    balances = run.documents("point_balances")
    assert [(b["shopify_customer_id"], b["balance"]) for b in balances] == [(6, 40)]


def test_a_command_whose_outputs_cannot_be_built_leaves_the_balance_as_it_was() -> None:
    # A broken Arabic description: building the ledger document of that earn fails.
    broken = {**BUILT_IN, ("points.earned.order", "ar"): "{no_such_value}"}

    run = Run([], [command(change(5, 100, 1, "ar"), 0), command(change(5, 30, 2), 1)], broken)

    (letter,) = run.dead()
    assert letter[DLQ_STEP] == b"customer-state"
    assert letter[DLQ_REASON].startswith(b"unexpected KeyError")
    (entry,) = run.documents("points_transactions")
    assert (entry["points"], entry["balance_after"], entry["seq"]) == (30, 30, 1)
    assert [c[2].balance for c in run.cache] == [30]
    assert len(run.events) == 1


def test_records_are_encoded_to_bson_and_avro_before_they_reach_the_sinks() -> None:
    run = Run([], [command(change(5, 100, 1), 0)])

    (entry,) = run.documents("points_transactions")
    assert entry["_id"] == str(ids.event_id(GOOD_SHOP, 1, "earn"))
    (event,) = run.events
    assert event.value is not None
    assert event.value[:5] == b"\x00\x00\x00\x00\x00"  # magic byte, schema id 0


# ------------------------------------------------------------------ every command kind


MERCHANT = str(ids.merchant_id(GOOD_SHOP))


def adjustment(customer: int, points: int, key: str, at: datetime = AT) -> bytes:
    return encode_adjustment(
        Adjustment(
            adjustment_id=str(ids.event_id("adjustment", key)),
            merchant_id=MERCHANT,
            customer=customer,
            points=points,
            reason="goodwill",
            idempotency_key=key,
            locale="en",
            at=at,
        )
    )


def tick(customer: int, at: datetime) -> bytes:
    return encode_tick(Tick(MERCHANT, customer, at))


def test_adjustments_are_decided_and_written_with_their_source() -> None:
    run = Run(
        [],
        [
            command(change(5, 100, 1), 0),
            command(adjustment(5, 25, "a"), 1),
            command(adjustment(5, -500, "b"), 2),
            command(adjustment(5, 25, "a"), 3),  # the same adjustment again
        ],
    )

    outcomes = run.documents("points_adjustments")
    assert sorted((o["status"], o["reason"]) for o in outcomes) == [
        ("completed", None),
        ("failed", "insufficient_points"),
    ]
    entries = run.documents("points_transactions")
    assert [(e["type"], e["source"], e["balance_after"]) for e in entries] == [
        ("earn", "order", 100),
        ("adjust", "adjustment", 125),
    ]
    assert entries[1]["reason"] == "goodwill"
    assert entries[1]["delta"] == 25
    assert [c[2].balance for c in run.cache] == [100, 125]


def pending_order(n: int, pending_days: int, expiry: str) -> SourceMessage:
    headers = [
        ("X-Shopify-Shop-Domain", GOOD_SHOP.encode()),
        ("X-Shopify-Topic", b"orders/paid"),
        ("LoyalNest-Pending-Days", str(pending_days).encode()),
        ("LoyalNest-Expiry", expiry.encode()),
        ("LoyalNest-Expiry-Warning-Days", b"3"),
    ]
    return record(order(7_000 + n, customer={"id": 800 + n}), headers, n, "shopify.orders")


def test_terms_travel_from_the_order_headers_to_the_earn_command() -> None:
    run = Run([pending_order(0, 7, "lot:30")], [])

    (earn,) = [decode_command(c.value) for c in run.commands]
    assert isinstance(earn, PointsChange)
    received = datetime.fromtimestamp(RECEIVED_MS / 1000, UTC)
    assert earn.terms.release_at == received + timedelta(days=7)
    assert str(earn.terms.expiry) == "lot:30"
    assert earn.terms.warning_days == 3


def test_ticks_release_pending_points_warn_and_expire_them() -> None:
    earned = Run([pending_order(0, 7, "lot:30")], [])
    earn_at = datetime.fromtimestamp(RECEIVED_MS / 1000, UTC)
    (earn_record,) = earned.commands
    assert earn_record.value is not None

    run = Run(
        [],
        [
            command(earn_record.value, 0),
            command(tick(800, earn_at + timedelta(days=8)), 1),
            command(tick(800, earn_at + timedelta(days=29)), 2),
            command(tick(800, earn_at + timedelta(days=40)), 3),
            command(tick(999, earn_at + timedelta(days=40)), 4),  # nobody: nothing happens
        ],
    )

    entries = run.documents("points_transactions")
    assert [(e["type"], e["balance_after"], e.get("pending_after")) for e in entries] == [
        ("earn", 0, 100),
        ("release", 100, 0),
        ("expire", 0, None),
    ]
    assert entries[1]["created_at"] == earn_at + timedelta(days=7)  # dated when it fell due
    balances = run.documents("point_balances")
    assert [(b["balance"], b["pending"], b["lifetime_earned"]) for b in balances] == [
        (0, 100, 100),
        (100, 0, 100),
        (100, 0, 100),  # the warning went out: only when the clock is next due changed
        (0, 0, 100),
    ]
    assert balances[-1]["due_at"] is None
    assert balances[-1]["next_expiry"] is None
    topics = [e.topic for e in run.events]
    assert topics.count(POINTS_EXPIRING) == 1
    assert topics.count(POINTS_EARNED) == 3
    assert run.dead() == []


def test_a_legacy_change_record_makes_the_ledger_document_it_always_made() -> None:
    legacy = json.loads(change(5, 100, 1))
    for added in ("source", "source_id"):
        del legacy[added]

    run = Run([], [command(json.dumps(legacy).encode(), 0)])

    (entry,) = run.documents("points_transactions")
    assert entry["_id"] == str(ids.event_id(GOOD_SHOP, 1, "earn"))
    assert (entry["source"], entry["source_id"], entry["type"]) == ("order", "1", "earn")


# ----------------------------------------------------------------------- observability


def test_the_webhooks_correlation_id_goes_on_with_its_command_and_event() -> None:
    headers = [
        ("X-Shopify-Shop-Domain", GOOD_SHOP.encode()),
        ("X-Shopify-Topic", b"orders/paid"),
        ("X-Correlation-Id", b"wh-42"),
    ]
    run = Run([record(order(7_001, customer={"id": 901}), headers, 1, "shopify.orders")], [])
    (earn,) = run.commands
    assert dict(earn.headers) == {"X-Correlation-Id": b"wh-42"}
    assert earn.value is not None

    applied = Run([], [command(earn.value, 0)])

    (event,) = applied.events
    assert dict(event.headers) == {"X-Correlation-Id": b"wh-42"}


def test_applying_an_order_earn_sets_its_end_to_end_age() -> None:
    earn = change(customer=905, points=10, order_id=7_002)

    before = datetime.now(UTC)
    Run([], [command(earn, 0)])

    age = REGISTRY.get_sample_value("loyalnest_order_age_seconds", {"flow": "points"})
    assert age is not None
    assert age >= (before - AT).total_seconds()  # the change was received at AT
