"""Dead letters: the original record kept whole, plus why, where, when and how often."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from prometheus_client import REGISTRY

from connectors.dead_letters import (
    DEFECT_PREFIX,
    DLQ_ATTEMPT,
    DLQ_FLOW,
    DLQ_ORIGIN,
    DLQ_REASON,
    DLQ_STEP,
    DLQ_TIMESTAMP,
    KAFKA_ERROR_PREFIX,
    MAX_REASON,
    bounded,
    dead_letter,
    edge_dead_letter,
    reason_class,
)
from connectors.kafka import CORRELATION_HEADER, SourceMessage
from loyalnest.logs import CORRELATION_FIELD

HEADERS = [
    ("X-Shopify-Topic", b"orders/create"),
    ("X-Shopify-Hmac-Sha256", b"c2lnbmF0dXJl"),
    ("X-Broken", b"\xffok"),
]


def message(headers: list[tuple[str, bytes]] | None = None) -> SourceMessage:
    return KafkaSourceMessage(
        key=b"order-1",
        value=b'{"id": 1}',
        topic="shopify.orders",
        headers=HEADERS if headers is None else headers,
        partition=3,
        offset=42,
        timestamp=(1, 1_700_000_000_123),
    )


def added(dlq: KafkaSinkMessage[bytes | None, bytes | None]) -> dict[str, bytes]:
    return {k: v for k, v in dlq.headers if k.startswith("dlq-")}


def test_dead_letter_keeps_key_value_and_headers_and_says_why_where_and_when() -> None:
    dlq = dead_letter(message(), "not JSON: boom", "points", "decode-order")

    assert (dlq.key, dlq.value) == (b"order-1", b'{"id": 1}')
    assert dlq.headers[: len(HEADERS)] == HEADERS  # every header the record had, as it was
    assert added(dlq) == {
        DLQ_REASON: b"not JSON: boom",
        DLQ_FLOW: b"points",
        DLQ_STEP: b"decode-order",
        DLQ_ORIGIN: b"shopify.orders/3/42",
        DLQ_ATTEMPT: b"1",
        DLQ_TIMESTAMP: b"1700000000123",
    }
    assert dlq.topic is None  # the sink's configured dead-letter topic is used


def test_header_names() -> None:
    names = (DLQ_REASON, DLQ_FLOW, DLQ_STEP, DLQ_ORIGIN, DLQ_TIMESTAMP, DLQ_ATTEMPT)

    assert names == (
        "dlq-reason",
        "dlq-flow",
        "dlq-step",
        "dlq-origin",
        "dlq-timestamp",
        "dlq-attempt",
    )


def test_a_record_dead_lettered_again_counts_the_attempt_and_replaces_the_old_headers() -> None:
    first = dead_letter(message(), "first reason", "points", "decode-order")
    redriven = KafkaSourceMessage(
        key=first.key,
        value=first.value,
        topic="shopify.orders",
        headers=list(first.headers),
        partition=0,
        offset=7,
        timestamp=(1, 1_700_000_009_000),
    )

    second = dead_letter(redriven, "second reason", "points", "order-state")

    assert added(second)[DLQ_ATTEMPT] == b"2"
    assert added(second)[DLQ_REASON] == b"second reason"
    assert [k for k, _ in second.headers].count(DLQ_REASON) == 1
    assert second.headers[: len(HEADERS)] == HEADERS


def test_a_record_without_a_timestamp_has_no_timestamp_header() -> None:
    msg: SourceMessage = KafkaSourceMessage(
        key=None, value=b"x", topic="t", headers=[], partition=0, offset=0, timestamp=(0, -1)
    )

    assert DLQ_TIMESTAMP not in added(dead_letter(msg, "why", "points", "decode-order"))


def test_dead_letter_does_not_modify_the_original_headers() -> None:
    headers = [("X-Shopify-Topic", b"orders/create")]

    dead_letter(message(headers=headers), "why", "points", "step")

    assert headers == [("X-Shopify-Topic", b"orders/create")]


def test_a_non_ascii_reason_is_utf8() -> None:
    dlq = dead_letter(message(headers=[]), "unsupported topic 'commandes/créer'", "p", "s")

    assert added(dlq)[DLQ_REASON] == "unsupported topic 'commandes/créer'".encode()


def test_a_long_reason_is_cut_on_a_character_boundary_to_the_limit() -> None:
    reason = "é" * 5_000  # two bytes each: a cut in the middle of one would not decode

    cut = bounded(reason)

    assert len(cut) <= MAX_REASON
    assert cut.endswith(b"...")
    assert cut.decode("utf-8").startswith("é" * 400)


def test_a_reason_with_a_lone_surrogate_still_encodes() -> None:
    assert bounded("bad \ud800 text") == b"bad ? text"


def test_the_api_dead_letters_a_webhook_it_never_produced_with_its_topic_as_origin() -> None:
    received = datetime(2026, 11, 21, 12, 0, 0, 500_000, tzinfo=UTC)

    key, value, headers = edge_dead_letter(
        b"shop:1",
        b"{}",
        [("X-Shopify-Topic", b"orders/create"), ("dlq-reason", b"stale")],
        reason="customer.id must be an integer id, got True",
        step="ingest",
        origin_topic="shopify.orders",
        received_at=received,
    )

    assert (key, value) == (b"shop:1", b"{}")
    assert headers[0] == ("X-Shopify-Topic", b"orders/create")
    assert dict(headers) == {
        "X-Shopify-Topic": b"orders/create",
        DLQ_REASON: b"customer.id must be an integer id, got True",
        DLQ_FLOW: b"api",
        DLQ_STEP: b"ingest",
        DLQ_ORIGIN: b"shopify.orders",
        DLQ_ATTEMPT: b"1",
        DLQ_TIMESTAMP: str(int(received.timestamp() * 1000)).encode(),
    }


def dead_count(flow: str, step: str, reason: str) -> float:
    labels = {"flow": flow, "step": step, "reason": reason}
    return REGISTRY.get_sample_value("loyalnest_dead_letters_total", labels) or 0.0


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("financial_status must be a string", "invalid"),
        (f"{DEFECT_PREFIX}KeyError: 'x'", "defect"),
        (f"{KAFKA_ERROR_PREFIX}timed out", "kafka_error"),
    ],
)
def test_every_dead_letter_is_counted_by_flow_step_and_reason_class(reason: str, kind: str) -> None:
    before = dead_count("points", "decode-order", kind)

    dead_letter(message(), reason, "points", "decode-order")

    assert dead_count("points", "decode-order", kind) == before + 1
    assert reason_class(reason) == kind


def test_a_dead_letter_is_logged_with_the_records_correlation_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="loyalnest.dead_letters")

    dead_letter(message([*HEADERS, (CORRELATION_HEADER, b"wh-9")]), "bad", "rfm", "decode")

    (line,) = caplog.records
    assert getattr(line, CORRELATION_FIELD) == "wh-9"
    assert "shopify.orders/3/42" in line.getMessage()
    assert "rfm.decode: bad" in line.getMessage()
