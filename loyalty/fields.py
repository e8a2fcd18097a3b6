"""Reading values out of decoded JSON strictly: the type asked for, within its bounds, or an
InvalidEventError whose message names the field and shows (a bounded preview of) the value.

Strict means a JSON `true` is not an id, `"true"` is not a boolean, and Arabic-Indic or
full-width digits, `"1_000"` or `"1e3"` are not money, although Python's `int()` and
`Decimal()` accept them all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from loyalty.errors import InvalidEventError
from loyalty.limits import (
    MAX_ID,
    MAX_RATE,
    MAX_TEXT,
    MONEY_DECIMAL_PLACES,
    MONEY_INTEGER_DIGITS,
    RATE_DECIMAL_PLACES,
)

PREVIEW = 40
_MONEY = re.compile(
    rf"[0-9]{{1,{MONEY_INTEGER_DIGITS}}}(?:\.[0-9]{{1,{MONEY_DECIMAL_PLACES}}})?", re.ASCII
)
# A money setting a merchant types (numeric(12, 2) columns): no leading zeros, ten digits before
# the point, two after.
SETTING_MONEY = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?", re.ASCII)
_RATE = re.compile(rf"[0-9]{{1,5}}(?:\.[0-9]{{1,{RATE_DECIMAL_PLACES}}})?", re.ASCII)
# Every shop's permanent domain: a handle of letters, digits and hyphens on myshopify.com.
_SHOP = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\.myshopify\.com", re.ASCII)
_LOCALE = re.compile(r"[a-z]{2,3}", re.ASCII)
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)


def preview(value: object) -> str:
    """A value as shown in an error message: its repr, cut to a bounded length."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to write out (Python's 4,300-digit limit)
        return f"<an integer of {value.bit_length() if isinstance(value, int) else '?'} bits>"
    return text if len(text) <= PREVIEW else f"{text[:PREVIEW]}…"


def object_field(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise InvalidEventError(f"{key} must be an object, got {preview(value)}")


def list_of_objects(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidEventError(f"{key} must be a list of objects, got {preview(value)}")
    return value


# A UUID as the engine writes them (lower-case, hyphenated): merchant, event and request ids.
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)


def identifier(body: dict[str, Any], key: str, label: str | None = None) -> int:
    """A Shopify id: a JSON integer from 1 to 2^63 - 1. `label` names the field in errors."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEventError(f"{label or key} must be an integer id, got {preview(value)}")
    return checked_id(label or key, value)


def checked_id(key: str, value: int) -> int:
    if not 0 < value <= MAX_ID:
        raise InvalidEventError(f"{key} must be an id from 1 to 2^63-1, got {preview(value)}")
    return value


def parse_id(text: str) -> int | None:
    """A positive 64-bit id written in ASCII digits (a path or gRPC field), or None.
    (`"²".isdigit()` is True, hence the ASCII check.)"""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def flag(body: dict[str, Any], key: str) -> bool:
    """A JSON boolean; absent or null is false. A string such as "true" is refused."""
    value = body.get(key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise InvalidEventError(f"{key} must be true or false, got {preview(value)}")


def optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InvalidEventError(f"{key} must be a string, got {preview(value)}")


def optional_time(body: dict[str, Any], key: str) -> datetime | None:
    """An ISO-8601 time with its offset, as UTC; absent or null is None."""
    text = optional_text(body, key)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is not None:
            return value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: in UTC it falls outside years 1-9999
        pass
    raise InvalidEventError(f"{key} must be an ISO-8601 time with offset, got {preview(text)}")


def required_time(body: dict[str, Any], key: str) -> datetime:
    """An ISO-8601 time with its offset, as UTC, that must be there."""
    value = optional_time(body, key)
    if value is None:
        raise InvalidEventError(f"{key} is missing")
    return value


def money(body: dict[str, Any], key: str) -> Decimal:
    """A non-negative amount: a decimal string (Shopify's form) or a JSON number, with at most
    15 digits before the point and 8 after, in ASCII digits, without exponent."""
    value = body.get(key)
    if value is None:
        raise InvalidEventError(f"{key} is missing")
    amount = _amount(value)
    if amount is None:
        raise InvalidEventError(
            f'{key} must be a decimal amount such as "12.34" (up to {MONEY_INTEGER_DIGITS} '
            f"digits before the point and {MONEY_DECIMAL_PLACES} after), got {preview(value)}"
        )
    return amount


def optional_money(body: dict[str, Any], key: str) -> Decimal | None:
    return None if body.get(key) is None else money(body, key)


def _amount(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):  # from a JSON number: bound it before writing its digits
        exponent = value.as_tuple().exponent
        if not value.is_finite() or not isinstance(exponent, int):
            return None
        if value.adjusted() >= MONEY_INTEGER_DIGITS or exponent < -MONEY_DECIMAL_PLACES:
            return None
        return value if _MONEY.fullmatch(format(value, "f")) else None  # 1E-8: 0.00000001
    if isinstance(value, str):
        text = value
    elif isinstance(value, int):
        text = str(value) if 0 <= value < 10**MONEY_INTEGER_DIGITS else ""
    else:
        return None
    return Decimal(text) if _MONEY.fullmatch(text) else None


def rate(text: str) -> Decimal:
    """Points per currency unit, as a merchant sets it: 0 to 10,000, at most 4 places."""
    if not _RATE.fullmatch(text) or Decimal(text) > MAX_RATE:
        raise InvalidEventError(
            f"points per unit must be a decimal from 0 to {MAX_RATE} with at most "
            f"{RATE_DECIMAL_PLACES} decimal places, got {preview(text)}"
        )
    return Decimal(text)


def shop_domain(value: str | None) -> str:
    """A shop's permanent *.myshopify.com domain, normalized (trimmed, lower case)."""
    if not value:
        raise InvalidEventError("missing shop domain")
    # ASCII first: str.lower() maps some non-ASCII letters (the Kelvin sign) to ASCII ones.
    shop = value.strip().lower() if value.isascii() else ""
    if len(shop) > 80 or not _SHOP.fullmatch(shop):
        raise InvalidEventError(f"not a myshopify.com shop domain: {preview(value)}")
    return shop


def is_locale(value: str) -> bool:
    """A language code as the translations use them (ISO 639: two or three lower-case letters)."""
    return bool(_LOCALE.fullmatch(value))


def is_correlation_id(value: str) -> bool:
    """A tracing id: 1 to 128 letters, digits or `._:-` (a UUID, a W3C trace id, ...)."""
    return bool(_CORRELATION_ID.fullmatch(value))


def is_idempotency_key(value: str) -> bool:
    """An Idempotency-Key: 1 to 255 printable ASCII characters (it becomes a stored field)."""
    return 0 < len(value) <= MAX_TEXT and all(" " <= c <= "~" for c in value)
