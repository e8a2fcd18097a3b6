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
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import chain
from typing import Any, TypeAlias

import bson
from bson.raw_bson import RawBSONDocument
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from prometheus_client import Counter, Histogram
from pymongo import InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError, ConnectionFailure, NetworkTimeout

from sinks.retry import RetryPolicy

log = logging.getLogger(__name__)

WriteOp: TypeAlias = InsertOne[Any] | UpdateOne | ReplaceOne[Any]
MongoWrite: TypeAlias = tuple[str, WriteOp]
"""A write: (collection name, pymongo write operation)."""


@dataclass(frozen=True, slots=True)
class Latest:
    """A write of which only the newest with the same `key` needs to reach the store: a
    whole-document write guarded by a version (a balance), where a newer one carries
    everything an older one would have written. Of such writes waiting together in the sink,
    only the last is sent (its document is created if missing, so it may stand in for an
    insert)."""

    key: str  # the document written (its `_id`, say), within the write's collection
    write: MongoWrite


SinkWrite: TypeAlias = MongoWrite | Latest
RoutedWrite: TypeAlias = tuple[str, SinkWrite]
"""What MongoSink takes: (routing key, write). One key's writes are written in order."""

MAX_BATCH = 1000
DUPLICATE_KEY = 11000
# Errors where the server may or may not have applied the batch; repeating it is safe.
TRANSIENT_ERRORS = (AutoReconnect, ConnectionFailure, NetworkTimeout)

WRITES = Counter(
    "loyalnest_mongo_sink_writes_total",
    "Write operations sent by the Mongo sink",
    ["collection", "outcome"],
)

# Writes per command (the writes counter over this one) is how well the sink batches: each
# command has a fixed cost in the store besides its writes.
COMMANDS = Counter(
    "loyalnest_mongo_sink_commands_total",
    "Bulk write commands sent by the Mongo sink (retries included)",
    ["collection"],
)

