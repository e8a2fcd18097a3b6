"""`python -m loyalnest.clock`: the clock job, which brings time to the flows as records.

No state machine reads the wall clock (DESIGN.md, "Time is data"): this job does, and turns
what it reads into records. Every CLOCK_INTERVAL_SECONDS it takes `now` and

- produces one `clock.tick` record to `clock.ticks`, for flows that age as a whole (RFM);
- asks `point_balances` which customers are due (`due_at <= now`, written by the points flow
  with every balance), and PostgreSQL `customer_tiers` which customers' tiers are (written by
  the tiers flow), and produces one `points.tick` command at `now` for each of them to
  `points.commands`, keyed like every other command of that customer. Both flows read it.

The points flow then makes everything due up to `now` happen at its own due time, so the first
tick after downtime expires points with their own dates, and a replay decides the same.

Ticks are harmless to repeat (a tick with nothing due changes nothing), so the job keeps no
state on disk: it only remembers, in memory and for a while, which (customer, due_at) it has
ticked, so that a flow that is behind is not sent the same tick every round; a restarted job
simply sends them again. `--at ISO` ticks once as of that time (operators catching up, tests).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

import psycopg
from confluent_kafka import KafkaError, Message, Producer
from psycopg.rows import dict_row
from pymongo.database import Database

from connectors.kafka import produce_when_room
from connectors.store import BALANCES
from connectors.tier_records import DUE_TIERS
from loyalnest.rounds import (
    Clock,
    RoundJob,
    TickProducer,
    as_utc,
    round_args,
    run_job,
    utc_now,
)
from loyalnest.settings import Settings
from loyalnest.topics import CLOCK_TICKS, POINTS_COMMANDS
from loyalty.clock_ticks import CLOCK_KEY, encode_clock_tick
from loyalty.commands import customer_key, encode_tick
from loyalty.customers import Tick

log = logging.getLogger("loyalnest.clock")

# How long a sent (customer, due_at) is not sent again: long enough for a flow that is a few
# rounds behind to catch up, short enough that a tick lost anyway is repeated soon.
REMEMBER_FOR = timedelta(minutes=10)
# At most this many remembered ticks (about 70 MB): beyond it the oldest are forgotten, which
# only means they may be sent once more. It must hold the largest due set (a date on which a
# whole customer base expires), or every round re-sends what it could not hold to a flow that
# is already busy with them.
MAX_REMEMBERED = 1_000_000
CURSOR_BATCH = 5_000  # documents per round trip of the due query
POLL_EVERY = 1_000  # ticks between serving the producer's (error-only) delivery reports
FLUSH_SECONDS = 120.0  # a round fails if its ticks are not all acknowledged by then
# Only what a tick needs (and `_id`, which names a malformed document in the log).
DUE_FIELDS = {"merchant_id": 1, "shopify_customer_id": 1, "due_at": 1}


class Balances(Protocol):
    """What the job needs of the `point_balances` collection (tests pass a fake)."""

    def find(
        self, filter: Mapping[str, Any], projection: Mapping[str, Any], *, batch_size: int
    ) -> Iterable[Mapping[str, Any]]: ...


class ClockError(RuntimeError):
    """A round's ticks were not all acknowledged: the round is not remembered as sent."""


class RecentTicks:
    """The (customer, due_at) pairs ticked lately, one set per round, bounded in age and size.

    Pairs are kept as their hashes (about 70 bytes each, against 300 for the pair): two pairs
    sharing a hash would only delay the second's tick by at most `keep_for`, and among a
    million remembered that is less likely than 1 in 10^7.
    """

    def __init__(self, keep_for: timedelta = REMEMBER_FOR, capacity: int = MAX_REMEMBERED) -> None:
        self.keep_for = keep_for
        self.capacity = capacity
        self._rounds: deque[tuple[datetime, set[int]]] = deque()  # (sent at, pairs), oldest first

    def __len__(self) -> int:
        return sum(len(pairs) for _, pairs in self._rounds)

    def sent_lately(self, key: bytes, due_at: datetime) -> bool:
        # A new due_at (the flow moved on, and something else is due already) is a new pair.
        pair = hash((key, due_at))
        return any(pair in pairs for _, pairs in self._rounds)

    def remember(self, sent: Iterable[tuple[bytes, datetime]], at: datetime) -> None:
        pairs = {hash(pair) for pair in sent}
        if len(pairs) > self.capacity:  # one round beyond the bound: keep what fits
            pairs = set(itertools.islice(pairs, self.capacity))
        self._rounds.append((at, pairs))
        size = len(self)
        while size > self.capacity:  # the oldest rounds go first
            size -= len(self._rounds.popleft()[1])

    def forget_before(self, now: datetime) -> None:
        """Forget the rounds sent `keep_for` or longer before `now`."""
        while self._rounds and self._rounds[0][0] <= now - self.keep_for:
            self._rounds.popleft()


@dataclass(frozen=True)
class Round:
    """What one round did (logged, and measured by `python -m bench --only clock`)."""

    at: datetime
    due: int  # documents the query returned
    sent: int
    suppressed: int  # ticked lately with the same due_at
    malformed: int  # not a tick's worth of fields; skipped
    seconds: float

    @property
    def ticks_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def tick_fields(doc: Mapping[str, Any]) -> tuple[str, int, datetime] | None:
    """(merchant, customer, due_at) of a due balance document; None if it lacks any of them."""
    merchant, customer, due_at = (
        doc.get("merchant_id"),
        doc.get("shopify_customer_id"),
        doc.get("due_at"),
    )
    if isinstance(merchant, str) and type(customer) is int and isinstance(due_at, datetime):
        return merchant, customer, due_at
    return None


