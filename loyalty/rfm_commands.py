"""Records on `rfm.commands`: the RFM flow's time and settings, as JSON.

- `rfm.tick` (key merchant:customer): the merchant's picture (as-of day, version, scales)
  for one customer, from the rescoring round;
- `rfm.day` (key merchant): a new as-of day for the merchant, from the clock;
- `rfm.settings` (key merchant): the merchant's thresholds (null: quintiles) from then on.

Days are ISO dates; spend cut points are decimal text, so nothing is rounded on the way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from loyalty import fields, json_input
from loyalty.errors import InvalidEventError
from loyalty.rfm import EPOCH, Scale, Scales, Thresholds, day_date
from loyalty.rfm_customers import Tick
from loyalty.rfm_window import DEFAULT_LOOKBACK_DAYS, MAX_LOOKBACK_DAYS

TICK = "rfm.tick"
DAY = "rfm.day"
SETTINGS = "rfm.settings"
MAX_CUSTOMER = 2**63 - 1


@dataclass(frozen=True)
class CustomerTick:
    merchant_id: str
    customer: int
    tick: Tick
    lookback_days: int = DEFAULT_LOOKBACK_DAYS


@dataclass(frozen=True)
class DayTick:
    merchant_id: str
    as_of: int


@dataclass(frozen=True)
class Settings:
    merchant_id: str
    thresholds: Thresholds | None


RfmCommand = CustomerTick | DayTick | Settings


def encode(command: RfmCommand) -> bytes:
    body: dict[str, Any]
    if isinstance(command, CustomerTick):
        t = command.tick
        body = {
            "type": TICK,
            "merchant_id": command.merchant_id,
            "customer": command.customer,
            "as_of": day_date(t.as_of).isoformat(),
            "version": t.version,
            "scales": scales_json(t.scales),
            "lookback_days": command.lookback_days,
        }
    elif isinstance(command, DayTick):
        body = {"type": DAY, "merchant_id": command.merchant_id, "as_of": _iso(command.as_of)}
    else:
        body = {
            "type": SETTINGS,
            "merchant_id": command.merchant_id,
            "thresholds": (
                None if command.thresholds is None else thresholds_json(command.thresholds)
            ),
        }
    return json.dumps(body, separators=(",", ":")).encode()


def decode(raw: bytes | None) -> RfmCommand:
    """A record of `rfm.commands`; InvalidEventError says what is wrong with it."""
    if not raw:
        raise InvalidEventError("rfm command has no value")
    body = json_input.loads(raw)
    if not isinstance(body, dict):
        raise InvalidEventError("rfm command is not a JSON object")
    kind = body.get("type")
    merchant = _text(body, "merchant_id")
    if kind == TICK:
        customer = fields.identifier(body, "customer")
        version = _count(body, "version")
        tick = Tick(_day(body, "as_of"), scales_from(body.get("scales")), version)
        return CustomerTick(merchant, customer, tick, lookback_days(body.get("lookback_days")))
    if kind == DAY:
        return DayTick(merchant, _day(body, "as_of"))
    if kind == SETTINGS:
        raw_thresholds = body.get("thresholds")
        thresholds = None if raw_thresholds is None else thresholds_from(raw_thresholds)
        return Settings(merchant, thresholds)
    raise InvalidEventError(f"unknown rfm command type {fields.preview(kind)}")


def lookback_days(value: object) -> int:
    """A lookback window in days, 1 to MAX_LOOKBACK_DAYS."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEventError(
            f"lookback days must be a whole number, got {fields.preview(value)}"
        )
    if not 1 <= value <= MAX_LOOKBACK_DAYS:
        raise InvalidEventError(f"lookback days must be from 1 to {MAX_LOOKBACK_DAYS}, got {value}")
    return value


def scales_json(scales: Scales) -> dict[str, list[Any]]:
    return {
        "recency": [None if b is None else _iso(b) for b in scales.recency.boundaries],
        "frequency": list(scales.frequency.boundaries),
        # Fixed-point text: a bucket's floor may carry an exponent (1.00E+3).
        "monetary": [None if b is None else format(b, "f") for b in scales.monetary.boundaries],
    }


def scales_from(value: object) -> Scales:
    if not isinstance(value, dict):
        raise InvalidEventError("scales must be an object")
    recency = _four(value, "recency", lambda b: _parse_day(b, "scales.recency"))
    frequency = _four(value, "frequency", lambda b: _whole(b, "scales.frequency"))
    monetary = _four(value, "monetary", lambda b: _amount(b, "scales.monetary"))
    return Scales(Scale(recency), Scale(frequency), Scale(monetary))


def thresholds_json(t: Thresholds) -> dict[str, list[Any]]:
    return {
        "recency_days": list(t.recency_days),
        "frequency": list(t.frequency),
        "monetary": [format(m, "f") for m in t.monetary],
    }


def thresholds_from(value: object) -> Thresholds:
    if not isinstance(value, dict):
        raise InvalidEventError("thresholds must be an object or null")
    try:
        return Thresholds(
            _cuts(value, "recency_days", lambda b: _whole(b, "recency_days")),
            _cuts(value, "frequency", lambda b: _whole(b, "frequency")),
            _cuts(value, "monetary", lambda b: _amount(b, "monetary")),
        )
    except ValueError as exc:
        raise InvalidEventError(str(exc)) from exc


def _four(body: dict[str, Any], key: str, parse: Any) -> Any:
    items = body.get(key)
    if not isinstance(items, list) or len(items) != 4:
        raise InvalidEventError(f"scales.{key} must be a list of four")
    return tuple(None if b is None else parse(b) for b in items)


def _cuts(body: dict[str, Any], key: str, parse: Any) -> Any:
    items = body.get(key)
    if not isinstance(items, list) or len(items) != 4:
        raise InvalidEventError(f"{key} must be four cut points")
    return tuple(parse(b) for b in items)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise InvalidEventError(f"{key} must be text of 1 to 64 characters")
    return value


def _count(body: dict[str, Any], key: str) -> int:
    return _whole(body.get(key), key)


def _whole(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CUSTOMER:
        raise InvalidEventError(f"{name} must be a whole number, got {fields.preview(value)}")
    return value


def _amount(value: object, name: str) -> Decimal:
    if not isinstance(value, str):
        raise InvalidEventError(f"{name} must be decimal text, got {fields.preview(value)}")
    amount = fields.money({name: value}, name)
    if amount < 0:
        raise InvalidEventError(f"{name} cannot be negative")
    return amount


def _day(body: dict[str, Any], key: str) -> int:
    return _parse_day(body.get(key), key)


def _parse_day(value: object, name: str) -> int:
    if not isinstance(value, str):
        raise InvalidEventError(f"{name} must be an ISO date, got {fields.preview(value)}")
    try:
        return (date.fromisoformat(value) - EPOCH).days
    except ValueError:
        raise InvalidEventError(
            f"{name} must be an ISO date, got {fields.preview(value)}"
        ) from None


def _iso(day: int) -> str:
    return day_date(day).isoformat()