SUPERSEDED = Counter(
    "loyalnest_mongo_sink_superseded_total",
    "Writes not sent because a newer write of the same document was waiting with them",
)
BATCH_SIZE = Histogram(
    "loyalnest_mongo_sink_batch_size",
    "Items per write_batch call",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
BUSY = Counter(
    "loyalnest_mongo_sink_busy_seconds_total",
    "Time the sink spent writing to the store: near 1 s/s, the store (or the way to it) is "
    "what the flow waits for; well below, the flow itself is the slower side",
)


def encoded(document: dict[str, Any]) -> RawBSONDocument:
    """A document encoded to BSON now, by the step that builds the write.

    A value BSON cannot hold (an integer beyond 64 bits, text that is not Unicode) then fails
    in that step, where it makes one record a dead letter, instead of in the sink, where it
    would stop the flow on every restart. pymongo sends the encoded bytes as they are.
    """
    return RawBSONDocument(bson.encode(document))


class MongoSinkError(RuntimeError):
    """A write failed for a reason other than a duplicate key; the flow must stop."""


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
        duplicates = self._retry.call(
            f"mongo {collection}",
            lambda: self._bulk_write(collection, ops),
            transient=TRANSIENT_ERRORS,
            failed=lambda why: MongoSinkError(f"{collection}: {why}"),
            sleep=self._sleep,
        )
        stats.batches += 1
        stats.duplicates += duplicates
        stats.applied += len(ops) - duplicates
        WRITES.labels(collection, "applied").inc(len(ops) - duplicates)
        WRITES.labels(collection, "duplicate").inc(duplicates)

    def _bulk_write(self, collection: str, ops: list[WriteOp]) -> int:
        """Write unordered (one bad document does not block the others); count the writes
        that changed nothing: duplicate keys, and guarded updates that left a newer document
        as it was."""
        COMMANDS.labels(collection).inc()
        try:
            details = self._db[collection].bulk_write(ops, ordered=False).bulk_api_result
        except BulkWriteError as exc:
            details = dict(exc.details)
            return count_duplicates(collection, details) + left_as_they_were(details)
        return left_as_they_were(details)


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


def left_as_they_were(details: dict[str, Any]) -> int:
    """Updates that found their document and did not change it (a guard kept a newer one)."""
    return int(details.get("nMatched", 0)) - int(details.get("nModified", 0))


def group_by_collection(items: Iterable[MongoWrite]) -> dict[str, list[WriteOp]]:
    """Keep each collection's writes in arrival order; collections in order of first use."""
    grouped: dict[str, list[WriteOp]] = {}
    for collection, op in items:
        grouped.setdefault(collection, []).append(op)
    return grouped


def coalesced(writes: Iterable[SinkWrite]) -> list[MongoWrite]:
    """The writes in their order, less each `Latest` write that a later one with its key
    supersedes."""
    sent: list[MongoWrite | None] = []
    latest: dict[tuple[str, str], int] = {}
    for write in writes:
        if isinstance(write, Latest):
            document = (write.write[0], write.key)
            earlier = latest.get(document)
            if earlier is not None:
                sent[earlier] = None
            latest[document] = len(sent)
            sent.append(write.write)
        else:
            sent.append(write)
    kept = [write for write in sent if write is not None]
    if len(kept) < len(sent):
        SUPERSEDED.inc(len(sent) - len(kept))
    return kept


class _Control(Enum):
    FLUSH = "flush"  # write everything handed over, held writes too
    CLOSE = "close"  # the same, then stop


class _Held:
    """`Latest` writes kept back for up to `hold` seconds, each document's newest only.

    A customer's commands often come in bursts a few seconds long (an order's earn, then the
    tier entry bonus the tiers flow sends back for it): held, the burst costs the store one
    balance write instead of one per command. A document's held write goes out `hold` seconds
    after the first write it stands for arrived, so no document lags the flow by more."""

    def __init__(self, hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._hold = hold
        self._clock = clock
        self._writes: dict[tuple[str, str], tuple[float, Latest]] = {}  # oldest first

    def add_from(self, writes: Iterable[SinkWrite]) -> list[SinkWrite]:
        """Hold the `Latest` writes among `writes`; the others, to be written now."""
        if self._hold <= 0:
            return list(writes)
        now = self._clock()
        others: list[SinkWrite] = []
        for write in writes:
            if not isinstance(write, Latest):
                others.append(write)
                continue
            document = (write.write[0], write.key)
            earlier = self._writes.get(document)
            if earlier is not None:
                SUPERSEDED.inc()
            self._writes[document] = (now if earlier is None else earlier[0], write)
        return others

    def due(self, everything: bool) -> list[Latest]:
        """The held writes whose time has come (all of them if `everything`), oldest first."""
        deadline = self._clock() - self._hold
        due = []
        for since, write in self._writes.values():
            if not everything and since > deadline:
                break  # held in arrival order: the rest came later still
            due.append(write)
        return due

    def written(self, writes: Iterable[Latest]) -> None:
        for write in writes:
            del self._writes[(write.write[0], write.key)]

    def writes(self) -> list[SinkWrite]:
        return [write for _, write in self._writes.values()]

    def wait(self) -> float | None:
        """How long until the oldest held write is due (None: nothing held)."""
        if not self._writes:
            return None
        since, _ = next(iter(self._writes.values()))
        return max(0.0, since + self._hold - self._clock())


class _PipelinedPartition(StatefulSinkPartition[SinkWrite, list[SinkWrite]]):
    """Writes each batch on a background thread while the worker computes the next ones.

    The worker and the store then work at the same time instead of taking turns, across epochs
    too: `snapshot()` does not wait for the store. Its state is the writes handed over but not
    yet acknowledged, which Bytewax keeps with the epoch's snapshot; a flow resumed from that
    epoch writes them again first (`unwritten`). Every write is idempotent, so one that did
    reach the store before a crash changes nothing the second time, and none is lost. (Waiting
    for the store at every epoch's end left the worker idle while the store drained, then the
    store idle while the worker refilled it: about 0.6 of the store's ceiling.)

    At most `depth` batches wait; beyond that `write_batch` blocks (back-pressure), which also
    bounds the state. When the store is the slower side, batches wait; the thread then writes
    all that wait as one, and a `Latest` write superseded within them is never sent. That costs
    no latency (it only merges what is already waiting) and saves the store the most when it is
    busiest.
    """

    def __init__(
        self,
        client: MongoClient[Any],
        writer: MongoWriter,
        depth: int,
        unwritten: Sequence[SinkWrite] = (),
        hold: float = 0.0,
    ) -> None:
        self._client = client
        self._writer = writer
        self._pending: queue.Queue[Sequence[SinkWrite] | _Control] = queue.Queue(maxsize=depth)
        # Batches handed over and not yet acknowledged by the store, oldest first.
        self._unacknowledged: deque[Sequence[SinkWrite]] = deque()
        self._held = _Held(hold)
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="mongo-sink", daemon=True)
        self._thread.start()
        if unwritten:
            self.write_batch(unwritten)

    def write_batch(self, values: Sequence[SinkWrite]) -> None:
        self._raise_failure()
        BATCH_SIZE.observe(len(values))
        with self._lock:
            self._unacknowledged.append(values)
        self._pending.put(values)

    def snapshot(self) -> list[SinkWrite]:
        self._raise_failure()
        with self._lock:
            # Held writes are older than any batch still waiting: they go first on resume.
            return [*self._held.writes(), *chain.from_iterable(self._unacknowledged)]

    def flush(self) -> None:
        """Write every batch handed over, held writes included (or raise the failure)."""
        self._pending.put(_Control.FLUSH)
        self._pending.join()
        self._raise_failure()

    def close(self) -> None:
        self._pending.put(_Control.CLOSE)  # after all else is written, held writes too
        self._thread.join()
        self._client.close()
        self._raise_failure()

    def _drain(self) -> None:
        stopping = False
        while not stopping:
            taken = self._waiting(self._timeout())
            batches = [batch for batch in taken if not isinstance(batch, _Control)]
            stopping = _Control.CLOSE in taken
            try:
                if self._failure is None:  # after a failure, nothing more is written
                    self._write(batches, release_all=len(batches) < len(taken))
            except BaseException as exc:  # the worker thread raises it on its next call
                self._failure = exc
            finally:
                for _ in taken:
                    self._pending.task_done()

    def _timeout(self) -> float | None:
        """How long to wait for the next batch: until the oldest held write is due. After a
        failure nothing is written, so held writes never leave: wait for the next batch or
        control only, or the loop would spin on a deadline long past."""
        return None if self._failure is not None else self._held.wait()

    def _write(self, batches: list[Sequence[SinkWrite]], release_all: bool) -> None:
        with self._lock:  # held before written: a snapshot may hold a write twice, never none
            unheld = self._held.add_from(chain.from_iterable(batches))
        released = self._held.due(release_all)
        started = time.perf_counter()
        self._writer.write(coalesced([*released, *unheld]))
        BUSY.inc(time.perf_counter() - started)
        with self._lock:
            self._held.written(released)
            for _ in batches:  # the oldest ones: batches are taken in the order handed over
                self._unacknowledged.popleft()

    def _waiting(self, timeout: float | None) -> list[Sequence[SinkWrite] | _Control]:
        """The next batch or control (waiting for it until `timeout`; nothing after that),
        and every other one already waiting."""
        try:
            taken = [self._pending.get(timeout=timeout)]
        except queue.Empty:
            return []
        while taken[-1] is not _Control.CLOSE:
            try:
                taken.append(self._pending.get_nowait())
            except queue.Empty:
                break
        return taken

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise MongoSinkError(f"a background write failed: {self._failure}") from self._failure


class MongoSink(FixedPartitionedSink[SinkWrite, list[SinkWrite]]):
    """Bytewax sink of `(routing key, (collection, operation) | Latest)` items.

    One partition by default: a single connection that always has a batch to write is the
    fastest way into one store. A key's writes stay in order within its partition. Its resume
    state is the writes not yet acknowledged when the epoch ended; its writes are idempotent,
    which is what makes writing them again, and replays, safe.
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        partitions: int = 1,
        depth: int = 2,
        max_batch: int = MAX_BATCH,
        retry: RetryPolicy | None = None,
        hold: float = 0.0,
    ) -> None:
        self._url = url
        self._database = database
        self._partitions = partitions
        self._depth = depth
        self._max_batch = max_batch
        self._retry = retry
        self._hold = hold

    def list_parts(self) -> list[str]:
        return [f"mongo-{n}" for n in range(self._partitions)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: list[SinkWrite] | None
    ) -> StatefulSinkPartition[SinkWrite, list[SinkWrite]]:
        client: MongoClient[Any] = MongoClient(self._url, appname=f"loyalnest-{step_id}")
        writer = MongoWriter(client[self._database], max_batch=self._max_batch, retry=self._retry)
        # A snapshot taken before the sink kept its unwritten writes holds None.
        return _PipelinedPartition(client, writer, self._depth, resume_state or (), hold=self._hold)
