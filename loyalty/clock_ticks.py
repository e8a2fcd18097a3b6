"""The `clock.ticks` record format: the clock job's beat, for flows that age as a whole.

One JSON record per round, `{"type": "clock.tick", "at": ISO-8601 UTC}`, always under the key
`clock`, so every tick lands on one partition, in the order it was sent. A flow that ages with
time (RFM recency) reads time from these records, never from the wall clock, so a replay sees
the same time. The points flow gets its ticks per customer on `points.commands` instead
(`loyalty.commands.encode_tick`).
"""

from __future__ import annotations

import json
from datetime import datetime

from loyalty import fields, json_input
from loyalty.errors import InvalidEventError

CLOCK_TICK = "clock.tick"
CLOCK_KEY = b"clock"


def encode_clock_tick(at: datetime) -> bytes:
    return json.dumps({"type": CLOCK_TICK, "at": at.isoformat()}, separators=(",", ":")).encode()


def decode_clock_tick(raw: bytes | None) -> datetime:
    """The time a `clock.tick` record carries (UTC); InvalidEventError when it is not one."""
    body = json_input.loads(raw or b"")
    if not isinstance(body, dict) or body.get("type") != CLOCK_TICK:
        raise InvalidEventError("not a clock.tick record")
    at = fields.optional_time(body, "at")
    if at is None:
        raise InvalidEventError("at is missing")
    return at
