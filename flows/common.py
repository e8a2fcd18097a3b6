"""Small pieces every flow uses: rejected messages, guarded steps, typed splits, record times.

A flow must never stop on a record: whatever a step cannot do with one record (invalid data, or
a bug meeting a value nobody foresaw) makes that record a dead letter with the reason, and the
stream goes on. Only the sinks talk to servers, so only their failures (broker or store
unreachable) stop a flow, to be restarted and resumed from its last snapshot.
"""

from __future__ import annotations

import gc
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError
from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream, StatefulBatchLogic
from bytewax.outputs import Sink
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from connectors.dead_letters import DEFECT_PREFIX, KAFKA_ERROR_PREFIX, dead_letter
from connectors.kafka import SinkMessage, SourceItem, SourceMessage, correlation_of
from loyalnest.logs import correlated
from loyalty.errors import InvalidEventError

log = logging.getLogger("loyalnest.flows")

T = TypeVar("T")
S = TypeVar("S")
I = TypeVar("I")  # noqa: E741 - the conventional name of an input type
O = TypeVar("O")  # noqa: E741


@dataclass(frozen=True)
class Rejected:
    """A message the flow cannot use, and why; it goes to the dead-letter topic."""

    message: SourceMessage
    reason: str
    step: str


def to_dead_letter(rejected: Rejected, flow: str) -> SinkMessage:
    return dead_letter(rejected.message, rejected.reason, flow, rejected.step)


def failure_reason(exc: Exception) -> str:
    """An invalid event says why; anything else is a defect, named as such."""
    if isinstance(exc, InvalidEventError):
        return str(exc)
    return f"{DEFECT_PREFIX}{type(exc).__name__}: {exc}"


def _report(step: str, exc: Exception) -> None:
    if not isinstance(exc, InvalidEventError):
        log.exception("%s: unexpected failure on one record (dead-lettered)", step, exc_info=exc)


def guarded_decode(
    step: str, decode: Callable[[SourceMessage], T]
) -> Callable[[SourceItem], T | Rejected]:
    """A map step over source records: a consumer error or any failure to decode a record
    makes it a Rejected for that record. Lines logged while decoding carry the record's
    correlation id."""

    def run(item: SourceItem) -> T | Rejected:
        if isinstance(item, KafkaError):
            return Rejected(item.msg, f"{KAFKA_ERROR_PREFIX}{item.err}", step)
        with correlated(correlation_of(item)):
            try:
                return decode(item)
            except Exception as exc:  # every failure on one record is that record's dead letter
                _report(step, exc)
                return Rejected(item, failure_reason(exc), step)

    return run


