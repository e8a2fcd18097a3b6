"""`loyalnest dlq list | show | replay`: read the dead-letter topics and re-drive dead letters.

A re-drive is the dead letter's original record (key, value, headers, and its original time as
the record's timestamp, so the flows decide it as received then) produced to the topic it
came from, with `dlq-replayed-from` added (connectors/dead_letters.py). Each re-drive and the
mark saying it was done (`dlq.replayed`, keyed by the dead letter's `topic/partition/offset`)
are produced in one Kafka transaction: running the same replay again finds every mark and
re-drives nothing twice, and a replay stopped half-way leaves no re-drive without its mark.
A re-drive that fails again is a new dead letter (its `dlq-attempt` one higher), which a later
replay may re-drive in turn.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache, partial
from itertools import islice
from typing import Any, TextIO, cast

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from connectors.dead_letters import (
    DLQ_ORIGIN,
    DLQ_REASON,
    DLQ_STEP,
    DLQ_TIMESTAMP,
    attempt_of,
    origin_topic,
    redriven_headers,
)
from connectors.kafka import produce_when_room
from connectors.shopify import SHOP_HEADER
from loyalnest.settings import Settings
from loyalnest.topics import DEAD_LETTER_TOPICS, DLQ_REPLAYED, POINTS_REPLAY, TOPICS

CHUNK = 1_000  # re-drives per transaction
IDLE_SECONDS = 30.0  # reading a topic to its end gives up after this long without progress


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def ref(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value.decode("utf-8", errors="replace")
        return None

    @property
    def reason(self) -> str:
        return self.header(DLQ_REASON) or ""

    @property
    def step(self) -> str:
        return self.header(DLQ_STEP) or ""

    @property
    def origin(self) -> str:
        return self.header(DLQ_ORIGIN) or ""

    @property
    def attempt(self) -> int:
        """How many times the record has been dead-lettered (1 for a first failure)."""
        return attempt_of(self.headers) or 1

    @property
    def timestamp_ms(self) -> int | None:
        raw = self.header(DLQ_TIMESTAMP)
        return int(raw) if raw is not None and raw.isdigit() else None

    @property
    def time(self) -> datetime | None:
        ms = self.timestamp_ms
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)

    @property
    def shop(self) -> str:
        """The shop the record concerns: its webhook header, else its body's `shop`."""
        header = self.header(SHOP_HEADER)
        if header:
            return header
        body = as_json(self.value)
        if isinstance(body, dict):
            for name in ("shop", "shop_domain"):
                if isinstance(body.get(name), str):
                    return str(body[name])
        return ""


def as_json(value: bytes | None) -> object:
    try:
        return json.loads(value or b"")
    except ValueError:
        return None


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command concerns (every given condition must hold)."""

    reason: str | None = None  # a part of the reason, any case
    step: str | None = None
    shop: str | None = None
    since: datetime | None = None  # the original record's time, inclusive
    until: datetime | None = None  # exclusive
    max_attempt: int | None = None  # dead-lettered at most this many times

    def __call__(self, letter: DeadLetter) -> bool:
        if self.max_attempt is not None and letter.attempt > self.max_attempt:
            return False
        if self.reason is not None and self.reason.casefold() not in letter.reason.casefold():
            return False
        if self.step is not None and self.step != letter.step:
            return False
        if self.shop is not None and self.shop.casefold() != letter.shop.casefold():
            return False
        return self._in_time(letter.time)

    def _in_time(self, at: datetime | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if at is None:
            return False
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


# --------------------------------------------------------------------------------- reading


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": "loyalnest-dlq-tools",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )


def read_topic(settings: Settings, topic: str) -> Iterator[Message]:
    """Every record of `topic` from its first offset to the end it had when reading began."""
    consumer = _consumer(settings)
    try:
        ranges = {p: w for p, w in _watermarks(consumer, topic).items() if w[1] > w[0]}
        if not ranges:
            return
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _high) in ranges.items()])
        yield from _until_ends(consumer, topic, {p: high for p, (_low, high) in ranges.items()})
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    """Each partition's first offset and end offset."""
    described = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if described is None or described.error is not None:
        raise LookupError(f"topic {topic} does not exist")
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)
        for p in described.partitions
    }


def _until_ends(consumer: Consumer, topic: str, ends: dict[int, int]) -> Iterator[Message]:
    last_progress = time.monotonic()
    while ends:
        messages = consumer.consume(500, timeout=0.5)
        for message in messages:
            error = message.error()
            if error is not None:
                raise KafkaException(error)
            if message.partition() in ends:
                yield message
        if messages:
            last_progress = time.monotonic()
        # Positions, not offsets seen: transaction markers take offsets no record has.
        for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
            if tp.offset >= ends[tp.partition]:
                del ends[tp.partition]
        if ends and time.monotonic() - last_progress > IDLE_SECONDS:
            raise TimeoutError(f"{topic}: no progress for {IDLE_SECONDS:g} s")


