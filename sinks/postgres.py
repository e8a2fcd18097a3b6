"""Bytewax sinks into PostgreSQL: Core's `customers.rfm_score`, and `referrals` (with its Redis
cache).

The customers sink writes each batch as one upsert of the newest row per customer
(connectors/customers.py), guarded by the event's sequence, so a batch written twice after a
crash changes nothing the second time. The referrals sink does the same for referrals
(connectors/referral_records.py), guarded by when and how far each was decided.

A row needs its merchant in Core (`customers.merchant_id` references `merchants`). Records of a
merchant Core does not know are not dropped: they go to the dead-letter topic with the reason,
to be re-driven once the merchant is registered. Known merchants are remembered; a merchant
deleted since (its customers go with it) is looked up again when the upsert names it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import psycopg
import redis
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)
from bytewax.outputs import StatelessSinkPartition as DeadLetters
from prometheus_client import Counter
from psycopg.rows import class_row
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.customers import (
    KNOWN_MERCHANTS,
    UPSERT_RFM_SCORES,
    RfmScoreRow,
    latest_per_customer,
    upsert_params,
)
from connectors.dead_letters import dead_letter
from connectors.kafka import SinkMessage, SourceMessage
from connectors.referral_cache import ReferralCache
from connectors.referral_records import BY_IDS as REFERRALS_BY_IDS
from connectors.referral_records import UPSERT as UPSERT_REFERRALS
from connectors.referral_records import ReferralRow, latest_per_referral
from connectors.referral_records import upsert_params as upsert_referrals
from loyalty.referrals import Referral
from sinks.retry import RetryPolicy

log = logging.getLogger(__name__)

ScoreWrite: TypeAlias = tuple[RfmScoreRow, SourceMessage]
"""A row to store, with the record it came from (its dead letter if it cannot be stored)."""
RoutedScoreWrite: TypeAlias = tuple[str, ScoreWrite]
"""What the sink takes: (customer id, write)."""
STEP = "customers-out"  # the step named in this sink's dead letters

ROWS = Counter(
    "loyalnest_customers_sink_rows_total",
    "rfm.updated records the customers sink handled, by outcome",
    ["outcome"],  # applied, superseded (an older or repeated event), dead_letter
)
CACHE_ERRORS = Counter(
    "loyalnest_referral_cache_errors_total", "Failed referral cache refreshes (entries expire)"
)


class CustomersSinkError(RuntimeError):
    """PostgreSQL stayed unreachable through every retry; the flow must stop."""


class ScoresWriter:
    """Writes batches of rows: merchants checked, one upsert, dead letters for the rest."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[tuple[str]]],
        dead_letters: DeadLetters[SinkMessage],
        flow: str,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[tuple[str]] | None = None
        self._dead_letters = dead_letters
        self._flow = flow
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._known: set[str] = set()

    def write(self, writes: list[ScoreWrite]) -> None:
        refused = self._retry.call(
            "customers",
            lambda: self._write_once(writes),
            transient=(psycopg.OperationalError,),
            failed=CustomersSinkError,
            reset=self._reset,
            sleep=self._sleep,
        )
        if refused:
            self._dead_letters.write_batch(refused)
            ROWS.labels("dead_letter").inc(len(refused))

    def close(self) -> None:
        self._reset()
        self._dead_letters.close()

    def _write_once(self, writes: list[ScoreWrite]) -> list[SinkMessage]:
        conn = self._connection()
        try:
            known = self._known_merchants(conn, {row.merchant_id for row, _ in writes})
            stored = [row for row, _ in writes if row.merchant_id in known]
            applied = self._upsert(conn, stored)
            conn.commit()
        except psycopg.errors.ForeignKeyViolation:
            conn.rollback()
            self._known.clear()  # a merchant was deleted meanwhile: ask again
            return self._write_once(writes)
        ROWS.labels("applied").inc(applied)
        ROWS.labels("superseded").inc(len(stored) - applied)
        return [
            dead_letter(message, unknown_merchant(row.merchant_id), self._flow, STEP)
            for row, message in writes
            if row.merchant_id not in known
        ]

    @staticmethod
    def _upsert(conn: psycopg.Connection[tuple[str]], rows: list[RfmScoreRow]) -> int:
        """Rows changed: each customer's newest, where newer than what the table holds."""
        if not rows:
            return 0
        return conn.execute(UPSERT_RFM_SCORES, upsert_params(latest_per_customer(rows))).rowcount

    def _known_merchants(self, conn: psycopg.Connection[tuple[str]], ids: set[str]) -> set[str]:
        asked = sorted(ids - self._known)
        if asked:
            found = conn.execute(KNOWN_MERCHANTS, {"ids": asked}).fetchall()
            self._known.update(merchant for (merchant,) in found)
        return ids & self._known

    def _connection(self) -> psycopg.Connection[tuple[str]]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def unknown_merchant(merchant_id: str) -> str:
    return (
        f"merchant {merchant_id} is not in Core's merchants table: register it, then re-drive "
        "this record"
    )


