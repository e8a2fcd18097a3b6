"""Times as the API and the CLI show them: ISO-8601 in UTC, with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """MongoDB hands back naive datetimes that are UTC: say so, so they compare and print right."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")