def dead_letters(settings: Settings, topics: Sequence[str]) -> Iterator[DeadLetter]:
    for topic in topics:
        for message in read_topic(settings, topic):
            yield letter_of(topic, message)


def letter_of(topic: str, message: Message) -> DeadLetter:
    raw = cast(list[tuple[str, bytes | None]], message.headers() or [])
    headers = [(k, v if isinstance(v, bytes) else b"") for k, v in raw]
    partition, offset = message.partition(), message.offset()
    # A consumed record has both.
    assert partition is not None
    assert offset is not None
    return DeadLetter(topic, partition, offset, message.key(), message.value(), headers)


def replayed(settings: Settings) -> set[str]:
    """The dead letters already re-driven, from their marks."""
    marks = set()
    for message in read_topic(settings, settings.topic(DLQ_REPLAYED)):
        key = message.key()
        if key is not None:
            marks.add(key.decode())
    return marks


def topics_of(settings: Settings, topic: str | None) -> list[str]:
    """The dead-letter topics a command reads: the one named, or all of them."""
    if topic is not None:
        return [settings.topic(topic)]
    return [settings.topic(name) for name in DEAD_LETTER_TOPICS]


# --------------------------------------------------------------------------------- listing


COLUMNS = ("offset", "time", "shop", "origin", "step", "reason")


def row(letter: DeadLetter) -> tuple[str, ...]:
    at = letter.time
    when = "" if at is None else at.isoformat(timespec="seconds").replace("+00:00", "Z")
    return (letter.ref, when, letter.shop, letter.origin, letter.step, letter.reason[:80])


def table(letters: Iterable[DeadLetter], out: TextIO) -> Counter[str]:
    """The dead letters as a table; returns their count by reason."""
    rows: list[tuple[str, ...]] = [COLUMNS]
    reasons: Counter[str] = Counter()
    for letter in letters:
        rows.append(row(letter))
        reasons[letter.reason] += 1
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for r in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        out.write("\n")
    out.write(f"\n{sum(reasons.values())} dead letter(s)\n")
    for reason, count in reasons.most_common():
        out.write(f"{count:>8}  {reason}\n")
    return reasons


def list_dead_letters(
    settings: Settings, topic: str | None, selection: Selection, out: TextIO
) -> int:
    letters = (d for d in dead_letters(settings, topics_of(settings, topic)) if selection(d))
    return sum(table(letters, out).values())


def show(settings: Settings, ref: str, out: TextIO) -> None:
    """One dead letter, `topic/partition/offset`: its headers, then its record."""
    topic, partition, offset = parse_ref(ref, settings.topic(DEAD_LETTER_TOPICS[0]))
    letter = fetch(settings, topic, partition, offset)
    out.write(f"{letter.ref}\n")
    for key, value in letter.headers:
        out.write(f"  {key}: {value.decode('utf-8', errors='replace')}\n")
    out.write(f"key: {(letter.key or b'').decode('utf-8', errors='replace')}\n")
    body = as_json(letter.value)
    if body is not None:
        out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(repr(letter.value) + "\n")


def parse_ref(ref: str, default_topic: str) -> tuple[str, int, int]:
    """`points.dlq/0/17` as `list` shows it, `points.dlq/17` (partition 0) or `17` (the
    default topic, partition 0)."""
    parts = ref.split("/")
    numbers = parts[1:] if len(parts) > 1 else parts
    topic = parts[0] if len(parts) > 1 else default_topic
    if not all(n.isdigit() for n in numbers) or not 1 <= len(numbers) <= 2:
        raise ValueError(f"not a dead letter reference: {ref!r} (e.g. points.dlq/0/17)")
    partition, offset = (0, int(numbers[0])) if len(numbers) == 1 else map(int, numbers)
    return topic, partition, offset


def fetch(settings: Settings, topic: str, partition: int, offset: int) -> DeadLetter:
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        message = consumer.consume(1, timeout=10)
        if not message or message[0].error() is not None or message[0].offset() != offset:
            raise LookupError(f"no dead letter at {topic}/{partition}/{offset}")
        return letter_of(topic, message[0])
    finally:
        consumer.close()


# -------------------------------------------------------------------------------- replaying


@dataclass
class ReplayReport:
    read: int = 0  # dead letters read, selected or not
    selected: int = 0
    already: int = 0  # re-driven by an earlier replay
    by_topic: Counter[str] = field(default_factory=Counter)

    @property
    def redriven(self) -> int:
        return sum(self.by_topic.values())

    def document(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            "already_replayed": self.already,
            "redriven": self.redriven,
            "to": dict(self.by_topic),
        }


def destination(settings: Settings, letter: DeadLetter) -> str:
    """The topic the dead letter came from when a flow reads it; else points.replay."""
    origin = origin_topic(letter.origin)
    if origin in _readable(settings.kafka_topic_prefix):
        return origin
    return settings.topic(POINTS_REPLAY)


