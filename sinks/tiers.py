"""The tiers flow's PostgreSQL sinks: `customer_tiers` and `vip_tier_counts`, one upsert per
batch of each key's latest snapshot, guarded so that a snapshot written again after a crash
never takes a row back (connectors/tier_records.py). Retried on a lost connection; a database
that stays away stops the flow, which resumes from its last snapshot and writes the same rows
again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.tier_records import (
    UPSERT_CUSTOMER_TIERS,
    UPSERT_TIER_COUNTS,
    counts_params,
    customer_tier_params,
)
from loyalty.tier_counts import CountsSnapshot
from loyalty.tier_customers import TierSnapshot
from sinks.retry import RetryPolicy

log = logging.getLogger("loyalnest.sinks.tiers")


class TiersSinkError(RuntimeError):
    """PostgreSQL stayed unreachable through every retry; the flow must stop."""


T = TypeVar("T")


@dataclass(frozen=True)
class Upsert(Generic[T]):
    """A statement, and how a batch becomes its parameters."""

    statement: str
    params: Callable[[list[T]], Mapping[str, object]]


class _Partition(StatelessSinkPartition[T]):
    def __init__(
        self, url: str, upsert: Upsert[T], retry: RetryPolicy, sleep: Callable[[float], None]
    ) -> None:
        self._url = url
        self._upsert = upsert
        self._retry = retry
        self._sleep = sleep
        self._conn: psycopg.Connection[Any] | None = None

    def write_batch(self, items: list[T]) -> None:
        params = self._upsert.params(items)
        self._retry.call(
            "tiers",
            lambda: self._upsert_once(params),
            transient=(psycopg.OperationalError,),
            failed=TiersSinkError,
            reset=self.close,
            sleep=self._sleep,
        )

    def _upsert_once(self, params: Any) -> None:
        conn = self._connection()
        conn.execute(self._upsert.statement, params)
        conn.commit()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresUpsertSink(DynamicSink[T]):
    def __init__(
        self,
        postgres_url: str,
        upsert: Upsert[T],
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = postgres_url
        self._upsert = upsert
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition[T]:
        return _Partition(self._url, self._upsert, self._retry, self._sleep)


CUSTOMER_TIERS: Upsert[TierSnapshot] = Upsert(UPSERT_CUSTOMER_TIERS, customer_tier_params)
TIER_COUNTS: Upsert[CountsSnapshot] = Upsert(UPSERT_TIER_COUNTS, counts_params)


def customer_tiers_sink(url: str) -> PostgresUpsertSink[TierSnapshot]:
    return PostgresUpsertSink(url, CUSTOMER_TIERS)


def tier_counts_sink(url: str) -> PostgresUpsertSink[CountsSnapshot]:
    return PostgresUpsertSink(url, TIER_COUNTS)
