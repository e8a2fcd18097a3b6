"""The tiers flow's PostgreSQL sink: `customer_tiers`, one upsert per batch of each customer's
latest snapshot, guarded so that a snapshot written again after a crash never takes a row
back (connectors/tier_records.py). Retried on a lost connection; a database that stays away
stops the flow, which resumes from its last snapshot and writes the same rows again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.tier_records import UPSERT_CUSTOMER_TIERS, latest_per_customer, upsert_params
from loyalty.tier_customers import TierSnapshot
from sinks.retry import RetryPolicy

log = logging.getLogger("loyalnest.sinks.tiers")


class TiersSinkError(RuntimeError):
    """PostgreSQL stayed unreachable through every retry; the flow must stop."""


class _Partition(StatelessSinkPartition[TierSnapshot]):
    def __init__(self, url: str, retry: RetryPolicy, sleep: Callable[[float], None]) -> None:
        self._url = url
        self._retry = retry
        self._sleep = sleep
        self._conn: psycopg.Connection[Any] | None = None

    def write_batch(self, items: list[TierSnapshot]) -> None:
        params = upsert_params(latest_per_customer(items))
        delays = self._retry.delays()
        while True:
            try:
                conn = self._connection()
                conn.execute(UPSERT_CUSTOMER_TIERS, params)
                conn.commit()
                return
            except psycopg.OperationalError as exc:
                self.close()
                delay = next(delays, None)
                if delay is None:
                    raise TiersSinkError(f"gave up after retries: {exc}") from exc
                log.warning("customer_tiers sink: %s; retrying in %.1fs", exc, delay)
                self._sleep(delay)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class CustomerTiersSink(DynamicSink[TierSnapshot]):
    def __init__(
        self,
        postgres_url: str,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = postgres_url
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[TierSnapshot]:
        return _Partition(self._url, self._retry, self._sleep)
