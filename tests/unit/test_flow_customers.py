"""The customers dataflow in-process: rfm.updated records (real Avro, the schema in avro/) in,
rows for Core's customers table out, and what cannot be read to the dead-letter topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from connectors.avro import AvroDecoder, AvroEncoder
from connectors.customers import RfmScoreRow, latest_per_customer, rfm_score_row, upsert_params
from connectors.dead_letters import DLQ_FLOW, DLQ_REASON, DLQ_STEP
from connectors.kafka import SinkMessage, SourceItem, SourceMessage
from connectors.rfm_records import updated_event
from flows.customers import DECODE_STEP, FLOW, build
from loyalnest.schemas import schema_text
from loyalnest.topics import RFM_UPDATED
from loyalty import ids
from loyalty.errors import InvalidEventError
from loyalty.rfm import Scores, Segment, Values, day_number
from loyalty.rfm_customers import RfmUpdate
from sinks.postgres import RoutedScoreWrite

MERCHANT = str(ids.merchant_id("core.myshopify.com"))
SCHEMA_ID = 7
SUBJECT = "rfm.updated-value"
AS_OF = day_number(datetime(2026, 6, 30, 9, tzinfo=UTC))


def update(customer: int, sequence: int, scores: Scores | None) -> dict[str, Any]:
    values = Values(AS_OF - 3, 4, Decimal("812.40")) if scores else Values(None, 0, Decimal("0"))
    return updated_event(
        MERCHANT, customer, RfmUpdate(values, scores, Segment.PROMISING, AS_OF, sequence)
    )


def message(value: bytes | None, offset: int = 0) -> SourceMessage:
    return KafkaSourceMessage(
        key=b"k", value=value, topic=RFM_UPDATED, headers=[], partition=0, offset=offset
    )


ENCODE = AvroEncoder(SCHEMA_ID, schema_text(RFM_UPDATED))
DECODE = AvroDecoder(schema_text(RFM_UPDATED), {SCHEMA_ID: schema_text(RFM_UPDATED)}, SUBJECT)


def run(values: list[bytes | None]) -> tuple[list[RoutedScoreWrite], list[SinkMessage]]:
    rows: list[RoutedScoreWrite] = []
    dead: list[SinkMessage] = []
    items: list[SourceItem] = [message(v, n) for n, v in enumerate(values)]
    flow = build(TestingSource(items), TestingSink(rows), TestingSink(dead), DECODE)
    run_main(flow)  # type: ignore[no-untyped-call]  # bytewax's stub leaves it unannotated
    return rows, dead


def test_an_update_becomes_its_customers_row_routed_by_customer() -> None:
    champion = Scores(5, 4, 5, Segment.CHAMPIONS)

    [(key, (row, source))], dead = run([ENCODE(update(42, 3, champion))])

    customer = str(ids.customer_id(MERCHANT, 42))
    assert dead == []
    assert (key, row.customer_id, row.merchant_id) == (customer, customer, MERCHANT)
    assert (row.shopify_customer_id, row.sequence, source.offset) == (42, 3, 0)
    assert json.loads(row.score) == {
        "segment": "champions",
        "r": 5,
        "f": 4,
        "m": 5,
        "recency_days": 3,
        "frequency": 4,
        "monetary": "812.40",
        "as_of": "2026-06-30",
        "sequence": 3,
    }


def test_a_prospect_has_no_scores_and_no_recency() -> None:
    [(_, (row, _))], _ = run([ENCODE(update(7, 1, None))])

    score = json.loads(row.score)
    assert (score["segment"], score["r"], score["recency_days"]) == ("prospects", None, None)
    assert (score["frequency"], score["monetary"]) == (0, "0")


def test_what_does_not_decode_is_dead_lettered_with_the_reason() -> None:
    good = ENCODE(update(1, 1, None))
    later_schema = b"\x00" + (SCHEMA_ID + 1).to_bytes(4, "big") + good[5:]

    rows, dead = run([b"not avro", None, later_schema, good[:9]])

    assert rows == []
    reasons = [dict(letter.headers)[DLQ_REASON].decode() for letter in dead]
    assert reasons[:2] == ["not an Avro value in the Confluent wire format"] * 2
    assert reasons[2] == (
        f"schema id {SCHEMA_ID + 1} was not registered under {SUBJECT} when this reader started"
    )
    assert reasons[3].startswith("Avro value does not decode")
    assert {(dict(d.headers)[DLQ_FLOW], dict(d.headers)[DLQ_STEP]) for d in dead} == {
        (FLOW.encode(), DECODE_STEP.encode())
    }


def test_a_record_of_an_older_writer_schema_takes_the_readers_defaults() -> None:
    """BACKWARD: the reader resolves each record with the schema it was written in."""
    older = json.loads(schema_text(RFM_UPDATED))
    older["fields"] = [f for f in older["fields"] if f["name"] != "schema_version"]
    decode = AvroDecoder(schema_text(RFM_UPDATED), {3: json.dumps(older)}, SUBJECT)
    record = update(5, 2, Scores(1, 1, 1, Segment.HIBERNATING))
    del record["schema_version"]

    decoded = decode(AvroEncoder(3, json.dumps(older))(record))

    assert decoded["schema_version"] == "1.0.0"
    assert rfm_score_row(decoded).sequence == 2


def test_a_record_missing_a_field_is_refused_with_its_name() -> None:
    record = dict(DECODE(ENCODE(update(5, 2, None))))
    del record["as_of"]

    with pytest.raises(InvalidEventError, match="no field 'as_of'"):
        rfm_score_row(record)


def row(customer: str, sequence: int) -> RfmScoreRow:
    return RfmScoreRow(customer, MERCHANT, 1, sequence, f'{{"sequence": {sequence}}}')


def test_a_batch_keeps_each_customers_newest_row_whatever_the_order() -> None:
    rows = [row("a", 2), row("b", 1), row("a", 5), row("a", 3), row("b", 1)]

    assert latest_per_customer(rows) == [row("a", 5), row("b", 1)]
    assert upsert_params(latest_per_customer(rows))["ids"] == ["a", "b"]
