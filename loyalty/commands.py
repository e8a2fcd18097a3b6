"""The `points.commands` record format: JSON, one record per command, keyed merchant:customer.

Every change to a balance is one of these records; JSON keeps the topic readable with any Kafka
tool; points are integers and times ISO-8601 UTC. Four types:

- `points.change`: points a source gives or takes back (earn, reverse, bonus), naming the source
  (order, refund, cancel, referral, tier, ...) and its id. Records written before sources
  existed name only the order and its business key (`earn`, `cancel`, `refund:<id>`): the source
  is derived from the key, and they decode to exactly the change they always were.
- `points.redeem`: a redemption the API accepted.
- `points.adjust`: a merchant's manual adjustment.
- `points.tick`: the clock reaching a customer (see loyalnest/clock.py).
- `points.tier`: the customer's VIP tier as the tiers flow assigned it, with the multiplier
  the customer's later order earns get (see flows/tiers.py).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from loyalty import fields, json_input
from loyalty.customers import MAX_ADJUSTMENT, Adjustment, Redemption, Tick, TierChange
from loyalty.errors import InvalidEventError
from loyalty.i18n import TEXT_KEYS
from loyalty.ledger import CHANGE_KINDS, ORDER_SOURCES, Kind, PointsChange, Source, Terms
from loyalty.limits import MAX_INT64, MAX_POINTS, MAX_REWARD_ID, MAX_TEXT, MIN_INT64
from loyalty.policy import DEFAULT_WARNING_DAYS, MAX_WARNING_DAYS, Expiry, days_in_range
from loyalty.tier_config import InvalidTiersError, parse_multiplier

CHANGE = "points.change"
REDEEM = "points.redeem"
ADJUST = "points.adjust"
TICK = "points.tick"
TIER = "points.tier"
MAX_REASON = 200
_CHANGE_KEY = re.compile(r"earn|cancel|refund:[1-9][0-9]{0,18}", re.ASCII)
_SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,199}", re.ASCII)
_KEY_SOURCE = {"earn": Source.ORDER, "cancel": Source.CANCEL}


def customer_key(merchant_id: str, customer: int) -> bytes:
    return f"{merchant_id}:{customer}".encode()


def encode_change(change: PointsChange) -> bytes:
    body: dict[str, Any] = {
        "type": CHANGE,
        "shop": change.shop,
        "customer": change.customer,
        "order_id": change.order_id,
        "kind": change.kind.value,
        "points": change.points,
        "key": change.key,
        "text_key": change.text_key,
        "locale": change.locale,
        "at": change.at.isoformat(),
        "refund_id": change.refund_id,
        "correlation_id": change.correlation_id,
        "source": change.source.value,
        "source_id": change.source_id,
    }
    terms = change.terms
    if terms != Terms():  # the default terms are left out: most records stay as they were
        body["release_at"] = terms.release_at.isoformat() if terms.release_at else None
        body["expiry"] = str(terms.expiry)
        body["warning_days"] = terms.warning_days
    if change.amount is not None:
        body["amount"] = format(change.amount, "f")
    return _dump(body)


def encode_redemption(redemption: Redemption) -> bytes:
    return _dump(
        {
            "type": REDEEM,
            "redemption_id": redemption.redemption_id,
            "merchant_id": redemption.merchant_id,
            "customer": redemption.customer,
            "points": redemption.points,
            "reward_id": redemption.reward_id,
            "idempotency_key": redemption.idempotency_key,
            "locale": redemption.locale,
            "at": redemption.at.isoformat(),
            "correlation_id": redemption.correlation_id,
        }
    )


def encode_adjustment(adjustment: Adjustment) -> bytes:
    return _dump(
        {
            "type": ADJUST,
            "adjustment_id": adjustment.adjustment_id,
            "merchant_id": adjustment.merchant_id,
            "customer": adjustment.customer,
            "points": adjustment.points,
            "reason": adjustment.reason,
            "idempotency_key": adjustment.idempotency_key,
            "locale": adjustment.locale,
            "at": adjustment.at.isoformat(),
            "correlation_id": adjustment.correlation_id,
        }
    )


def encode_tick(tick: Tick) -> bytes:
    return _dump(
        {
            "type": TICK,
            "merchant_id": tick.merchant_id,
            "customer": tick.customer,
            "at": tick.at.isoformat(),
        }
    )


def encode_tier(change: TierChange) -> bytes:
    return _dump(
        {
            "type": TIER,
            "merchant_id": change.merchant_id,
            "customer": change.customer,
            "revision": change.revision,
            "tier": change.tier,
            "multiplier": str(change.multiplier),
            "at": change.at.isoformat(),
        }
    )


Command = PointsChange | Redemption | Adjustment | Tick | TierChange


def decode_command(raw: bytes | None) -> Command:
    """Parse one points.commands record strictly; raise InvalidEventError when it is not one."""
    body = json_input.loads(raw or b"")
    if not isinstance(body, dict):
        raise InvalidEventError("command is not a JSON object")
    kind = body.get("type")
    if kind == CHANGE:
        return _change(body)
    if kind == REDEEM:
        return _redemption(body)
    if kind == ADJUST:
        return _adjustment(body)
    if kind == TIER:
        return _tier(body)
    if kind == TICK:
        return Tick(
            _uuid(body, "merchant_id"),
            fields.identifier(body, "customer"),
            fields.required_time(body, "at"),
        )
    raise InvalidEventError(f"unknown command type {fields.preview(kind)}")


def _change(body: dict[str, Any]) -> PointsChange:
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in CHANGE_KINDS:
        raise InvalidEventError(f"unknown change kind {fields.preview(kind)}")
    source, source_id, key = _source(body)
    order_id = body.get("order_id")
    refund = body.get("refund_id")
    return PointsChange(
        shop=fields.shop_domain(_text(body, "shop")),
        customer=fields.identifier(body, "customer"),
        source=source,
        source_id=source_id,
        kind=Kind(kind),
        points=_points(body, "points"),
        text_key=_text_key(body),
        locale=_locale(body),
        at=fields.required_time(body, "at"),
        order_id=fields.identifier(body, "order_id") if order_id is not None else None,
        key=key,
        refund_id=fields.identifier(body, "refund_id") if refund is not None else None,
        correlation_id=_correlation(body),
        terms=_terms(body),
        amount=_amount(body, source),
    )


def _tier(body: dict[str, Any]) -> TierChange:
    revision = _int64(body, "revision")
    if revision <= 0:
        raise InvalidEventError(f"revision must be positive, got {revision}")
    tier = body.get("tier")
    if tier is not None:
        tier = _text(body, "tier")
    try:
        multiplier = parse_multiplier(body.get("multiplier"))
    except InvalidTiersError as e:
        raise InvalidEventError(str(e)) from None
    return TierChange(
        merchant_id=_uuid(body, "merchant_id"),
        customer=fields.identifier(body, "customer"),
        revision=revision,
        tier=tier,
        multiplier=multiplier,
        at=fields.required_time(body, "at"),
    )


def _amount(body: dict[str, Any], source: Source) -> Decimal | None:
    amount = fields.optional_money(body, "amount")
    if amount is not None and source not in ORDER_SOURCES:
        raise InvalidEventError("amount is only for order changes")
    return amount


def _source(body: dict[str, Any]) -> tuple[Source, str, str | None]:
    """(source, source id, order business key). Order changes are identified by their order id
    and business key, as they always were; a record without a source is one of those."""
    raw = body.get("source")
    if raw is None or (isinstance(raw, str) and raw in ORDER_SOURCES):
        key = _matching(body, "key", _CHANGE_KEY)
        order_id = fields.identifier(body, "order_id")
        source = _KEY_SOURCE.get(key, Source.REFUND)
        if raw is not None and raw != source:
            raise InvalidEventError(f"source {fields.preview(raw)} does not match key {key}")
        source_id = key.partition(":")[2] if source == Source.REFUND else str(order_id)
        if raw is not None and body.get("source_id") != source_id:
            raise InvalidEventError(f"source_id must be {source_id} for key {key}")
        return source, source_id, key
    if not isinstance(raw, str) or raw not in Source.__members__.values():
        raise InvalidEventError(f"unknown source {fields.preview(raw)}")
    if body.get("key") is not None:
        raise InvalidEventError("key is only for order changes")
    return Source(raw), _matching(body, "source_id", _SOURCE_ID), None


def _terms(body: dict[str, Any]) -> Terms:
    if "expiry" not in body and "release_at" not in body and "warning_days" not in body:
        return Terms()
    expiry = _text(body, "expiry", 20)
    warning = body.get("warning_days", DEFAULT_WARNING_DAYS)
    return Terms(
        release_at=fields.optional_time(body, "release_at"),
        expiry=Expiry.parse(expiry),
        warning_days=days_in_range(warning, "warning_days", MAX_WARNING_DAYS),
    )


def _adjustment(body: dict[str, Any]) -> Adjustment:
    points = _int64(body, "points")
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        raise InvalidEventError(f"points must be non-zero and at most {MAX_ADJUSTMENT} either way")
    return Adjustment(
        adjustment_id=_uuid(body, "adjustment_id"),
        merchant_id=_uuid(body, "merchant_id"),
        customer=fields.identifier(body, "customer"),
        points=points,
        reason=_text(body, "reason", MAX_REASON),
        idempotency_key=_text(body, "idempotency_key", MAX_TEXT),
        locale=_locale(body),
        at=fields.required_time(body, "at"),
        correlation_id=_correlation(body),
    )


def _uuid(body: dict[str, Any], key: str) -> str:
    return _matching(body, key, fields.UUID_TEXT)


def _redemption(body: dict[str, Any]) -> Redemption:
    return Redemption(
        redemption_id=_uuid(body, "redemption_id"),
        merchant_id=_uuid(body, "merchant_id"),
        customer=fields.identifier(body, "customer"),
        # Any 64-bit count: the customer stage decides (and fails) out-of-range redemptions,
        # so that every redemption the API recorded as pending gets an outcome.
        points=_int64(body, "points"),
        reward_id=_text(body, "reward_id", MAX_REWARD_ID),
        idempotency_key=_text(body, "idempotency_key", MAX_TEXT),
        locale=_locale(body),
        at=fields.required_time(body, "at"),
        correlation_id=_correlation(body),
    )


def _text(body: dict[str, Any], key: str, longest: int = MAX_TEXT) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise InvalidEventError(f"{key} must be a string of 1 to {longest} characters")
    return value


def _matching(body: dict[str, Any], key: str, form: re.Pattern[str]) -> str:
    value = _text(body, key)
    if not form.fullmatch(value):
        raise InvalidEventError(f"{key} is malformed: {fields.preview(value)}")
    return value


def _text_key(body: dict[str, Any]) -> str:
    value = _text(body, "text_key")
    if value not in TEXT_KEYS:
        raise InvalidEventError(f"text_key is not a known description: {fields.preview(value)}")
    return value


def _locale(body: dict[str, Any]) -> str:
    value = _text(body, "locale")
    if not fields.is_locale(value):
        raise InvalidEventError(f"locale is not a language code: {fields.preview(value)}")
    return value


def _correlation(body: dict[str, Any]) -> str | None:
    value = fields.optional_text(body, "correlation_id")
    if value is not None and not fields.is_correlation_id(value):
        raise InvalidEventError(f"correlation_id is malformed: {fields.preview(value)}")
    return value


def _int64(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_INT64 <= value <= MAX_INT64:
        raise InvalidEventError(f"{key} must be a 64-bit integer, got {fields.preview(value)}")
    return value


def _points(body: dict[str, Any], key: str) -> int:
    value = _int64(body, key)
    if not 0 < value <= MAX_POINTS:
        raise InvalidEventError(f"{key} must be from 1 to {MAX_POINTS}, got {value}")
    return value


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
