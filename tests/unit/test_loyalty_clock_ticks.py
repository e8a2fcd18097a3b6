"""The `clock.ticks` record: what the clock job writes is what a flow reads back, strictly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from loyalty.clock_ticks import decode_clock_tick, encode_clock_tick
from loyalty.errors import InvalidEventError

AT = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def test_a_tick_reads_back_as_the_same_utc_time() -> None:
    assert encode_clock_tick(AT) == b'{"type":"clock.tick","at":"2026-03-01T12:00:00.250000+00:00"}'
    assert decode_clock_tick(encode_clock_tick(AT)) == AT
    assert decode_clock_tick(b'{"type":"clock.tick","at":"2026-03-01T13:00:00.25+01:00"}') == AT
    assert decode_clock_tick(encode_clock_tick(AT)).tzinfo == UTC


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"[]",
        b'{"at":"2026-03-01T12:00:00+00:00"}',
        b'{"type":"points.tick","at":"2026-03-01T12:00:00+00:00"}',
        b'{"type":"clock.tick"}',
        b'{"type":"clock.tick","at":"2026-03-01T12:00:00"}',
        b'{"type":"clock.tick","at":1772366400}',
    ],
)
def test_anything_else_is_refused(raw: bytes | None) -> None:
    with pytest.raises(InvalidEventError):
        decode_clock_tick(raw)


def test_the_offset_of_the_encoded_time_is_kept_in_the_text() -> None:
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    assert decode_clock_tick(encode_clock_tick(paris)) == AT