@lru_cache(maxsize=8)
def _readable(prefix: str) -> frozenset[str]:
    """The system's topics a flow reads (all but the dead letters and the marks)."""
    unread = {*DEAD_LETTER_TOPICS, DLQ_REPLAYED}
    return frozenset(f"{prefix}{t.name}" for t in TOPICS if t.name not in unread)


@dataclass(frozen=True)
class ReplayOptions:
    dry_run: bool = False
    rate: float | None = None  # dead letters per second at most
    progress: TextIO | None = None  # a terminal to draw progress on


def replay(
    settings: Settings,
    topic: str | None,
    selection: Selection,
    options: ReplayOptions,
    out: TextIO,
) -> ReplayReport:
    """Re-drive the selected dead letters not re-driven before, streaming: only one chunk of
    them is held at a time."""
    marks = replayed(settings)
    topics = topics_of(settings, topic)
    report = ReplayReport()
    todo = _to_redrive(dead_letters(settings, topics), selection, marks, report)
    if options.dry_run:
        table(todo, out)
        return report
    send = Redriver(settings)
    # The records to read only size the progress line: not counted without a terminal.
    records = records_in(settings, topics) if options.progress is not None else 0
    pace = Pace(options.rate, records, options.progress)
    while chunk := list(islice(todo, pace.chunk)):
        report.by_topic.update(send(chunk))
        pace.after(report.redriven, report.read)
    pace.finish()
    return report


def _to_redrive(
    letters: Iterable[DeadLetter], selection: Selection, marks: set[str], report: ReplayReport
) -> Iterator[DeadLetter]:
    for letter in letters:
        report.read += 1
        if not selection(letter):
            continue
        report.selected += 1
        if letter.ref in marks:
            report.already += 1
        else:
            yield letter


def records_in(settings: Settings, topics: Sequence[str]) -> int:
    """How many records the topics hold (what reading them all will go through)."""
    consumer = _consumer(settings)
    try:
        return sum(
            high - low for topic in topics for low, high in _watermarks(consumer, topic).values()
        )
    finally:
        consumer.close()


class Redriver:
    """Produces re-drives and their marks, one transaction per chunk."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._marks = settings.topic(DLQ_REPLAYED)
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                # One replayer at a time: a second one fences the first off.
                "transactional.id": f"loyalnest-dlq-replay:{self._marks}",
                # A replay killed inside a transaction holds the flows' reading of the topics
                # it wrote to (they read committed records only) until the broker aborts it.
                "transaction.timeout.ms": 60_000,
                "linger.ms": 5,
                "compression.type": "lz4",
            }
        )
        self._producer.init_transactions(30)

    def __call__(self, letters: Sequence[DeadLetter]) -> list[str]:
        """Each letter re-driven; the topics they went to."""
        sent = []
        self._producer.begin_transaction()
        try:
            for letter in letters:
                to = destination(self._settings, letter)
                self._produce(to, letter)
                mark = json.dumps({"to": to, "at": datetime.now(UTC).isoformat()}).encode()
                self._producer.produce(self._marks, key=letter.ref.encode(), value=mark)
                sent.append(to)
            self._producer.commit_transaction(60)
        except BaseException:
            self._producer.abort_transaction(30)
            raise
        return sent

    def _produce(self, to: str, letter: DeadLetter) -> None:
        produce = partial(
            self._producer.produce,
            to,
            key=letter.key,
            value=letter.value,
            headers=redriven_headers(letter.headers, letter.ref),
            timestamp=letter.timestamp_ms or 0,  # 0: the time it is produced
        )
        produce_when_room(produce, self._producer.poll)


class Pace:
    """At most `rate` re-drives a second, and a progress line on a terminal: re-drives, their
    rate, and the time left to read the `records` of the dead-letter topics at the pace so far."""

    def __init__(self, rate: float | None, records: int, terminal: TextIO | None) -> None:
        self._rate = rate
        self._records = records
        self._terminal = terminal
        self._started = time.monotonic()
        self.chunk = CHUNK if rate is None else max(1, min(CHUNK, int(rate / 10)))

    def after(self, done: int, read: int, sleep: Callable[[float], None] = time.sleep) -> None:
        if self._rate is not None:
            ahead = done / self._rate - (time.monotonic() - self._started)
            if ahead > 0:
                sleep(ahead)  # pacing, not synchronisation: the rate is the user's limit
        if self._terminal is not None:
            elapsed = max(time.monotonic() - self._started, 1e-9)
            left = max(self._records - read, 0) * elapsed / max(read, 1)
            self._terminal.write(
                f"\r{done:,} re-driven  {done / elapsed:,.0f}/s  "
                f"read {read:,}/{self._records:,}  ETA {left:,.0f} s "
            )
            self._terminal.flush()

    def finish(self) -> None:
        if self._terminal is not None:
            self._terminal.write("\n")


def terminal() -> TextIO | None:
    return sys.stderr if sys.stderr.isatty() else None
