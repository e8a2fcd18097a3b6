"""The points.commands record format (loyalty.commands): every command type round trips, and
records written before changes named their source decode to the changes they always were."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loyalty import ids
from loyalty.commands import (
    ADJUST,
    CHANGE,
    REDEEM,
    TICK,
    customer_key,
    decode_command,
    encode_adjustment,
    encode_change,
    encode_redemption,
    encode_tick,
)
from loyalty.customers import MAX_ADJUSTMENT, Adjustment, Redemption, Tick
from loyalty.errors import InvalidEventError
from loyalty.ledger import Kind, PointsChange, Source, Terms
from loyalty.policy import Expiry

SHOP = "demo.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
CUSTOMER = 207119551
ORDER_ID = 450789469
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
UUID = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"


def order_change(
    key: str = "earn", kind: Kind = Kind.EARN, terms: Terms | None = None
) -> PointsChange:
    refund_id = int(key.partition(":")[2]) if key.startswith("refund:") else None
    source, source_id = {
        "earn": (Source.ORDER, str(ORDER_ID)),
        "cancel": (Source.CANCEL, str(ORDER_ID)),
    }.get(key, (Source.REFUND, str(refund_id)))
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=source,
        source_id=source_id,
        kind=kind,
        points=120,
        text_key="points.earned.order" if kind == Kind.EARN else "points.reversed.refund",
        locale="he",
        at=AT,
        order_id=ORDER_ID,
        key=key,
        refund_id=refund_id,
        correlation_id="corr-1",
        terms=terms or Terms(),
    )


def other_change(
    source: Source = Source.REFERRAL, kind: Kind = Kind.BONUS, terms: Terms | None = None
) -> PointsChange:
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=source,
        source_id="ref:2024.05_a-1",
        kind=kind,
        points=25,
        text_key="points.bonus.referral",
        locale="en",
        at=AT,
        terms=terms or Terms(),
    )


def body_of(raw: bytes) -> dict[str, Any]:
    body = json.loads(raw)
    assert isinstance(body, dict)
    return body


def record(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


# ---------------------------------------------------------------------------- round trips

TERMS = [
    Terms(),
    Terms(release_at=AT + timedelta(days=14)),
    Terms(expiry=Expiry.parse("lot:365")),
    Terms(expiry=Expiry.parse("inactivity:90"), warning_days=0),
    Terms(release_at=AT + timedelta(days=1), expiry=Expiry.parse("lot:1"), warning_days=365),
]


@pytest.mark.parametrize("terms", TERMS, ids=str)
@pytest.mark.parametrize(
    "change",
    [
        order_change(),
        order_change("refund:7", Kind.REVERSE),
        order_change("cancel", Kind.REVERSE),
        other_change(),
        other_change(Source.TIER),
        other_change(kind=Kind.REVERSE),
    ],
    ids=["earn", "refund", "cancel", "referral", "tier", "referral-reversed"],
)
def test_a_points_change_round_trips(change: PointsChange, terms: Terms) -> None:
    change = PointsChange(**{**vars(change), "terms": terms})
    change.__dict__.pop("event_id", None)  # a cached property is not a field

    decoded = decode_command(encode_change(change))

    assert decoded == change
    assert isinstance(decoded, PointsChange)
    assert decoded.terms == terms
    assert decoded.event_id == change.event_id
    assert decoded.origin == change.origin


def test_default_terms_are_left_out_of_the_record() -> None:
    body = body_of(encode_change(order_change()))

    assert body["type"] == CHANGE
    assert (body["source"], body["source_id"]) == ("order", str(ORDER_ID))
    assert not {"release_at", "expiry", "warning_days"} & body.keys()


def test_terms_are_written_in_full_when_any_differs() -> None:
    terms = Terms(release_at=AT + timedelta(days=14), expiry=Expiry.parse("lot:30"))

    body = body_of(encode_change(order_change(terms=terms)))

    assert body["release_at"] == "2024-05-15T12:00:00+00:00"
    assert (body["expiry"], body["warning_days"]) == ("lot:30", 14)


def test_a_redemption_round_trips() -> None:
    redemption = Redemption(
        redemption_id=str(ids.redemption_id(MERCHANT, "key-1")),
        merchant_id=MERCHANT,
        customer=CUSTOMER,
        points=250,
        reward_id="reward-10-off",
        idempotency_key="key-1",
        locale="ar",
        at=AT,
        correlation_id=UUID,
    )

    raw = encode_redemption(redemption)

    assert body_of(raw)["type"] == REDEEM
    assert decode_command(raw) == redemption


@pytest.mark.parametrize("points", [1, -1, 250, -250, MAX_ADJUSTMENT, -MAX_ADJUSTMENT])
@pytest.mark.parametrize("correlation_id", [None, "req-1"])
def test_an_adjustment_round_trips(points: int, correlation_id: str | None) -> None:
    adjustment = Adjustment(
        adjustment_id=UUID,
        merchant_id=MERCHANT,
        customer=CUSTOMER,
        points=points,
        reason="Goodwill for a late delivery \u2014 \u05ea\u05d5\u05d3\u05d4",
        idempotency_key="adj-1",
        locale="he",
        at=AT,
        correlation_id=correlation_id,
    )

    raw = encode_adjustment(adjustment)

    assert body_of(raw)["type"] == ADJUST
    assert decode_command(raw) == adjustment


def test_a_tick_round_trips() -> None:
    tick = Tick(MERCHANT, CUSTOMER, AT)

    raw = encode_tick(tick)

    assert body_of(raw) == {
        "type": TICK,
        "merchant_id": MERCHANT,
        "customer": CUSTOMER,
        "at": "2024-05-01T12:00:00+00:00",
    }
    assert decode_command(raw) == tick


def test_times_are_read_as_utc() -> None:
    body = body_of(encode_tick(Tick(MERCHANT, CUSTOMER, AT)))

    tick = decode_command(record({**body, "at": "2024-05-01T14:00:00+02:00"}))

    assert tick == Tick(MERCHANT, CUSTOMER, AT)
    assert tick.at.tzinfo == UTC


def test_the_key_of_a_command_is_merchant_and_customer() -> None:
    assert customer_key(MERCHANT, CUSTOMER) == f"{MERCHANT}:{CUSTOMER}".encode()


# ---------------------------------------------------------------------------- legacy records

# Written by the flow before changes named a source (03c9971; tests/fixtures/legacy_commands).
LEGACY_EARN = (
    b'{"type":"points.change","shop":"maple-goods.myshopify.com","customer":6204118001,'
    b'"order_id":5501000001,"kind":"earn","points":120,"key":"earn",'
    b'"text_key":"points.earned.order","locale":"en","at":"2026-11-21T21:27:02.937000+00:00",'
    b'"refund_id":null,"correlation_id":"trace:legacy-fixture.0001"}'
)
LEGACY_REFUND = (
    b'{"type":"points.change","shop":"maple-goods.myshopify.com","customer":6204118001,'
    b'"order_id":5501000002,"kind":"reverse","points":29,"key":"refund:9901000021",'
    b'"text_key":"points.reversed.refund","locale":"en","at":"2026-11-21T21:27:03.293000+00:00",'
    b'"refund_id":9901000021,"correlation_id":"f11c8d17-2c42-416d-85f1-913e9f6153d8"}'
)
LEGACY_AT = datetime(2026, 11, 21, 21, 27, 2, 937000, tzinfo=UTC)


def test_a_legacy_earn_decodes_to_the_change_it_always_was() -> None:
    change = decode_command(LEGACY_EARN)

    assert change == PointsChange(
        shop="maple-goods.myshopify.com",
        customer=6204118001,
        source=Source.ORDER,
        source_id="5501000001",
        kind=Kind.EARN,
        points=120,
        text_key="points.earned.order",
        locale="en",
        at=LEGACY_AT,
        order_id=5501000001,
        key="earn",
        refund_id=None,
        correlation_id="trace:legacy-fixture.0001",
        terms=Terms(),
    )
    assert isinstance(change, PointsChange)
    assert change.event_id == str(ids.event_id("maple-goods.myshopify.com", 5501000001, "earn"))
    assert change.origin == "order:5501000001"


def test_a_legacy_refund_decodes_to_the_change_it_always_was() -> None:
    change = decode_command(LEGACY_REFUND)

    assert isinstance(change, PointsChange)
    assert (change.source, change.source_id) == (Source.REFUND, "9901000021")
    assert (change.kind, change.points, change.refund_id) == (Kind.REVERSE, 29, 9901000021)
    assert change.event_id == str(
        ids.event_id("maple-goods.myshopify.com", 5501000002, "refund:9901000021")
    )
    assert change.origin == "order:5501000002"
    assert change.terms == Terms()


@pytest.mark.parametrize(
    ("key", "kind", "source", "source_id"),
    [
        ("earn", "earn", Source.ORDER, str(ORDER_ID)),
        ("cancel", "reverse", Source.CANCEL, str(ORDER_ID)),
        ("refund:7", "reverse", Source.REFUND, "7"),
    ],
)
def test_a_legacy_record_gets_its_source_from_its_key_and_keeps_its_event_id(
    key: str, kind: str, source: Source, source_id: str
) -> None:
    legacy = {
        "type": CHANGE,
        "shop": "Demo.MyShopify.com",
        "customer": CUSTOMER,
        "order_id": ORDER_ID,
        "kind": kind,
        "points": 10,
        "key": key,
        "text_key": "points.reversed.cancel",
        "locale": "en",
        "at": "2024-05-01T12:00:00+00:00",
        "refund_id": 7 if key.startswith("refund:") else None,
        "correlation_id": None,
    }

    change = decode_command(record(legacy))

    assert isinstance(change, PointsChange)
    assert (change.source, change.source_id, change.key) == (source, source_id, key)
    assert change.event_id == str(ids.event_id(SHOP, ORDER_ID, key))
    # Written again, it names its source, and reads back as the same change.
    assert decode_command(encode_change(change)) == change
    assert body_of(encode_change(change))["source"] == source.value


def test_a_legacy_record_without_order_id_is_refused() -> None:
    body = body_of(LEGACY_EARN)
    del body["order_id"]

    with pytest.raises(InvalidEventError, match="order_id"):
        decode_command(record(body))


# ---------------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"source": "order", "key": "cancel"}, "does not match key cancel"),
        ({"source": "refund", "key": "earn"}, "does not match key earn"),
        ({"source": "cancel", "key": "refund:7"}, "does not match key refund:7"),
        ({"source": "order", "source_id": "1"}, f"source_id must be {ORDER_ID}"),
        ({"source": "order", "source_id": None}, f"source_id must be {ORDER_ID}"),
        ({"source": "order", "source_id": ORDER_ID}, f"source_id must be {ORDER_ID}"),
        ({"source": "refund", "key": "refund:7", "source_id": "8"}, "source_id must be 7"),
        ({"source": "order", "key": None}, "key must be"),
        ({"source": "order", "key": "refund:0"}, "key is malformed"),
    ],
)
def test_an_order_change_whose_source_does_not_match_its_key_is_refused(
    changes: dict[str, Any], reason: str
) -> None:
    body = {**body_of(encode_change(order_change())), **changes}

    with pytest.raises(InvalidEventError, match=reason):
        decode_command(record(body))


@pytest.mark.parametrize(
    "source", ["coupon", "ORDER", "Referral", "", " order", 5, True, ["order"]]
)
def test_an_unknown_source_is_refused(source: object) -> None:
    body = {**body_of(encode_change(other_change())), "source": source}

    with pytest.raises(InvalidEventError, match="unknown source"):
        decode_command(record(body))


def test_a_change_of_another_source_has_no_order_key() -> None:
    body = {**body_of(encode_change(other_change())), "key": "earn"}

    with pytest.raises(InvalidEventError, match="key is only for order changes"):
        decode_command(record(body))


@pytest.mark.parametrize("source_id", [None, "", "-1", "a b", "x" * 201, "\u05d0", 42])
def test_a_malformed_source_id_is_refused(source_id: object) -> None:
    body = {**body_of(encode_change(other_change())), "source_id": source_id}

    with pytest.raises(InvalidEventError, match="source_id"):
        decode_command(record(body))


@pytest.mark.parametrize("kind", ["spend", "adjust", "release", "expire", "EARN", None])
def test_only_earn_reverse_and_bonus_are_changes(kind: object) -> None:
    body = {**body_of(encode_change(order_change())), "kind": kind}

    with pytest.raises(InvalidEventError, match="unknown change kind"):
        decode_command(record(body))


# ---------------------------------------------------------------------------- terms


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"expiry": "lot:0"}, "expiry must be none"),
        ({"expiry": "forever"}, "expiry must be none"),
        ({"expiry": None}, "expiry must be a string"),
        ({"expiry": "lot:" + "1" * 30}, "expiry must be a string of 1 to 20"),
        ({"warning_days": 366}, "warning_days must be an integer from 0 to 365"),
        ({"warning_days": -1}, "warning_days"),
        ({"warning_days": True}, "warning_days"),
        ({"warning_days": "7"}, "warning_days"),
        ({"release_at": "2024-05-15T12:00:00"}, "release_at must be an ISO-8601 time with offset"),
        ({"release_at": 1715774400}, "release_at"),
    ],
)
def test_malformed_terms_are_refused(changes: dict[str, Any], reason: str) -> None:
    terms = Terms(release_at=AT + timedelta(days=14), expiry=Expiry.parse("lot:30"))
    body = {**body_of(encode_change(order_change(terms=terms))), **changes}

    with pytest.raises(InvalidEventError, match=reason):
        decode_command(record(body))


@pytest.mark.parametrize("present", ["release_at", "warning_days"])
def test_terms_without_their_expiry_are_refused(present: str) -> None:
    body = body_of(encode_change(order_change()))
    body[present] = "2024-05-15T12:00:00+00:00" if present == "release_at" else 7

    with pytest.raises(InvalidEventError, match="expiry"):
        decode_command(record(body))


def test_terms_without_release_at_or_warning_days_take_the_defaults() -> None:
    body = {**body_of(encode_change(order_change())), "expiry": "inactivity:30"}

    change = decode_command(record(body))

    assert isinstance(change, PointsChange)
    assert change.terms == Terms(expiry=Expiry.parse("inactivity:30"))


# ---------------------------------------------------------------------------- adjustments, ticks


def adjustment_body(**changes: Any) -> dict[str, Any]:
    adjustment = Adjustment(UUID, MERCHANT, CUSTOMER, 5, "why", "adj-1", "en", AT)
    return {**body_of(encode_adjustment(adjustment)), **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"points": 0}, "points must be non-zero"),
        ({"points": MAX_ADJUSTMENT + 1}, "points must be non-zero and at most"),
        ({"points": -MAX_ADJUSTMENT - 1}, "points must be non-zero and at most"),
        ({"points": 1.0}, "points must be a 64-bit integer"),
        ({"points": True}, "points must be a 64-bit integer"),
        ({"points": 2**63}, "points must be a 64-bit integer"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 201}, "reason must be a string of 1 to 200"),
        ({"adjustment_id": "adj-1"}, "adjustment_id is malformed"),
        ({"adjustment_id": UUID.upper()}, "adjustment_id is malformed"),
        ({"merchant_id": SHOP}, "merchant_id is malformed"),
        ({"customer": 0}, "customer"),
        ({"idempotency_key": "x" * 256}, "idempotency_key"),
        ({"locale": "english"}, "locale"),
        ({"at": None}, "at is missing"),
    ],
)
def test_a_malformed_adjustment_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEventError, match=reason):
        decode_command(record(adjustment_body(**changes)))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"merchant_id": "not-a-uuid"}, "merchant_id is malformed"),
        ({"customer": -1}, "customer"),
        ({"customer": "207119551"}, "customer"),
        ({"at": "2024-05-01"}, "at must be an ISO-8601 time with offset"),
        ({"at": None}, "at is missing"),
    ],
)
def test_a_malformed_tick_is_refused(changes: dict[str, Any], reason: str) -> None:
    body = {**body_of(encode_tick(Tick(MERCHANT, CUSTOMER, AT))), **changes}

    with pytest.raises(InvalidEventError, match=reason):
        decode_command(record(body))


@pytest.mark.parametrize("kind", ["points.other", "points.tock", None, 1])
def test_an_unknown_command_type_is_refused(kind: object) -> None:
    body = {**body_of(encode_tick(Tick(MERCHANT, CUSTOMER, AT))), "type": kind}

    with pytest.raises(InvalidEventError, match="unknown command type"):
        decode_command(record(body))
