"""The referrals flow in-process, one hop at a time (Bytewax's testing source and sink): each
log's records reach their keyed state and come out on the right log, encoded; whatever cannot
be used is a dead letter. The rules themselves are tested in test_loyalty_referrals.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from connectors.avro import Encoder
from connectors.kafka import SinkMessage, SourceMessage
from connectors.shopify import kafka_headers
from flows.referrals import EventEncoding, ReferralSinks, ReferralSources, build
from loyalnest.topics import REFERRAL_COMPLETED, REFERRAL_REVOKED
from loyalty import ids
from loyalty.commands import decode_command
from loyalty.ledger import Kind, PointsChange, Source
from loyalty.pii import Hasher, redact_order
from loyalty.referral_commands import (
    decode_code_record,
    decode_friend_record,
    encode_claim,
    encode_code_created,
    encode_friend_order,
    encode_verdict,
)
from loyalty.referral_fraud import Identity
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import (
    Claim,
    CodeCreated,
    FriendOrder,
    Referral,
    Status,
    Verdict,
    referral_id,
)

SHOP = "friends.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
AT = datetime(2026, 5, 1, 12, tzinfo=UTC)
# Events as JSON here (the Avro encoding is tested with the schemas, in the connector's tests).
ENCODERS: dict[str, Encoder] = dict.fromkeys(
    (REFERRAL_COMPLETED, REFERRAL_REVOKED), lambda r: json.dumps(r, default=str).encode()
)
TERMS = ReferralTerms(500, 50, Decimal("10.00"), 0)
HASHER = Hasher(b"k" * 32)


def record(value: bytes, headers: list[tuple[str, Any]] | None = None, n: int = 0) -> SourceMessage:
    return KafkaSourceMessage(
        key=b"k",
        value=value,
        topic="t",
        headers=headers or [],
        partition=0,
        offset=n,
        timestamp=(1, int(AT.timestamp() * 1000) + n),
    )


@dataclass
class Run:
    orders: list[SourceMessage] = field(default_factory=list)
    friends: list[SourceMessage] = field(default_factory=list)
    codes: list[SourceMessage] = field(default_factory=list)
    to_friends: list[SinkMessage] = field(default_factory=list)
    to_codes: list[SinkMessage] = field(default_factory=list)
    to_points: list[SinkMessage] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)
    events: list[SinkMessage] = field(default_factory=list)
    dead: list[SinkMessage] = field(default_factory=list)

    def go(self) -> Run:
        flow = build(
            ReferralSources(
                TestingSource(self.orders), TestingSource(self.friends), TestingSource(self.codes)
            ),
            ReferralSinks(
                TestingSink(self.to_friends),
                TestingSink(self.to_codes),
                TestingSink(self.to_points),
                TestingSink(self.referrals),
                TestingSink(self.events),
                TestingSink(self.dead),
            ),
            EventEncoding(ENCODERS, lambda name: f"t.{name}"),
        )
        run_main(flow)  # type: ignore[no-untyped-call]
        return self


def order_body(code: str | None = "ABCD2345") -> bytes:
    body: dict[str, Any] = {
        "id": 77,
        "financial_status": "paid",
        "subtotal_price": "40.00",
        "test": False,
        "taxes_included": False,
        "processed_at": AT.isoformat(),
        "email": "friend@example.com",
        "customer": {"id": 9, "email": "friend@example.com", "first_name": "F"},
    }
    if code is not None:
        body["discount_codes"] = [{"code": code}]
    return json.dumps(redact_order(body, HASHER)).encode()


def order_headers() -> list[tuple[str, Any]]:
    delivery = {"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Topic": "orders/paid"}
    return kafka_headers(delivery, "corr", None, TERMS)


FRIEND_ORDER = FriendOrder(
    shop=SHOP,
    merchant_id=MERCHANT,
    friend=9,
    order_id=77,
    placed_at=AT,
    at=AT,
    paid=True,
    cancelled=False,
    net_subtotal=Decimal("40.00"),
    fully_refunded=False,
    code="ABCD2345",
    identity=Identity(9, HASHER.email("friend@example.com")),
    ip_hash=None,
    terms=TERMS,
)
RID = referral_id(MERCHANT, 9, 77)


def test_an_order_webhook_becomes_the_friends_order_on_referral_friends() -> None:
    run = Run(orders=[record(order_body(), order_headers())]).go()

    (message,) = run.to_friends
    assert message.key == f"{MERCHANT}:9".encode()
    told = decode_friend_record(message.value)
    named = Identity(9, HASHER.email("friend@example.com"), HASHER.name("F", None))
    assert told == replace(FRIEND_ORDER, identity=named)
    assert run.dead == []


def test_a_first_paid_order_naming_a_code_claims_it_and_is_pending() -> None:
    run = Run(friends=[record(encode_friend_order(FRIEND_ORDER))]).go()

    (claim,) = run.to_codes
    assert claim.key == f"{MERCHANT}:ABCD2345".encode()
    assert decode_code_record(claim.value) == Claim(
        MERCHANT, "ABCD2345", RID, FRIEND_ORDER.identity, 77, AT, None
    )
    assert [(r.referral_id, r.status) for r in run.referrals] == [(RID, Status.PENDING)]


def test_the_code_answers_a_claim_with_its_advocate() -> None:
    created = CodeCreated(MERCHANT, "ABCD2345", Identity(5), AT)
    claim = Claim(MERCHANT, "ABCD2345", RID, FRIEND_ORDER.identity, 77, AT, None)
    run = Run(codes=[record(encode_code_created(created)), record(encode_claim(claim), n=1)]).go()

    (verdict,) = run.to_friends
    assert verdict.key == f"{MERCHANT}:9".encode()
    assert decode_friend_record(verdict.value) == Verdict(MERCHANT, 9, RID, 5, None)


def test_the_verdict_completes_the_referral_and_posts_both_rewards() -> None:
    friends = [
        record(encode_friend_order(FRIEND_ORDER)),
        record(encode_verdict(Verdict(MERCHANT, 9, RID, 5, None)), n=1),
    ]
    run = Run(friends=friends).go()

    assert [r.status for r in run.referrals] == [Status.PENDING, Status.COMPLETED]
    changes = [decode_command(m.value) for m in run.to_points]
    assert all(isinstance(c, PointsChange) for c in changes)
    rewards = {(c.customer, c.points) for c in changes if isinstance(c, PointsChange)}
    assert rewards == {(5, 500), (9, 50)}
    assert {(c.source, c.kind) for c in changes if isinstance(c, PointsChange)} == {
        (Source.REFERRAL, Kind.BONUS)
    }
    assert {m.key for m in run.to_points} == {f"{MERCHANT}:5".encode(), f"{MERCHANT}:9".encode()}
    (event,) = run.events  # the completion; the pending step announces nothing
    assert (event.topic, event.key) == ("t.referral.completed", f"{MERCHANT}:9".encode())
    announced = json.loads(event.value or b"")
    assert (announced["advocate_customer_id"], announced["friend_customer_id"]) == (5, 9)
    assert (announced["advocate_points"], announced["friend_points"]) == (500, 50)


def test_records_that_cannot_be_used_are_dead_letters_with_their_step() -> None:
    run = Run(
        orders=[record(b"{not json", order_headers())],
        friends=[record(b'{"type": "referral.order"}')],
        codes=[record(b'{"type": "something.else"}')],
    ).go()

    steps = sorted(dict(m.headers)["dlq-step"] for m in run.dead)
    assert steps == [b"decode-code", b"decode-friend", b"decode-order"]
    assert run.to_friends == run.to_codes == run.to_points == []
