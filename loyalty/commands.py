"""The `points.commands` record format: JSON for points changes and redemptions.

Every change to a balance is one of these records, keyed by merchant:customer. JSON keeps the
topic readable with any Kafka tool; points are integers and times ISO-8601 UTC.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from loyalty import fields, json_input
from loyalty.errors import InvalidEventError
from loyalty.i18n import TEXT_KEYS
from loyalty.ledger import Kind, PointsChange, Redemption
from loyalty.limits import MAX_INT64, MAX_POINTS, MAX_REWARD_ID, MAX_TEXT, MIN_INT64

CHANGE = "points.change"
REDEEM = "points.redeem"
CHANGE_KINDS = frozenset({Kind.EARN.value, Kind.REVERSE.value})
_CHANGE_KEY = re.compile(r"earn|cancel|refund:[1-9][0-9]{0,18}", re.ASCII)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)


def customer_key(merchant_id: str, customer: int) -> bytes:
    return f"{merchant_id}:{customer}".encode()


def encode_change(change: PointsChange) -> bytes:
    return _dump(
        {
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
        }
    )


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


def decode_command(raw: bytes | None) -> PointsChange | Redemption:
    """Parse one points.commands record strictly; raise InvalidEventError when it is not one."""
    body = json_input.loads(raw or b"")
    if not isinstance(body, dict):
        raise InvalidEventError("command is not a JSON object")
    kind = body.get("type")
    if kind == CHANGE:
        return _change(body)
    if kind == REDEEM:
        return _redemption(body)
    raise InvalidEventError(f"unknown command type {fields.preview(kind)}")


def _change(body: dict[str, Any]) -> PointsChange:
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in CHANGE_KINDS:
        raise InvalidEventError(f"unknown change kind {fields.preview(kind)}")
    refund = body.get("refund_id")
    return PointsChange(
        shop=fields.shop_domain(_text(body, "shop")),
        customer=fields.identifier(body, "customer"),
        order_id=fields.identifier(body, "order_id"),
        kind=Kind(kind),
        points=_points(body, "points"),
        key=_matching(body, "key", _CHANGE_KEY),
        text_key=_text_key(body),
        locale=_locale(body),
        at=_time(body, "at"),
        refund_id=fields.identifier(body, "refund_id") if refund is not None else None,
        correlation_id=_correlation(body),
    )


def _redemption(body: dict[str, Any]) -> Redemption:
    return Redemption(
        redemption_id=_matching(body, "redemption_id", _UUID),
        merchant_id=_matching(body, "merchant_id", _UUID),
        customer=fields.identifier(body, "customer"),
        # Any 64-bit count: the customer stage decides (and fails) out-of-range redemptions,
        # so that every redemption the API recorded as pending gets an outcome.
        points=_int64(body, "points"),
        reward_id=_text(body, "reward_id", MAX_REWARD_ID),
        idempotency_key=_text(body, "idempotency_key", MAX_TEXT),
        locale=_locale(body),
        at=_time(body, "at"),
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


def _time(body: dict[str, Any], key: str) -> datetime:
    value = fields.optional_time(body, key)
    if value is None:
        raise InvalidEventError(f"{key} is missing")
    return value


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
