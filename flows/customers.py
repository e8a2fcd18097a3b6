"""Core's customers from `rfm.updated`: each customer's `rfm_score` in PostgreSQL.

The read model of the RFM flow's decisions for Core (segment queries in SQL): decode the Avro
record, build its row (connectors/customers.py), upsert it (sinks/postgres.py). A record that
does not decode, or whose merchant Core does not know, goes to `customers.dlq` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, Sink
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter

from connectors.avro import AvroDecoder
from connectors.customers import rfm_score_row
from connectors.kafka import SinkMessage, SourceItem, SourceMessage
from connectors.kafka import source as kafka_source
from flows.common import Rejected, dead_letters_out, guarded_decode, only
from loyalnest import logs
from loyalnest.priority import apply_priority
from loyalnest.settings import Settings
from loyalnest.topics import CUSTOMERS_DLQ, RFM_UPDATED
from sinks.kafka import dead_letter_sink
from sinks.postgres import CustomersSink, RoutedScoreWrite, ScoreWrite

FLOW = "customers"
REJECTED = Counter("loyalnest_customers_rejected_total", "rfm.updated records that do not decode")
DECODE_STEP = "decode"
Decode = Callable[[bytes | None], dict[str, Any]]


def score_write(decode: Decode) -> Callable[[SourceMessage], RoutedScoreWrite]:
    """The decode step: a record's row, with the record (for its dead letter in the sink),
    routed by customer."""

    def run(message: SourceMessage) -> RoutedScoreWrite:
        write: ScoreWrite = (rfm_score_row(decode(message.value)), message)
        return write[0].customer_id, write

    return run


def build(
    source: Source[SourceItem],
    customers: Sink[RoutedScoreWrite],
    dead_letters: Sink[SinkMessage],
    decode: Decode,
) -> Dataflow:
    flow = Dataflow(FLOW)
    decoded = op.map(
        DECODE_STEP,
        op.input("updates-in", flow, source),
        guarded_decode(DECODE_STEP, score_write(decode)),
    )
    op.output("customers-out", op.filter_map("rows", decoded, only(tuple)), customers)
    dead_letters_out(FLOW, dead_letters, count_rejected, [(DECODE_STEP, decoded)])
    return flow


def count_rejected(_rejected: Rejected) -> None:
    REJECTED.inc()


def flow() -> Dataflow:
    """Production wiring, for `python -m bytewax.run "flows.customers:flow()"`."""
    settings = Settings()
    logs.configure_job(settings)
    apply_priority(settings, FLOW)
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    brokers = settings.kafka_brokers
    dead_letters: DynamicSink[SinkMessage] = dead_letter_sink(
        brokers, settings.topic(CUSTOMERS_DLQ)
    )
    topic = settings.topic(RFM_UPDATED)
    return build(
        kafka_source(brokers, [topic], flow=FLOW),
        CustomersSink(settings.postgres_url, dead_letters, FLOW),
        dead_letters,
        AvroDecoder.registered(registry, RFM_UPDATED, topic),
    )
