"""Values a request hands us that we keep or label with: checked here, or a 400.

Each becomes a ledger field, a Kafka header or a metric label somewhere downstream, so only
its valid form gets in: a made-up locale, correlation id or idempotency key is refused at the
edge with the rule it broke, never stored (or counted) as it came.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from connectors.kafka import CORRELATION_HEADER
from loyalty.fields import is_correlation_id, is_idempotency_key, is_locale
from loyalty.limits import MAX_TEXT

CORRELATION_RULE = f"{CORRELATION_HEADER} must be 1 to 128 letters, digits or . _ : -"
IDEMPOTENCY_RULE = f"Idempotency-Key header required: 1 to {MAX_TEXT} printable ASCII characters"


class BadValueError(ValueError):
    """A request value that breaks its rule; the message says which rule (a 400)."""


def requested_locale(value: str | None, supported: Iterable[str]) -> str | None:
    """The locale a request asked for (None: it did not ask); BadValueError if not served."""
    if value is None:
        return None
    known = sorted(supported)
    if not (is_locale(value) and value in known):
        raise BadValueError(f"locale must be one of {', '.join(known)}")
    return value


def correlation_id(value: str | None) -> str:
    """The caller's tracing id if it has the valid form, a new one if it sent none."""
    if value is None:
        return str(uuid.uuid4())
    if not is_correlation_id(value):
        raise BadValueError(CORRELATION_RULE)
    return value


def idempotency_key(value: str | None) -> str:
    if value is None or not is_idempotency_key(value):
        raise BadValueError(IDEMPOTENCY_RULE)
    return value


def int_query(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; `default` when it is absent."""
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BadValueError(f"{name} must be an integer between {low} and {high}")
    return int(raw)
