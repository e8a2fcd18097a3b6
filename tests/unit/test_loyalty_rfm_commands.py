from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.errors import InvalidEventError
from loyalty.rfm import Thresholds, monetary_bucket, quintile_scales
from loyalty.rfm_commands import CustomerTick, DayTick, Settings, decode, encode
from loyalty.rfm_customers import Tick

MERCHANT = "8b0a2c4e-1f5d-5e7a-9c3b-2d4e6f8a0b1c"
THRESHOLDS = Thresholds(
    (7, 30, 90, 180),
    (2, 3, 5, 10),
    (Decimal("50"), Decimal("99.90"), Decimal("250"), Decimal("1000")),
)


@given(
    st.lists(st.integers(19_000, 21_000), min_size=0, max_size=40),
    st.lists(st.integers(1, 60), min_size=0, max_size=40),
    st.lists(st.decimals(min_value=0, max_value=Decimal("1e9"), places=2), max_size=40),
    st.integers(19_000, 21_000),
    st.integers(0, 10**9),
)
def test_a_tick_comes_back_with_the_same_scales(
    days: list[int], orders: list[int], spends: list[Decimal], as_of: int, version: int
) -> None:
    scales = quintile_scales(
        Counter(days), Counter(orders), Counter(monetary_bucket(s) for s in spends)
    )
    tick = CustomerTick(MERCHANT, 42, Tick(as_of, scales, version), lookback_days=90)

    assert decode(encode(tick)) == tick


def test_day_ticks_and_settings_come_back() -> None:
    for command in (
        DayTick(MERCHANT, 20_400),
        Settings(MERCHANT, THRESHOLDS),
        Settings(MERCHANT, None),
    ):
        assert decode(encode(command)) == command


def test_a_day_reads_as_an_iso_date() -> None:
    body = json.loads(encode(DayTick(MERCHANT, 1)))

    assert body == {"type": "rfm.day", "merchant_id": MERCHANT, "as_of": "1970-01-02"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "has no value"),
        (b"[]", "not a JSON object"),
        (b'{"type":"rfm.nap","merchant_id":"m"}', "unknown rfm command type"),
        (b'{"type":"rfm.day","as_of":"2026-01-01"}', "merchant_id must be text"),
        (b'{"type":"rfm.day","merchant_id":"m","as_of":"01/02/2026"}', "as_of must be an ISO date"),
        (
            b'{"type":"rfm.settings","merchant_id":"m","thresholds":{"recency_days":[1,2,3],'
            b'"frequency":[1,2,3,4],"monetary":["1","2","3","4"]}}',
            "recency_days must be four cut points",
        ),
        (
            b'{"type":"rfm.settings","merchant_id":"m","thresholds":{"recency_days":[4,3,2,1],'
            b'"frequency":[1,2,3,4],"monetary":["1","2","3","4"]}}',
            "recency-days needs four strictly ascending",
        ),
        (
            b'{"type":"rfm.settings","merchant_id":"m","thresholds":{"recency_days":[1,2,3,4],'
            b'"frequency":[1,2,3,4],"monetary":[1,2,3,4]}}',
            "monetary must be decimal text",
        ),
        (
            b'{"type":"rfm.tick","merchant_id":"m","customer":1,"as_of":"2026-01-01",'
            b'"version":1,"scales":{"recency":[null],"frequency":[],"monetary":[]}}',
            "scales.recency must be a list of four",
        ),
        (
            b'{"type":"rfm.tick","merchant_id":"m","customer":1,"as_of":"2026-01-01",'
            b'"version":true,"scales":{}}',
            "version must be a whole number",
        ),
        (
            b'{"type":"rfm.tick","merchant_id":"m","customer":1,"as_of":"2026-01-01",'
            b'"version":1,"scales":{"recency":[null,null,null,null],"frequency":[null,null,'
            b'null,null],"monetary":[null,null,null,null]},"lookback_days":0}',
            "lookback days must be from 1 to 3650",
        ),
    ],
)
def test_a_bad_command_says_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        decode(body)