class _Partition(StatefulSinkPartition[ScoreWrite, None]):
    def __init__(self, writer: ScoresWriter) -> None:
        self._writer = writer

    def write_batch(self, values: list[ScoreWrite]) -> None:
        self._writer.write(values)

    def snapshot(self) -> None:
        return None  # written before the epoch ends; nothing to resume from

    def close(self) -> None:
        self._writer.close()


class CustomersSink(FixedPartitionedSink[ScoreWrite, None]):
    """One partition, one connection: the whole batch is one statement."""

    def __init__(
        self, postgres_url: str, dead_letters: DynamicSink[SinkMessage], flow: str
    ) -> None:
        self._url = postgres_url
        self._dead_letters = dead_letters
        self._flow = flow

    def list_parts(self) -> list[str]:
        return ["customers-0"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[ScoreWrite, None]:
        def connect() -> psycopg.Connection[tuple[str]]:
            return psycopg.connect(self._url, application_name=f"loyalnest-{step_id}")

        dead_letters = self._dead_letters.build(f"{step_id}-dlq", 0, 1)
        return _Partition(ScoresWriter(connect, dead_letters, self._flow))


class ReferralsSinkError(RuntimeError):
    """PostgreSQL stayed unreachable through every retry; the flow must stop."""


@dataclass(frozen=True)
class CacheTarget:
    """Where the referrals sink refreshes the Redis referral cache (connectors/referral_cache)."""

    url: str
    prefix: str
    ttl_seconds: int

    def connect(self) -> tuple[redis.Redis, ReferralCache]:
        # One attempt per batch, as the balance cache's sink: a stalled Redis holds the flow up
        # for one timeout, and an entry it could not refresh expires within the TTL.
        client = redis.Redis.from_url(
            self.url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        return client, ReferralCache(self.prefix, self.ttl_seconds)


class _ReferralsPartition(StatelessSinkPartition[Referral]):
    """One upsert per batch (connectors/referral_records.py), retried on a lost connection;
    then the batch's rows as they stand refresh the cache (best effort: PostgreSQL is the
    truth, and an entry whose refresh failed expires)."""

    def __init__(
        self,
        url: str,
        cache: CacheTarget | None,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        self._url = url
        self._cache = None if cache is None else cache.connect()
        self._retry = retry
        self._sleep = sleep
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def write_batch(self, items: list[Referral]) -> None:
        current = self._upsert(upsert_referrals(latest_per_referral(items)))
        if current and self._cache is not None:
            client, cache = self._cache
            try:
                cache.put_many(client, current)
            except redis.RedisError as exc:
                CACHE_ERRORS.inc()
                log.warning("referral cache refresh failed for %d: %s", len(current), exc)

    def _upsert(self, params: dict[str, list[Any]]) -> list[ReferralRow]:
        return self._retry.call(
            "referrals",
            lambda: self._upsert_once(params),
            transient=(psycopg.OperationalError,),
            failed=ReferralsSinkError,
            reset=self._close,
            sleep=self._sleep,
        )

    def _upsert_once(self, params: dict[str, list[Any]]) -> list[ReferralRow]:
        conn = self._connection()
        with conn.cursor(row_factory=class_row(ReferralRow)) as cur:
            cur.execute(UPSERT_REFERRALS, params)
            cur.execute(REFERRALS_BY_IDS, {"ids": params["ids"]})
            current = cur.fetchall()
        conn.commit()
        return current

    def close(self) -> None:
        self._close()
        if self._cache is not None:
            self._cache[0].close()

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class ReferralsSink(DynamicSink[Referral]):
    """PostgreSQL `referrals`: each batch's latest change per referral, never going back; and
    the Redis cache of the rows that changed, when `cache` is given."""

    def __init__(
        self,
        postgres_url: str,
        cache: CacheTarget | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = postgres_url
        self._cache = cache
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[Referral]:
        return _ReferralsPartition(self._url, self._cache, self._retry, self._sleep)
