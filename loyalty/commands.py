"""The `points.commands` record format: JSON for points changes and redemptions.

Every change to a balance is one of these records, keyed by merchant:customer. JSON keeps the
topic readable with any Kafka tool; points are integers and times ISO-8601 UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from loyalty.ledger import Kind, PointsChange, Redemption
from loyalty.orders import InvalidEventError, require_int

CHANGE = "points.change"
REDEEM = "points.redeem"


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
    """Parse one points.commands record; raise InvalidEventError when it is not one."""
    try:
        body = json.loads(raw or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError(f"command is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidEventError("command is not a JSON object")
    kind = body.get("type")
    if kind == CHANGE:
        return _change(body)
    if kind == REDEEM:
        return _redemption(body)
    raise InvalidEventError(f"unknown command type {kind!r}")


def _change(body: dict[str, Any]) -> PointsChange:
    try:
        kind = Kind(str(body.get("kind")))
    except ValueError as exc:
        raise InvalidEventError(f"unknown change kind {body.get('kind')!r}") from exc
    refund = body.get("refund_id")
    return PointsChange(
        shop=_text(body, "shop"),
        customer=require_int(body, "customer"),
        order_id=require_int(body, "order_id"),
        kind=kind,
        points=_positive(body, "points"),
        key=_text(body, "key"),
        text_key=_text(body, "text_key"),
        locale=_text(body, "locale"),
        at=_time(body, "at"),
        refund_id=require_int(body, "refund_id") if refund is not None else None,
        correlation_id=body.get("correlation_id"),
    )


def _redemption(body: dict[str, Any]) -> Redemption:
    return Redemption(
        redemption_id=_text(body, "redemption_id"),
        merchant_id=_text(body, "merchant_id"),
        customer=require_int(body, "customer"),
        points=require_int(body, "points"),
        reward_id=_text(body, "reward_id"),
        idempotency_key=_text(body, "idempotency_key"),
        locale=_text(body, "locale"),
        at=_time(body, "at"),
        correlation_id=body.get("correlation_id"),
    )


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEventError(f"{key} must be a non-empty string")
    return value


def _positive(body: dict[str, Any], key: str) -> int:
    value = require_int(body, key)
    if value <= 0:
        raise InvalidEventError(f"{key} must be positive, got {value}")
    return value


def _time(body: dict[str, Any], key: str) -> datetime:
    try:
        value = datetime.fromisoformat(_text(body, key))
    except ValueError as exc:
        raise InvalidEventError(f"{key} is not an ISO-8601 time") from exc
    if value.tzinfo is None:
        raise InvalidEventError(f"{key} must carry a timezone")
    return value.astimezone(UTC)


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
