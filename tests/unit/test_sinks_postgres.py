"""The customers sink's writer with a fake connection: merchants checked once, unknown ones
dead-lettered, a lost connection retried, a deleted merchant asked about again. (The SQL itself
is proven against PostgreSQL in tests/integration/test_customers_flow.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage

from connectors.customers import KNOWN_MERCHANTS, UPSERT_RFM_SCORES, RfmScoreRow
from connectors.dead_letters import DLQ_REASON, DLQ_STEP
from connectors.kafka import SinkMessage, SourceMessage
from sinks.postgres import STEP, CustomersSinkError, ScoresWriter, ScoreWrite, unknown_merchant
from sinks.retry import RetryPolicy

KNOWN, OTHER = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"


@dataclass
class Result:
    rows: list[tuple[str]] = field(default_factory=list)
    rowcount: int = 0

    def fetchall(self) -> list[tuple[str]]:
        return self.rows


@dataclass
class FakeConnection:
    merchants: set[str]
    failures: list[Exception] = field(default_factory=list)  # raised by the next executes
    asked: list[list[str]] = field(default_factory=list)
    upserted: list[list[str]] = field(default_factory=list)
    closed: bool = False

    def execute(self, query: str, params: dict[str, Any]) -> Result:
        if self.failures:
            raise self.failures.pop(0)
        if query == KNOWN_MERCHANTS:
            self.asked.append(params["ids"])
            return Result([(m,) for m in params["ids"] if m in self.merchants])
        assert query == UPSERT_RFM_SCORES
        self.upserted.append(params["ids"])
        return Result(rowcount=len(params["ids"]))

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None:
        self.closed = True


@dataclass
class Letters:
    sent: list[SinkMessage] = field(default_factory=list)

    def write_batch(self, items: list[SinkMessage]) -> None:
        self.sent.extend(items)

    def close(self) -> None: ...


def write(merchant: str, customer: str, sequence: int = 1) -> ScoreWrite:
    row = RfmScoreRow(customer, merchant, 1, sequence, "{}")
    message: SourceMessage = KafkaSourceMessage(
        key=b"k", value=b"v", topic="rfm.updated", partition=0, offset=1
    )
    return row, message


def writer(conn: FakeConnection, letters: Letters, sleeps: list[float]) -> ScoresWriter:
    return ScoresWriter(
        lambda: conn,  # type: ignore[arg-type,return-value]
        letters,  # type: ignore[arg-type]
        "customers",
        retry=RetryPolicy(attempts=3, base_delay=0.5),
        sleep=sleeps.append,
    )


def test_unknown_merchants_rows_are_dead_lettered_and_merchants_asked_once() -> None:
    conn, letters, sleeps = FakeConnection({KNOWN}), Letters(), list[float]()
    sink = writer(conn, letters, sleeps)

    sink.write([write(KNOWN, "c1"), write(OTHER, "c2"), write(KNOWN, "c1", 2)])
    sink.write([write(KNOWN, "c3")])
    sink.write([write(OTHER, "c4")])  # not remembered as unknown: it may register meanwhile

    assert conn.upserted == [["c1"], ["c3"]]
    assert conn.asked == [[KNOWN, OTHER], [OTHER]]
    assert len(letters.sent) == 2
    headers = dict(letters.sent[0].headers)
    assert headers[DLQ_REASON].decode() == unknown_merchant(OTHER)
    assert headers[DLQ_STEP].decode() == STEP


def test_a_lost_connection_is_retried_with_backoff_then_given_up() -> None:
    lost = psycopg.OperationalError("server closed the connection")
    conn, letters, sleeps = FakeConnection({KNOWN}, [lost, lost]), Letters(), list[float]()

    writer(conn, letters, sleeps).write([write(KNOWN, "c1")])

    assert (conn.upserted, sleeps) == ([["c1"]], [0.5, 1.0])
    conn.failures = [lost] * 3
    with pytest.raises(CustomersSinkError, match="gave up after retries"):
        writer(conn, letters, sleeps).write([write(KNOWN, "c1")])


def test_a_merchant_deleted_meanwhile_is_asked_about_again() -> None:
    conn, letters, sleeps = FakeConnection({KNOWN, OTHER}), Letters(), list[float]()
    sink = writer(conn, letters, sleeps)
    sink.write([write(OTHER, "c1")])
    conn.merchants.discard(OTHER)
    conn.failures = [psycopg.errors.ForeignKeyViolation("merchant gone")]

    sink.write([write(OTHER, "c2"), write(KNOWN, "c3")])

    assert conn.upserted == [["c1"], ["c3"]]
    assert [dict(m.headers)[DLQ_REASON].decode() for m in letters.sent] == [unknown_merchant(OTHER)]