def due_documents(balances: Balances, now: datetime) -> Iterable[Mapping[str, Any]]:
    """The balance documents due at `now`, in batches (`idx_due_at` serves the range)."""
    return balances.find({"due_at": {"$lte": now}}, DUE_FIELDS, batch_size=CURSOR_BATCH)


DueSource = Callable[[datetime], Iterable[Mapping[str, Any]]]


def due_tiers(postgres_url: str) -> DueSource:
    """The customers whose tiers are due at `now`, read with a server-side cursor."""

    def due(now: datetime) -> Iterable[Mapping[str, Any]]:
        with (
            psycopg.connect(postgres_url) as conn,
            conn.cursor("due_tiers", row_factory=dict_row) as cur,
        ):
            cur.itersize = CURSOR_BATCH
            cur.execute(DUE_TIERS, {"now": now})
            yield from cur

    return due


class ClockJob:
    """Rounds of ticks: each takes its time from the caller, never from the wall clock."""

    def __init__(
        self,
        balances: Balances,
        producer: TickProducer,
        *,
        commands_topic: str,
        ticks_topic: str,
        recent: RecentTicks | None = None,
        tiers: DueSource | None = None,
    ) -> None:
        self.balances = balances
        self.tiers = tiers
        self.producer = producer
        self.commands_topic = commands_topic
        self.ticks_topic = ticks_topic
        self.recent = recent if recent is not None else RecentTicks()
        self._failures = 0
        self._first_failure: str | None = None

    def run_round(self, now: datetime) -> Round:
        """One clock tick and a tick for every customer due at `now`, all acknowledged."""
        documents = due_documents(self.balances, as_utc(now))
        if self.tiers is not None:
            documents = itertools.chain(documents, self.tiers(as_utc(now)))
        return self.send(now, documents)

    def send(self, now: datetime, documents: Iterable[Mapping[str, Any]]) -> Round:
        """Tick `documents` (due balance documents) and the clock as of `now`; raise ClockError
        unless the broker acknowledged every record."""
        started = time.perf_counter()
        now = as_utc(now)
        self.recent.forget_before(now)
        self._failures, self._first_failure = 0, None
        self._produce(self.ticks_topic, CLOCK_KEY, encode_clock_tick(now))
        sent: list[tuple[bytes, datetime]] = []
        due = suppressed = malformed = 0
        for doc in documents:
            due += 1
            fields = tick_fields(doc)
            if fields is None:
                malformed += 1
                if malformed == 1:
                    log.warning("balance %r lacks a tick's fields; skipped", doc.get("_id"))
                continue
            merchant, customer, due_at = fields
            key = customer_key(merchant, customer)
            if self.recent.sent_lately(key, due_at):
                suppressed += 1
                continue
            self._produce(self.commands_topic, key, encode_tick(Tick(merchant, customer, now)))
            sent.append((key, due_at))
            if len(sent) % POLL_EVERY == 0:
                self.producer.poll(0)
        undelivered = self.producer.flush(FLUSH_SECONDS)
        if undelivered or self._failures:
            raise ClockError(
                f"tick at {now.isoformat()}: {undelivered} record(s) not acknowledged in "
                f"{FLUSH_SECONDS:.0f}s, {self._failures} failed (first: {self._first_failure})"
            )
        self.recent.remember(sent, now)
        result = Round(now, due, len(sent), suppressed, malformed, time.perf_counter() - started)
        log.info(
            "tick at %s: %d due, %d ticked, %d ticked lately, %d malformed; %.2fs (%.0f/s)",
            now.isoformat(),
            result.due,
            result.sent,
            result.suppressed,
            result.malformed,
            result.seconds,
            result.ticks_per_second,
        )
        return result

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        produce = partial(
            self.producer.produce, topic, value=value, key=key, on_delivery=self._delivered
        )
        produce_when_room(produce, self.producer.poll)

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failures += 1
            self._first_failure = self._first_failure or str(err)


def kafka_producer(settings: Settings) -> Producer:
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            # acks=all, and retries neither duplicate nor reorder a customer's ticks.
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
            # A round is 100,000 successes: only failures need a callback.
            "delivery.report.only.error": True,
            "log_level": 3,
        }
    )


PROG = "python -m loyalnest.clock"


def parse(argv: list[str] | None) -> argparse.Namespace:
    return round_args(PROG, __doc__, argv)


def main(argv: list[str] | None = None, clock: Clock = utc_now) -> int:
    # A time in the future is refused: points expired early would stay expired.
    return run_job(JOB, argv, clock)


def _clock_rounds(settings: Settings, db: Database[Any]) -> Callable[[datetime], Round]:
    job = ClockJob(
        db[BALANCES],
        kafka_producer(settings),
        commands_topic=settings.topic(POINTS_COMMANDS),
        ticks_topic=settings.topic(CLOCK_TICKS),
        tiers=due_tiers(settings.postgres_url),
    )
    log.info("ticking every %ds", settings.clock_interval_seconds)
    return job.run_round


JOB = RoundJob(
    "clock",
    PROG,
    __doc__,
    _clock_rounds,
    lambda settings: settings.clock_interval_seconds,
)


if __name__ == "__main__":
    sys.exit(main())
