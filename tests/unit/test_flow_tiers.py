"""The tiers flow in-process (Bytewax's testing source and sink): points.commands records reach
the customer's tier state under the configuration in force at their time, and come out as tier
commands and bonuses on points.commands, events and snapshots; other commands are not its
business; what cannot be used is a dead letter. The rules are tested in
test_loyalty_tier_customers.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from connectors.kafka import SinkMessage, SourceMessage
from flows.tiers import EventEncoding, TierSinks, build, tier_input
from loyalty import ids
from loyalty.commands import (
    decode_command,
    encode_adjustment,
    encode_change,
    encode_tick,
    encode_tier,
)
from loyalty.customers import Adjustment, Tick, TierChange
from loyalty.ledger import ORDER_SOURCES, Kind, PointsChange, Source, Terms
from loyalty.tier_config import TierConfig, parse_tiers
from loyalty.tier_counts import CountsSnapshot
from loyalty.tier_customers import OrderCount, TierSnapshot, TierTick

SHOP = "tiers.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
CUSTOMER = 42
AT = datetime(2026, 5, 1, 12, tzinfo=UTC)
CONFIG = parse_tiers(
    {
        "metric": "points_earned",
        "period": "lifetime",
        "tiers": [
            {"name": "Silver", "threshold": 100, "multiplier": "1.5", "entry_bonus": 20},
            {"name": "Gold", "threshold": 300, "multiplier": "2", "entry_bonus": 50},
        ],
    }
)


def earn(order_id: int, points: int, at: datetime = AT, amount: str = "10.00") -> PointsChange:
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=Source.ORDER,
        source_id=str(order_id),
        kind=Kind.EARN,
        points=points,
        text_key="points.earned.order",
        locale="en",
        at=at,
        order_id=order_id,
        key="earn",
        amount=Decimal(amount),
    )


def record(value: bytes, n: int = 0) -> SourceMessage:
    return KafkaSourceMessage(
        key=b"k", value=value, topic="t", headers=[], partition=0, offset=n, timestamp=(1, 0)
    )


@dataclass
class Run:
    commands: list[bytes]
    configs: list[tuple[datetime, TierConfig]] = field(default_factory=list)
    points: list[SinkMessage] = field(default_factory=list)
    events: list[SinkMessage] = field(default_factory=list)
    tiers: list[TierSnapshot] = field(default_factory=list)
    counts: list[CountsSnapshot] = field(default_factory=list)
    dead: list[SinkMessage] = field(default_factory=list)

    def config_at(self, merchant_id: str, at: datetime) -> TierConfig | None:
        assert merchant_id == MERCHANT
        return max(((t, c) for t, c in self.configs if t <= at), default=(None, None))[1]

    def go(self) -> Run:
        points: list[tuple[str, SinkMessage]] = []
        events: list[tuple[str, SinkMessage]] = []
        flow = build(
            TestingSource([record(v, n) for n, v in enumerate(self.commands)]),
            TierSinks(
                TestingSink(points),
                TestingSink(events),
                TestingSink(self.tiers),
                TestingSink(self.counts),
                TestingSink(self.dead),
            ),
            self.config_at,
            EventEncoding(lambda r: json.dumps(r, default=str).encode(), "vip_tier.assigned"),
        )
        run_main(flow)  # type: ignore[no-untyped-call]
        for route, message in points + events:  # routed by customer: one producer keeps order
            assert message.key is not None
            assert route == message.key.decode()
        self.points = [message for _, message in points]
        self.events = [message for _, message in events]
        return self

    def sent(self) -> list[object]:
        return [decode_command(m.value) for m in self.points]


def test_crossing_a_threshold_sends_the_tier_its_bonuses_an_event_and_a_snapshot() -> None:
    run = Run([encode_change(earn(1, 350))], [(AT - timedelta(days=1), CONFIG)]).go()

    tier, silver, gold = run.sent()
    assert tier == TierChange(MERCHANT, CUSTOMER, 1, "Gold", Decimal(2), AT)
    assert isinstance(silver, PointsChange)
    assert isinstance(gold, PointsChange)
    assert [(b.source, b.kind, b.points) for b in (silver, gold)] == [
        (Source.TIER, Kind.BONUS, 20),
        (Source.TIER, Kind.BONUS, 50),
    ]
    assert {m.key for m in run.points} == {f"{MERCHANT}:{CUSTOMER}".encode()}
    (event,) = [json.loads(m.value) for m in run.events if m.value is not None]
    assert (event["tier_name"], event["previous_tier_id"], event["revision"]) == ("Gold", None, 1)
    assert event["shopify_customer_id"] == CUSTOMER
    (snapshot,) = run.tiers
    assert (snapshot.tier, snapshot.revision, snapshot.points.total()) == ("Gold", 1, Decimal(350))
    assert run.dead == []


def test_its_own_records_and_other_commands_are_never_counted() -> None:
    bonus = PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=Source.TIER,
        source_id="x:lifetime",
        kind=Kind.BONUS,
        points=500,
        text_key="points.bonus.tier",
        locale="en",
        at=AT,
    )
    adjust = Adjustment(
        str(ids.adjustment_id(MERCHANT, "k")), MERCHANT, CUSTOMER, 900, "gift", "k", "en", AT
    )
    others = [
        encode_change(bonus),
        encode_adjustment(adjust),
        encode_tier(TierChange(MERCHANT, CUSTOMER, 9, "Gold", Decimal(2), AT)),
    ]
    run = Run(others, [(AT - timedelta(days=1), CONFIG)]).go()

    assert (run.points, run.events, run.tiers, run.counts, run.dead) == ([], [], [], [], [])


def test_a_configuration_applies_from_its_time_on() -> None:
    later = AT + timedelta(hours=1)
    commands = [encode_change(earn(1, 150)), encode_change(earn(2, 10, later))]

    run = Run(commands, [(later, CONFIG)]).go()

    # Under no configuration the first earn moved nobody; the second, under the new one, does
    # (150 + 10 reach Silver), dated at its own time.
    (tier, bonus) = run.sent()
    assert tier == TierChange(MERCHANT, CUSTOMER, 1, "Silver", Decimal("1.5"), later)
    assert isinstance(bonus, PointsChange)
    assert bonus.points == 20


def test_a_tick_demotes_at_the_period_end() -> None:
    rolling = parse_tiers({**CONFIG.document(), "period": "rolling_12_months"})
    tick = Tick(MERCHANT, CUSTOMER, AT + timedelta(days=400))

    run = Run([encode_change(earn(1, 120)), encode_tick(tick)], [(AT, rolling)]).go()

    up, _bonus, down = run.sent()
    assert isinstance(up, TierChange)
    assert up.tier == "Silver"
    assert down == TierChange(
        MERCHANT, CUSTOMER, 2, None, Decimal(1), datetime(2027, 5, 1, 12, tzinfo=UTC)
    )


def test_an_unusable_command_is_a_dead_letter_and_the_rest_goes_on() -> None:
    bad = b'{"type":"points.change","shop":"x"}'
    run = Run([bad, encode_change(earn(1, 350))], [(AT, CONFIG)]).go()

    assert len(run.dead) == 1
    assert len(run.sent()) == 3


def test_a_pending_earn_counts_from_its_release() -> None:
    release = AT + timedelta(days=14)
    pending = PointsChange(**{**earn(1, 150).__dict__, "terms": Terms(release_at=release)})

    item = tier_input(encode_change(pending))

    assert isinstance(item, OrderCount)
    assert (item.counts_from, item.points, item.amount) == (release, 150, Decimal("10.00"))


def test_a_reversal_counts_negatively_in_points_and_money() -> None:
    reversal = PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=Source.REFUND,
        source_id="7",
        kind=Kind.REVERSE,
        points=40,
        text_key="points.reversed.refund",
        locale="en",
        at=AT,
        order_id=1,
        key="refund:7",
        refund_id=7,
        amount=Decimal("4.00"),
    )

    item = tier_input(encode_change(reversal))

    assert isinstance(item, OrderCount)
    assert (item.points, item.amount, item.counts_from) == (-40, Decimal("-4.00"), AT)
    assert tier_input(encode_tick(Tick(MERCHANT, CUSTOMER, AT))) == TierTick(MERCHANT, CUSTOMER, AT)


def test_the_merchants_counts_follow_its_customers_moves() -> None:
    other = 43
    later = AT + timedelta(hours=1)
    reversal = PointsChange(
        **{
            **earn(1, 350).__dict__,
            "source": Source.CANCEL,
            "kind": Kind.REVERSE,
            "key": "cancel",
            "text_key": "points.reversed.cancel",
            "at": later,
        }
    )
    commands = [
        encode_change(earn(1, 350)),
        encode_change(PointsChange(**{**earn(2, 120).__dict__, "customer": other})),
        encode_change(reversal),
    ]

    run = Run(commands, [(AT, CONFIG)]).go()

    final = run.counts[-1]
    assert (final.merchant_id, dict(final.counts), final.customers) == (
        MERCHANT,
        {"": 1, "Silver": 1},
        2,
    )
    assert final.updated_at == later


@pytest.mark.parametrize("source", sorted(set(Source) - ORDER_SOURCES))
def test_changes_from_other_sources_are_never_counted(source: Source) -> None:
    # Skipped before parsing (a sniff for their source field): bonuses, rewards, releases.
    fields = {"source": source, "source_id": "b-9", "key": None, "order_id": None, "amount": None}
    change = PointsChange(**{**earn(1, 150).__dict__, **fields})
    raw = encode_change(change)
    assert decode_command(raw) == change  # a well-formed command, not a rejected one
    assert tier_input(raw) is None
