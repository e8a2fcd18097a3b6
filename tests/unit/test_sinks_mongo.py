"""MongoWriter against a hand-written fake database: batching, grouping, retries, duplicates."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY
from pymongo import InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    NetworkTimeout,
    OperationFailure,
)

from sinks.mongo import (
    MAX_BATCH,
    Latest,
    MongoSink,
    MongoSinkError,
    MongoWrite,
    MongoWriter,
    SinkWrite,
    WriteOp,
    _Held,
    _PipelinedPartition,
    coalesced,
    count_duplicates,
    group_by_collection,
    left_as_they_were,
)
from sinks.retry import RetryPolicy


@dataclass(frozen=True)
class BulkCall:
    collection: str
    ops: list[WriteOp]
    ordered: bool


@dataclass
class FakeCollection:
    name: str
    log: list[BulkCall]
    outcomes: list[Exception | None] = field(default_factory=list)
    calls: list[BulkCall] = field(default_factory=list)

    def bulk_write(self, requests: list[WriteOp], ordered: bool = True) -> FakeResult:
        """Record the call; raise the next scripted exception (None, or none left: succeed)."""
        call = BulkCall(self.name, list(requests), ordered)
        self.calls.append(call)
        self.log.append(call)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        return FakeResult({"nMatched": 0, "nModified": 0})


@dataclass
class FakeResult:
    bulk_api_result: dict[str, Any]


class FakeDatabase:
    """`db[name].bulk_write(ops, ordered=...)` is all MongoWriter uses of a Database."""

    def __init__(self, outcomes: dict[str, Iterable[Exception | None]] | None = None) -> None:
        self.log: list[BulkCall] = []
        self.collections: dict[str, FakeCollection] = {}
        self._outcomes = {name: list(seq) for name, seq in (outcomes or {}).items()}

    def __getitem__(self, name: str) -> FakeCollection:
        if name not in self.collections:
            self.collections[name] = FakeCollection(name, self.log, self._outcomes.pop(name, []))
        return self.collections[name]


def make_writer(
    db: FakeDatabase,
    sleeps: list[float],
    *,
    max_batch: int = MAX_BATCH,
    retry: RetryPolicy | None = None,
) -> MongoWriter:
    return MongoWriter(
        cast("Database[Any]", db), max_batch=max_batch, retry=retry, sleep=sleeps.append
    )


def inserts(collection: str, count: int, start: int = 0) -> list[MongoWrite]:
    return [(collection, InsertOne({"_id": f"{collection}-{i}"})) for i in range(start, count)]


def bulk_error(
    write_errors: list[dict[str, Any]], write_concern_errors: list[dict[str, Any]] | None = None
) -> BulkWriteError:
    return BulkWriteError(
        {
            "writeErrors": write_errors,
            "writeConcernErrors": write_concern_errors or [],
            "nInserted": 0,
            "nUpserted": 0,
            "nMatched": 0,
            "nModified": 0,
            "nRemoved": 0,
            "upserted": [],
        }
    )


def duplicate_error(index: int) -> dict[str, Any]:
    return {"index": index, "code": 11000, "errmsg": "E11000 duplicate key error", "op": {}}


def validation_error(index: int) -> dict[str, Any]:
    return {"index": index, "code": 121, "errmsg": "Document failed validation", "op": {}}


WRITE_CONCERN_ERROR: dict[str, Any] = {"code": 64, "errmsg": "waiting for replication timed out"}


# --- batching and grouping ----------------------------------------------------------------------


def test_2500_writes_for_one_collection_go_out_as_unordered_chunks_of_1000_1000_500() -> None:
    db, sleeps = FakeDatabase(), list[float]()
    items = inserts("orders", 2500)

    stats = make_writer(db, sleeps).write(items)

    calls = db.collections["orders"].calls
    assert [len(c.ops) for c in calls] == [1000, 1000, 500]
    assert [c.ordered for c in calls] == [False, False, False]
    assert [o for c in calls for o in c.ops] == [o for _, o in items]
    assert (stats.batches, stats.applied, stats.duplicates) == (3, 2500, 0)
    assert sleeps == []


def test_custom_max_batch_splits_into_chunks_of_that_size() -> None:
    db = FakeDatabase()

    make_writer(db, [], max_batch=2).write(inserts("orders", 5))

    assert [len(c.ops) for c in db.collections["orders"].calls] == [2, 2, 1]


def test_writes_for_two_collections_are_grouped_per_collection_keeping_arrival_order() -> None:
    db = FakeDatabase()
    a = [InsertOne({"_id": f"a{i}"}) for i in range(3)]
    b: list[WriteOp] = [
        UpdateOne({"_id": "b0"}, {"$set": {"x": 1}}, upsert=True),
        ReplaceOne({"_id": "b1"}, {"x": 2}, upsert=True),
    ]
    items: list[MongoWrite] = [("a", a[0]), ("b", b[0]), ("a", a[1]), ("b", b[1]), ("a", a[2])]

    stats = make_writer(db, []).write(items)

    assert [(c.collection, c.ops, c.ordered) for c in db.log] == [
        ("a", a, False),
        ("b", b, False),
    ]
    assert (stats.batches, stats.applied) == (2, 5)


def test_group_by_collection_orders_collections_by_first_use() -> None:
    ops = [InsertOne({"_id": i}) for i in range(4)]

    grouped = group_by_collection([("z", ops[0]), ("a", ops[1]), ("z", ops[2]), ("m", ops[3])])

    assert list(grouped) == ["z", "a", "m"]
    assert grouped == {"z": [ops[0], ops[2]], "a": [ops[1]], "m": [ops[3]]}


def balance(doc_id: str, version: int) -> Latest:
    return Latest(doc_id, ("balances", UpdateOne({"_id": doc_id}, {"$set": {"v": version}})))


def test_coalesced_keeps_only_the_newest_latest_write_of_each_key_in_place() -> None:
    entry_1, entry_2 = ("ledger", InsertOne({"_id": 1})), ("ledger", InsertOne({"_id": 2}))
    a1, b1, a2, a3 = balance("a", 1), balance("b", 1), balance("a", 2), balance("a", 3)

    kept = coalesced([entry_1, a1, b1, entry_2, a2, a3])

    assert kept == [entry_1, b1.write, entry_2, a3.write]


def test_coalesced_keys_latest_writes_by_collection_too() -> None:
    a_balance = balance("a", 1)
    a_elsewhere = Latest("a", ("elsewhere", UpdateOne({"_id": "a"}, {"$set": {"v": 1}})))

    assert coalesced([a_balance, a_elsewhere]) == [a_balance.write, a_elsewhere.write]


def test_coalesced_never_drops_a_plain_write_even_when_it_repeats() -> None:
    entry = ("ledger", InsertOne({"_id": 1}))

    assert coalesced([entry, entry]) == [entry, entry]


def test_writing_nothing_sends_no_bulk_write() -> None:
    db = FakeDatabase()

    stats = make_writer(db, []).write([])

    assert db.log == []
    assert (stats.batches, stats.applied, stats.duplicates) == (0, 0, 0)


@pytest.mark.parametrize("max_batch", [0, -1, MAX_BATCH + 1])
def test_max_batch_outside_1_to_1000_raises_value_error(max_batch: int) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        make_writer(FakeDatabase(), [], max_batch=max_batch)


@pytest.mark.parametrize("max_batch", [1, MAX_BATCH])
def test_max_batch_at_the_bounds_is_accepted(max_batch: int) -> None:
    db = FakeDatabase()

    make_writer(db, [], max_batch=max_batch).write(inserts("c", 2))

    assert sum(len(c.ops) for c in db.log) == 2


# --- retries -------------------------------------------------------------------------------------


def test_default_retry_policy_waits_1_2_and_4_seconds() -> None:
    assert list(RetryPolicy().delays()) == [1.0, 2.0, 4.0]


def test_auto_reconnect_twice_then_success_is_retried_and_counted_once() -> None:
    db = FakeDatabase({"orders": [AutoReconnect("down"), AutoReconnect("still down")]})
    sleeps: list[float] = []
    items = inserts("orders", 3)

    stats = make_writer(db, sleeps).write(items)

    calls = db.collections["orders"].calls
    assert len(calls) == 3
    assert all(c.ops == [o for _, o in items] for c in calls)
    assert sleeps == [1.0, 2.0]
    assert (stats.batches, stats.applied, stats.duplicates) == (1, 3, 0)


@pytest.mark.parametrize(
    "error",
    [AutoReconnect("reconnect"), ConnectionFailure("refused"), NetworkTimeout("timed out")],
    ids=["AutoReconnect", "ConnectionFailure", "NetworkTimeout"],
)
def test_transient_error_on_every_attempt_raises_mongo_sink_error_after_all_attempts(
    error: Exception,
) -> None:
    policy = RetryPolicy()
    db = FakeDatabase({"orders": [error] * 10})
    sleeps: list[float] = []

    with pytest.raises(MongoSinkError, match="orders: gave up after retries") as info:
        make_writer(db, sleeps, retry=policy).write(inserts("orders", 1))

    assert len(db.collections["orders"].calls) == policy.attempts
    assert sleeps == [1.0, 2.0, 4.0]
    assert info.value.__cause__ is error


def test_custom_retry_policy_controls_attempts_and_delays() -> None:
    db = FakeDatabase({"orders": [AutoReconnect("x")] * 10})
    sleeps: list[float] = []

    with pytest.raises(MongoSinkError):
        make_writer(db, sleeps, retry=RetryPolicy(attempts=3, base_delay=0.5)).write(
            inserts("orders", 1)
        )

    assert len(db.collections["orders"].calls) == 3
    assert sleeps == [0.5, 1.0]


def test_non_transient_error_is_not_retried() -> None:
    db = FakeDatabase({"orders": [OperationFailure("not authorized", code=13)]})
    sleeps: list[float] = []

    with pytest.raises(OperationFailure):
        make_writer(db, sleeps).write(inserts("orders", 1))

    assert len(db.collections["orders"].calls) == 1
    assert sleeps == []


def test_each_chunk_gets_a_fresh_retry_budget() -> None:
    # The first chunk uses up all three retries; the second chunk may still retry.
    outcomes = [
        AutoReconnect("1"),
        AutoReconnect("2"),
        AutoReconnect("3"),
        None,
        AutoReconnect("4"),
    ]
    db = FakeDatabase({"orders": outcomes})
    sleeps: list[float] = []

    stats = make_writer(db, sleeps, max_batch=2).write(inserts("orders", 4))

    assert len(db.collections["orders"].calls) == 6
    assert sleeps == [1.0, 2.0, 4.0, 1.0]
    assert (stats.batches, stats.applied) == (2, 4)


# --- duplicates and write errors -----------------------------------------------------------------


def test_bulk_write_error_with_only_duplicate_keys_is_counted_not_raised() -> None:
    db = FakeDatabase({"orders": [bulk_error([duplicate_error(0), duplicate_error(2)])]})
    sleeps: list[float] = []

    stats = make_writer(db, sleeps).write(inserts("orders", 5))

    assert stats.duplicates == 2
    assert stats.applied == 5 - 2
    assert stats.batches == 1
    assert len(db.collections["orders"].calls) == 1
    assert sleeps == []


def test_duplicate_and_validation_error_raise_mongo_sink_error_naming_code_121() -> None:
    db = FakeDatabase({"orders": [bulk_error([duplicate_error(0), validation_error(1)])]})
    sleeps: list[float] = []

    with pytest.raises(MongoSinkError, match=r"code 121 at index 1") as info:
        make_writer(db, sleeps).write(inserts("orders", 2))

    assert "1 write(s) failed" in str(info.value)
    assert len(db.collections["orders"].calls) == 1
    assert sleeps == []


def test_write_concern_error_without_write_errors_is_retried_like_a_transient_error() -> None:
    db = FakeDatabase({"orders": [bulk_error([], [WRITE_CONCERN_ERROR])]})
    sleeps: list[float] = []

    stats = make_writer(db, sleeps).write(inserts("orders", 2))

    assert len(db.collections["orders"].calls) == 2
    assert sleeps == [1.0]
    assert (stats.batches, stats.applied, stats.duplicates) == (1, 2, 0)


def test_write_concern_error_on_every_attempt_raises_mongo_sink_error() -> None:
    db = FakeDatabase({"orders": [bulk_error([], [WRITE_CONCERN_ERROR]) for _ in range(4)]})
    sleeps: list[float] = []

    with pytest.raises(MongoSinkError, match="write concern error"):
        make_writer(db, sleeps).write(inserts("orders", 1))

    assert len(db.collections["orders"].calls) == RetryPolicy().attempts
    assert sleeps == [1.0, 2.0, 4.0]


def test_count_duplicates_without_errors_is_zero() -> None:
    assert count_duplicates("c", {"writeErrors": [], "writeConcernErrors": []}) == 0
    assert count_duplicates("c", {}) == 0


def test_count_duplicates_reports_how_many_writes_failed() -> None:
    details = {"writeErrors": [validation_error(0), duplicate_error(1), validation_error(3)]}

    expected = r"^c: 2 write\(s\) failed, first: code 121 at index 0"
    with pytest.raises(MongoSinkError, match=expected):
        count_duplicates("c", details)


def test_write_counters_record_applied_and_duplicate_writes() -> None:
    collection = "metrics_probe_collection"

    def sample(outcome: str) -> float:
        value = REGISTRY.get_sample_value(
            "loyalnest_mongo_sink_writes_total", {"collection": collection, "outcome": outcome}
        )
        return value or 0.0

    before = sample("applied"), sample("duplicate")
    db = FakeDatabase({collection: [bulk_error([duplicate_error(1)])]})

    make_writer(db, []).write(inserts(collection, 4))

    assert (sample("applied") - before[0], sample("duplicate") - before[1]) == (3.0, 1.0)


# --- the pipelined sink partition ----------------------------------------------------------------


class GatedCollection(FakeCollection):
    """A collection whose bulk writes wait until the test opens the gate."""

    gate: threading.Event

    def bulk_write(self, requests: list[WriteOp], ordered: bool = True) -> FakeResult:
        assert self.gate.wait(10), "the test never opened the gate"
        return super().bulk_write(requests, ordered)


class GatedDatabase(FakeDatabase):
    def __init__(self, outcomes: dict[str, Iterable[Exception | None]] | None = None) -> None:
        super().__init__(outcomes)
        self.gate = threading.Event()

    def __getitem__(self, name: str) -> FakeCollection:
        if name not in self.collections:
            collection = GatedCollection(name, self.log, self._outcomes.pop(name, []))
            collection.gate = self.gate
            self.collections[name] = collection
        return self.collections[name]


class FakeClient:
    closed = False

    def close(self) -> None:
        self.closed = True


def pipelined(
    db: FakeDatabase, depth: int = 2, hold: float = 0.0
) -> tuple[_PipelinedPartition, FakeClient]:
    client = FakeClient()
    part = _PipelinedPartition(
        cast("MongoClient[Any]", client), make_writer(db, []), depth, hold=hold
    )
    return part, client


def in_thread(call: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def test_write_batch_returns_before_the_store_has_written() -> None:
    db = GatedDatabase()
    part, _ = pipelined(db)

    part.write_batch(inserts("a", 3))  # would block forever if it wrote on the caller's thread

    assert db.log == []
    db.gate.set()
    part.flush()
    assert [len(call.ops) for call in db.log] == [3]


def test_snapshot_holds_the_writes_not_yet_acknowledged_without_waiting_for_the_store() -> None:
    db = GatedDatabase()
    part, _ = pipelined(db)
    first, second = inserts("a", 2), inserts("b", 2)
    part.write_batch(first)
    part.write_batch(second)

    assert part.snapshot() == [*first, *second]  # returned while the store holds them back

    db.gate.set()
    part.flush()
    assert part.snapshot() == []
    assert [call.collection for call in db.log] == ["a", "b"]  # written in arrival order


def test_a_partition_resumed_from_a_snapshot_writes_what_it_held_before_anything_new() -> None:
    held = GatedDatabase()  # the store never acknowledges: the process dies first
    part, _ = pipelined(held)
    part.write_batch(inserts("a", 3))
    state = pickle.loads(pickle.dumps(part.snapshot()))  # noqa: S301 - as Bytewax keeps it

    db = FakeDatabase()
    resumed = _PipelinedPartition(
        cast("MongoClient[Any]", FakeClient()), make_writer(db, []), 2, state
    )
    resumed.write_batch(inserts("b", 1))
    resumed.flush()

    assert [(call.collection, len(call.ops)) for call in db.log] == [("a", 3), ("b", 1)]
    assert resumed.snapshot() == []
    held.gate.set()  # let the first partition's thread end
    part.close()


def test_write_batch_blocks_when_depth_batches_are_waiting() -> None:
    db = GatedDatabase()
    part, _ = pipelined(db, depth=1)
    part.write_batch(inserts("a", 1))  # taken by the writer thread, which waits at the gate
    wait_until(lambda: part._pending.unfinished_tasks == 1 and part._pending.empty())
    part.write_batch(inserts("a", 2, start=1))  # fills the queue

    third = in_thread(lambda: part.write_batch(inserts("a", 3, start=2)))
    third.join(0.2)
    assert third.is_alive(), "a third batch was accepted beyond the depth"

    db.gate.set()
    third.join(10)
    part.flush()
    assert sum(len(call.ops) for call in db.log) == 3  # the later two may go as one


def test_batches_waiting_together_are_written_as_one_without_superseded_writes() -> None:
    db = GatedDatabase()
    part, _ = pipelined(db, depth=4)
    part.write_batch([balance("a", 1).write])  # taken by the writer thread, held at the gate
    wait_until(lambda: part._pending.unfinished_tasks == 1 and part._pending.empty())
    part.write_batch([balance("a", 2), balance("b", 1)])
    part.write_batch([("ledger", InsertOne({"_id": 1})), balance("a", 3)])

    db.gate.set()
    part.flush()

    calls = [(call.collection, len(call.ops)) for call in db.log]
    assert calls == [("balances", 1), ("balances", 2), ("ledger", 1)]
    updates = [op for op in db.log[1].ops if isinstance(op, UpdateOne)]
    assert [(op._filter, op._doc) for op in updates] == [
        ({"_id": "b"}, {"$set": {"v": 1}}),
        ({"_id": "a"}, {"$set": {"v": 3}}),
    ]


def test_a_failed_write_is_raised_by_the_next_call_and_nothing_later_is_written() -> None:
    db = FakeDatabase({"a": [OperationFailure("boom", code=2)]})
    part, _ = pipelined(db)
    part.write_batch(inserts("a", 1))
    wait_until(lambda: part._failure is not None)

    with pytest.raises(MongoSinkError, match="a background write failed: boom"):
        part.write_batch(inserts("b", 1))
    with pytest.raises(MongoSinkError, match="boom"):
        part.snapshot()
    assert [call.collection for call in db.log] == ["a"]


def test_a_failure_after_the_last_batch_is_raised_by_flush_and_snapshot() -> None:
    db = FakeDatabase({"a": [OperationFailure("boom", code=2)]})
    part, _ = pipelined(db)
    part.write_batch(inserts("a", 1))

    with pytest.raises(MongoSinkError, match="boom"):
        part.flush()
    with pytest.raises(MongoSinkError, match="boom"):
        part.snapshot()


def test_close_writes_what_is_pending_then_closes_the_client() -> None:
    db = FakeDatabase()
    part, client = pipelined(db)
    part.write_batch(inserts("a", 5))

    part.close()

    assert [len(call.ops) for call in db.log] == [5]
    assert client.closed
    assert not part._thread.is_alive()


def test_sink_lists_its_partitions_and_a_new_partition_holds_nothing_unwritten() -> None:
    sink = MongoSink("mongodb://127.0.0.1:1", "db", partitions=3)

    assert sink.list_parts() == ["mongo-0", "mongo-1", "mongo-2"]
    part = sink.build_part("out", "mongo-0", None)  # also what a snapshot of older code holds
    try:
        assert part.snapshot() == []
    finally:
        part.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_updates_that_found_their_document_and_changed_nothing_count_as_duplicates() -> None:
    assert left_as_they_were({"nMatched": 5, "nModified": 2, "nInserted": 7}) == 3
    assert left_as_they_were({}) == 0


def test_a_batch_with_duplicate_keys_and_unchanged_updates_counts_both() -> None:
    details = dict(bulk_error([duplicate_error(0)]).details)
    details.update({"nMatched": 2, "nModified": 1, "nInserted": 1})
    db = FakeDatabase({"orders": [BulkWriteError(details)]})

    stats = make_writer(db, []).write(inserts("orders", 4))

    assert (stats.applied, stats.duplicates) == (2, 2)


# --- held balance writes -------------------------------------------------------------------------


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def test_held_writes_go_out_hold_seconds_after_the_first_they_stand_for_newest_only() -> None:
    clock = Clock()
    held = _Held(2.0, clock)
    ledger = ("ledger", InsertOne({"_id": 1}))

    assert held.add_from([balance("a", 1), ledger]) == [ledger]  # plain writes pass
    clock.now = 1.5
    assert held.add_from([balance("a", 2), balance("b", 1)]) == []
    assert held.due(everything=False) == []
    assert held.wait() == 0.5  # a's first write came at 0

    clock.now = 2.0
    due = held.due(everything=False)
    assert due == [balance("a", 2)]  # a's newest, on a's first write's time; b not yet
    held.written(due)
    assert held.writes() == [balance("b", 1)]
    assert held.wait() == 1.5
    assert held.due(everything=True) == [balance("b", 1)]


def test_nothing_is_held_without_a_hold() -> None:
    held = _Held(0.0)
    writes: list[SinkWrite] = [balance("a", 1), ("ledger", InsertOne({"_id": 1})), balance("a", 2)]

    assert held.add_from(writes) == writes
    assert held.writes() == []
    assert held.wait() is None


def test_a_held_write_waits_for_its_time_and_is_in_the_snapshot_meanwhile() -> None:
    db = FakeDatabase()
    part, _ = pipelined(db, hold=3600)
    part.write_batch([("ledger", InsertOne({"_id": 1})), balance("a", 1)])
    part.write_batch([balance("a", 2)])

    wait_until(lambda: part._pending.unfinished_tasks == 0)
    assert [call.collection for call in db.log] == ["ledger"]  # the balance is held
    assert part.snapshot() == [balance("a", 2)]

    part.flush()  # writes what is held, too
    assert [(call.collection, len(call.ops)) for call in db.log] == [
        ("ledger", 1),
        ("balances", 1),
    ]
    assert db.log[1].ops[0]._doc == {"$set": {"v": 2}}
    assert part.snapshot() == []
    part.close()


def test_a_held_write_goes_out_by_itself_when_its_time_comes() -> None:
    db = FakeDatabase()
    part, _ = pipelined(db, hold=0.05)
    part.write_batch([balance("a", 1)])

    wait_until(lambda: len(db.log) == 1)  # no other batch, no flush: the hold ran out
    assert part.snapshot() == []
    part.close()


def test_close_writes_the_held_writes() -> None:
    db = FakeDatabase()
    part, _ = pipelined(db, hold=3600)
    part.write_batch([balance("a", 1), balance("b", 1)])

    part.close()

    assert [(call.collection, len(call.ops)) for call in db.log] == [("balances", 2)]


def test_after_a_failure_the_writer_waits_for_the_next_batch_not_for_held_writes() -> None:
    db = FakeDatabase({"ledger": [OperationFailure("boom", code=2)]})
    part, _ = pipelined(db, hold=3600)
    part.write_batch([balance("a", 1)])
    wait_until(lambda: part._pending.unfinished_tasks == 0)
    assert part._timeout() is not None  # a held write: wait until it is due

    part.write_batch([("ledger", InsertOne({"_id": 1}))])
    wait_until(lambda: part._failure is not None)

    assert part._held.writes() == [balance("a", 1)]  # never to be written now
    assert part._timeout() is None  # so no deadline to wake up for, again and again
    with pytest.raises(MongoSinkError, match="boom"):
        part.close()


def test_the_commands_counter_counts_each_bulk_write_sent() -> None:
    collection = "commands_probe_collection"

    def commands() -> float:
        value = REGISTRY.get_sample_value(
            "loyalnest_mongo_sink_commands_total", {"collection": collection}
        )
        return value or 0.0

    before = commands()

    make_writer(FakeDatabase(), [], max_batch=2).write(inserts(collection, 5))

    assert commands() - before == 3.0  # chunks of 2, 2 and 1