class Keep(Enum):
    """What a keyed_state mapper returns instead of a state to leave the key's state as it was
    (a rejected record: whatever it did to its copy is dropped)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class StateCodec(Generic[S]):
    """How a flow state becomes the bytes a key holds, and back (see loyalty/state_rows.py)."""

    to_row: Callable[[S], tuple[Any, ...]]
    from_row: Callable[[object], S]

    def encode(self, state: S) -> bytes:
        return pickle.dumps(self.to_row(state), protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, data: bytes) -> S:
        return self.from_row(pickle.loads(data))  # noqa: S301 - our own rows, from our store


def keyed_state(
    step_id: str,
    up: KeyedStream[I],
    mapper: Callable[[S | None, I], tuple[S | Keep | None, O]],
    codec: StateCodec[S],
) -> KeyedStream[O]:
    """`op.stateful_map` for flows holding a state per key for millions of keys.

    Each key is one slotted object holding its state encoded (`codec`): one bytes object of a
    few hundred bytes instead of a graph of objects (Bytewax's own keeps two wrapper objects
    with dicts per key, and deep-copies each changed state at every snapshot). Those bytes are
    the key's snapshot as they are. Every record gets its own copy of the state, decoded, so
    the mapper may change it freely: it returns the new state, None to forget the key, or KEEP
    to leave the state as it was before the record (all or nothing per record). Its step ids
    differ from `op.stateful_map`'s: a recovery store written with that one is not read.
    """
    rules = _Rules(mapper, codec)

    def build(resume: bytes | None) -> _KeyedState[I, O, S]:
        return _KeyedState(rules, resume)

    return op.stateful_batch(step_id, up, build)


@dataclass(frozen=True)
class _Rules(Generic[I, O, S]):
    """What every key of one step shares, so that a key holds only its own bytes."""

    mapper: Callable[[S | None, I], tuple[S | Keep | None, O]]
    codec: StateCodec[S]


class _KeyedState(StatefulBatchLogic[I, O, bytes], Generic[I, O, S]):
    __slots__ = ("_data", "_rules")

    def __init__(self, rules: _Rules[I, O, S], data: bytes | None) -> None:
        self._rules = rules
        self._data = data

    def on_batch(self, values: list[I]) -> tuple[list[O], bool]:
        mapper, codec = self._rules.mapper, self._rules.codec
        data, out = self._data, []
        for value in values:
            state, emitted = mapper(codec.decode(data) if data is not None else None, value)
            out.append(emitted)
            if state is not KEEP:
                data = codec.encode(state) if state is not None else None
        self._data = data
        return out, data is None  # no state: forget the key (DISCARD)

    def snapshot(self) -> bytes:
        # Bytewax asks only for keys it keeps, which always hold a state.
        assert self._data is not None
        return self._data


def guarded_state(
    step: str,
    apply: Callable[[S | None, I], tuple[S | None, list[O]]],
    message_of: Callable[[I], SourceMessage],
) -> Callable[[S | None, I], tuple[S | Keep | None, list[O | Rejected]]]:
    """A keyed_state mapper that is all or nothing per record: `apply` builds every output
    (encoded records, store writes); if any of it fails, the record is rejected and the state
    is kept as it was before it. Lines logged meanwhile carry the record's correlation id."""

    def run(state: S | None, item: I) -> tuple[S | Keep | None, list[O | Rejected]]:
        message = message_of(item)
        with correlated(correlation_of(message)):
            try:
                new_state, outputs = apply(state, item)
            except Exception as exc:  # the record, not the flow, is what failed
                _report(step, exc)
                return KEEP, [Rejected(message, failure_reason(exc), step)]
        return new_state, list(outputs)

    return run


def keyed_outputs(keyed: tuple[str, list[T]]) -> list[T]:
    """A keyed step's list of outputs, without its key (for `op.flat_map`)."""
    return keyed[1]


def dead_letters_out(
    flow: str,
    sink: Sink[SinkMessage],
    count: Callable[[Rejected], None],
    streams: list[tuple[str, Stream[Any]]],
) -> None:
    """Every Rejected of `streams` (named for their step ids) to the flow's dead-letter topic,
    counted by `count` on its way."""
    rejected = op.merge(
        "rejected", *(op.filter_map(f"bad-{name}", s, only(Rejected)) for name, s in streams)
    )

    def letter(item: Rejected) -> SinkMessage:
        count(item)
        return to_dead_letter(item, flow)

    op.output("dlq-out", op.map("to-dead-letter", rejected, letter), sink)


def only(kind: type[T]) -> Callable[[object], T | None]:
    """A filter_map mapper keeping the items of one type (a typed split of a stream)."""
    return lambda item: item if isinstance(item, kind) else None


def broker_time(message: SourceMessage) -> datetime | None:
    """When the record was stamped (producer or broker); None when Kafka has no timestamp.

    It is part of the log, so a replay sees the same time: flows use it, not the clock.
    """
    if message.timestamp is None or message.timestamp[0] == TIMESTAMP_NOT_AVAILABLE:
        return None
    return datetime.fromtimestamp(message.timestamp[1] / 1000, tz=UTC)


def collect_garbage_less_often() -> None:
    """Run the cycle collector every 100,000 net allocations instead of every 700.

    A stateful flow allocates hundreds of short-lived objects per message (parsed JSON, records)
    while holding a large, growing state. With Python's default the collector ran every few
    messages and took about a third of the worker thread (py-spy); with this the points flow
    reached 0.79-0.81 of the store's ceiling instead of 0.74-0.75 (`python -m bench --only
    pipeline --orders 40000`, two runs each). Cyclic garbage just waits a little longer.
    """
    gc.set_threshold(100_000, 50, 100)
