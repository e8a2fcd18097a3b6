"""A batched, idempotent MongoDB sink for Bytewax.

Bytewax delivers outputs at least once: after a crash it replays from the last snapshot, so a
batch may be written twice. The sink is therefore built for writes that are safe to repeat:
inserts keyed by a deterministic id (a repeat is a duplicate-key error, which is ignored) and
upserts guarded by a sequence number (an older write loses to the newer document and also ends
as a duplicate-key error). It never uses transactions: a bulk write per collection is far
cheaper, and idempotence already gives the exactly-once effect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from prometheus_client import Counter, Histogram
from pymongo import InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError, ConnectionFailure, NetworkTimeout

log = logging.getLogger(__name__)

WriteOp: TypeAlias = InsertOne[Any] | UpdateOne | ReplaceOne[Any]
MongoWrite: TypeAlias = tuple[str, WriteOp]
"""A write for the sink: (collection name, pymongo write operation)."""

MAX_BATCH = 1000
DUPLICATE_KEY = 11000
# Errors where the server may or may not have applied the batch; repeating it is safe.
TRANSIENT_ERRORS = (AutoReconnect, ConnectionFailure, NetworkTimeout)

WRITES = Counter(
    "loyalnest_mongo_sink_writes_total",
    "Write operations sent by the Mongo sink",
    ["collection", "outcome"],
)
RETRIES = Counter(
    "loyalnest_mongo_sink_retries_total",
    "Bulk writes retried after a transient error",
    ["collection"],
)


BATCH_SIZE = Histogram(
    "loyalnest_mongo_sink_batch_size",
    "Items per write_batch call",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)


class MongoSinkError(RuntimeError):
    """A write failed for a reason other than a duplicate key; the flow must stop."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: with the defaults, retries wait 1 s, 2 s and 4 s."""

    attempts: int = 4
    base_delay: float = 1.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield self.base_delay * 2**attempt


@dataclass
class WriteStats:
    applied: int = 0
    duplicates: int = 0
    batches: int = 0


class MongoWriter:
    """Groups writes by collection and bulk-writes them in chunks of at most `max_batch`."""

    def __init__(
        self,
        db: Database[Any],
        *,
        max_batch: int = MAX_BATCH,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH}")
        self._db = db
        self._max_batch = max_batch
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def write(self, items: Iterable[MongoWrite]) -> WriteStats:
        stats = WriteStats()
        for collection, ops in group_by_collection(items).items():
            for start in range(0, len(ops), self._max_batch):
                self._write_chunk(collection, ops[start : start + self._max_batch], stats)
        return stats

    def _write_chunk(self, collection: str, ops: list[WriteOp], stats: WriteStats) -> None:
        delays = self._retry.delays()
        while True:
            try:
                duplicates = self._bulk_write(collection, ops)
                break
            except TRANSIENT_ERRORS as exc:
                delay = next(delays, None)
                if delay is None:
                    raise MongoSinkError(f"{collection}: gave up after retries: {exc}") from exc
                RETRIES.labels(collection).inc()
                log.warning(
                    "transient error writing %s, retrying in %.1fs: %s", collection, delay, exc
                )
                self._sleep(delay)
        stats.batches += 1
        stats.duplicates += duplicates
        stats.applied += len(ops) - duplicates
        WRITES.labels(collection, "applied").inc(len(ops) - duplicates)
        WRITES.labels(collection, "duplicate").inc(duplicates)

    def _bulk_write(self, collection: str, ops: list[WriteOp]) -> int:
        """Write unordered (one bad document does not block the others); count duplicates."""
        try:
            self._db[collection].bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            return count_duplicates(collection, dict(exc.details))
        return 0


def count_duplicates(collection: str, details: dict[str, Any]) -> int:
    """Duplicate keys mean "already written": count them. Anything else is an error."""
    errors = details.get("writeErrors", [])
    fatal = [e for e in errors if e.get("code") != DUPLICATE_KEY]
    if fatal:
        first = fatal[0]
        raise MongoSinkError(
            f"{collection}: {len(fatal)} write(s) failed, first: code {first.get('code')} "
            f"at index {first.get('index')}: {first.get('errmsg')}"
        )
    if details.get("writeConcernErrors"):
        # The writes happened but may not be durable: treat like a dropped connection.
        raise AutoReconnect(f"write concern error: {details['writeConcernErrors'][0]}")
    return len(errors)


def group_by_collection(items: Iterable[MongoWrite]) -> dict[str, list[WriteOp]]:
    """Keep each collection's writes in arrival order; collections in order of first use."""
    grouped: dict[str, list[WriteOp]] = {}
    for collection, op in items:
        grouped.setdefault(collection, []).append(op)
    return grouped


class _MongoSinkPartition(StatelessSinkPartition[MongoWrite]):
    def __init__(self, client: MongoClient[Any], writer: MongoWriter) -> None:
        self._client = client
        self._writer = writer

    def write_batch(self, items: list[MongoWrite]) -> None:
        BATCH_SIZE.observe(len(items))
        self._writer.write(items)

    def close(self) -> None:
        self._client.close()


class MongoSink(DynamicSink[MongoWrite]):
    """Bytewax sink writing `(collection, operation)` items; one client per worker."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        max_batch: int = MAX_BATCH,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._url = url
        self._database = database
        self._max_batch = max_batch
        self._retry = retry

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[MongoWrite]:
        client: MongoClient[Any] = MongoClient(self._url, appname=f"loyalnest-{step_id}")
        writer = MongoWriter(client[self._database], max_batch=self._max_batch, retry=self._retry)
        return _MongoSinkPartition(client, writer)
