"""`loyalnest dlq` without Kafka: which dead letters a filter selects, what a re-drive carries,
where it goes, how a list reads, how references parse, and how a replay is paced."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime

import pytest

from connectors.dead_letters import (
    DLQ_ATTEMPT,
    DLQ_ORIGIN,
    DLQ_REASON,
    DLQ_REPLAYED_FROM,
    DLQ_STEP,
    DLQ_TIMESTAMP,
    origin_topic,
    redriven_headers,
)
from loyalnest.dlq import DeadLetter, Pace, Selection, destination, parse_ref, table
from loyalnest.settings import Settings

AT = datetime(2026, 5, 1, 12, tzinfo=UTC)
MS = int(AT.timestamp() * 1000)


def letter(
    reason: str = "not JSON",
    step: str = "decode-order",
    shop: str | None = "a.myshopify.com",
    at_ms: int | None = MS,
    origin: str = "shopify.orders/0/7",
    value: bytes = b"{}",
    offset: int = 3,
) -> DeadLetter:
    headers = [("X-Shopify-Topic", b"orders/paid"), (DLQ_REASON, reason.encode())]
    if shop is not None:
        headers.append(("X-Shopify-Shop-Domain", shop.encode()))
    headers += [(DLQ_STEP, step.encode()), (DLQ_ORIGIN, origin.encode()), (DLQ_ATTEMPT, b"1")]
    if at_ms is not None:
        headers.append((DLQ_TIMESTAMP, str(at_ms).encode()))
    return DeadLetter("points.dlq", 0, offset, b"key", value, headers)


def test_every_condition_given_must_hold() -> None:
    d = letter()

    assert Selection()(d)
    assert Selection(reason="NOT json")(d)
    assert not Selection(reason="too large")(d)
    assert Selection(step="decode-order", shop="A.myshopify.com")(d)
    assert not Selection(step="order-state")(d)
    assert not Selection(shop="b.myshopify.com")(d)


def test_a_record_that_keeps_failing_can_be_left_out_by_its_attempt_count() -> None:
    first = letter()
    third = dataclasses.replace(
        first, headers=[(k, b"3" if k == DLQ_ATTEMPT else v) for k, v in first.headers]
    )

    assert (first.attempt, third.attempt) == (1, 3)
    assert Selection(max_attempt=2)(first)
    assert not Selection(max_attempt=2)(third)
    assert Selection(max_attempt=3)(third)


def test_the_time_window_includes_its_start_and_excludes_its_end() -> None:
    d = letter()

    assert Selection(since=AT, until=datetime(2026, 5, 2, tzinfo=UTC))(d)
    assert not Selection(until=AT)(d)
    assert not Selection(since=datetime(2026, 5, 1, 13, tzinfo=UTC))(d)
    assert not Selection(since=AT)(letter(at_ms=None)), "no time: outside any window"


def test_the_shop_comes_from_the_webhook_header_else_from_the_body() -> None:
    assert letter().shop == "a.myshopify.com"
    assert letter(shop=None, value=b'{"shop": "b.myshopify.com"}').shop == "b.myshopify.com"
    assert letter(shop=None, value=b"not json").shop == ""


def test_a_redrive_carries_the_original_headers_its_attempt_and_where_it_came_from() -> None:
    headers = redriven_headers(letter().headers, "points.dlq/0/3")

    assert headers == [
        ("X-Shopify-Topic", b"orders/paid"),
        ("X-Shopify-Shop-Domain", b"a.myshopify.com"),
        (DLQ_ATTEMPT, b"1"),
        (DLQ_REPLAYED_FROM, b"points.dlq/0/3"),
    ]


def test_the_origin_topic_is_read_from_the_origin_header() -> None:
    assert origin_topic("shopify.orders/2/10") == "shopify.orders"
    assert origin_topic("shopify.orders") == "shopify.orders"  # refused by the API's edge
    assert origin_topic("") is None
    assert origin_topic(None) is None


def test_a_redrive_goes_back_to_a_topic_a_flow_reads_else_to_points_replay() -> None:
    settings = Settings(kafka_topic_prefix="t.")

    assert destination(settings, letter(origin="t.shopify.orders/0/7")) == "t.shopify.orders"
    assert destination(settings, letter(origin="t.points.commands/1/2")) == "t.points.commands"
    assert destination(settings, letter(origin="t.points.dlq/0/1")) == "t.points.replay"
    assert destination(settings, letter(origin="elsewhere/0/1")) == "t.points.replay"
    assert destination(settings, letter(origin="")) == "t.points.replay"


def test_the_list_is_a_table_then_a_count_by_reason() -> None:
    out = io.StringIO()

    counts = table([letter(), letter("too large", offset=4), letter(offset=5)], out)

    assert counts == {"not JSON": 2, "too large": 1}
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["offset", "time", "shop", "origin", "step", "reason"]
    assert lines[1].split()[:2] == ["points.dlq/0/3", "2026-05-01T12:00:00Z"]
    assert "3 dead letter(s)" in lines
    assert lines[-2:] == ["       2  not JSON", "       1  too large"]


def test_a_reference_names_topic_partition_and_offset() -> None:
    assert parse_ref("points.dlq/2/17", "x.points.dlq") == ("points.dlq", 2, 17)
    assert parse_ref("rfm.dlq/17", "x.points.dlq") == ("rfm.dlq", 0, 17)
    assert parse_ref("17", "x.points.dlq") == ("x.points.dlq", 0, 17)
    for bad in ("", "points.dlq", "points.dlq/a/1", "1/2/3/4", "-1"):
        with pytest.raises(ValueError, match="not a dead letter reference"):
            parse_ref(bad, "x.points.dlq")


def test_a_rate_paces_by_sleeping_until_the_count_is_due() -> None:
    slept: list[float] = []
    pace = Pace(100.0, 1_000, None)

    pace.after(50, 60, slept.append)  # 50 re-drives at 100/s are due at 0.5 s

    assert pace.chunk == 10
    assert len(slept) == 1
    assert 0.4 < slept[0] <= 0.5


def test_progress_is_drawn_only_on_a_terminal() -> None:
    screen = io.StringIO()
    pace = Pace(None, 10, screen)

    pace.after(5, 8)
    pace.finish()

    assert screen.getvalue().startswith("\r5 re-driven")
    assert "read 8/10" in screen.getvalue()
    assert screen.getvalue().endswith("\n")
    assert Pace(None, 10, None).chunk == 1_000
