"""The clock job with a fake producer and a fake `point_balances`, time driven by the test:
which customers get a tick, what the records say, what is not sent twice, and when a round
counts as sent."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, Message

from loyalnest.clock import (
    CURSOR_BATCH,
    REMEMBER_FOR,
    ClockError,
    ClockJob,
    RecentTicks,
    main,
    parse,
)
from loyalnest.rounds import DeliveryCallback, iso_time, run_forever
from loyalty.clock_ticks import CLOCK_KEY, decode_clock_tick
from loyalty.commands import customer_key, decode_command
from loyalty.customers import BalanceSnapshot, LedgerEntry, Tick, apply_customer
from loyalty.ledger import Kind, PointsChange, Source, Terms

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
OTHER = "9f0e2d3c-aaaa-4bbb-8ccc-ddddeeeeffff"
COMMANDS, TICKS = "p.points.commands", "p.clock.ticks"


class FakeBalances:
    """`find` over documents in memory, for the one query the job makes (checked)."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.batch_sizes: list[int] = []

    def find(
        self, filter: Mapping[str, Any], projection: Mapping[str, Any], *, batch_size: int
    ) -> Iterable[Mapping[str, Any]]:
        assert list(filter) == ["due_at"], filter
        assert list(filter["due_at"]) == ["$lte"], filter
        self.batch_sizes.append(batch_size)
        bound = filter["due_at"]["$lte"]
        shown = ("_id", *projection)
        return [
            {k: v for k, v in d.items() if k in shown}
            for d in self.docs
            # As MongoDB: a missing or null due_at is not `$lte` any time.
            if isinstance(d.get("due_at"), datetime) and d["due_at"] <= bound
        ]


class FakeProducer:
    """Records what was produced; at flush, reports the failures it was told to."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []  # topic, key, value
        self.fail_keys: set[bytes] = set()
        self.undelivered = 0
        self.full_times = 0  # the next produce calls raising BufferError
        self.polls = 0
        self._unreported: list[tuple[bytes, DeliveryCallback]] = []

    def produce(
        self, topic: str, *, value: bytes, key: bytes, on_delivery: DeliveryCallback
    ) -> None:
        if self.full_times:
            self.full_times -= 1
            raise BufferError("Local: Queue full")
        self.records.append((topic, key, value))
        self._unreported.append((key, on_delivery))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        for key, report in self._unreported:
            if key in self.fail_keys:
                report(KafkaError(KafkaError._MSG_TIMED_OUT), cast(Message, None))
        self._unreported.clear()
        return self.undelivered

    def ticks(self) -> list[tuple[bytes, Tick]]:
        out = []
        for topic, key, value in self.records:
            if topic == COMMANDS:
                tick = decode_command(value)
                assert isinstance(tick, Tick)
                out.append((key, tick))
        return out

    def clock_ticks(self) -> list[datetime]:
        out = []
        for topic, key, value in self.records:
            if topic == TICKS:
                assert key == CLOCK_KEY
                out.append(decode_clock_tick(value))
        return out

    def clear(self) -> None:
        self.records.clear()


def balance(customer: int, due_at: datetime | None, merchant: str = MERCHANT) -> dict[str, Any]:
    return {
        "_id": f"{merchant}:{customer}",
        "merchant_id": merchant,
        "shopify_customer_id": customer,
        "balance": 100,
        "due_at": due_at,
    }


def job_with(
    docs: list[dict[str, Any]], recent: RecentTicks | None = None
) -> tuple[ClockJob, FakeProducer, FakeBalances]:
    producer, balances = FakeProducer(), FakeBalances(docs)
    job = ClockJob(balances, producer, commands_topic=COMMANDS, ticks_topic=TICKS, recent=recent)
    return job, producer, balances


def ticked(producer: FakeProducer) -> set[int]:
    return {tick.customer for _, tick in producer.ticks()}


def test_a_round_ticks_every_due_customer_at_now_and_the_clock_once() -> None:
    docs = [
        balance(1, NOW - timedelta(days=3)),
        balance(2, NOW),  # due exactly now: due
        balance(3, NOW + timedelta(seconds=1)),
        balance(4, None),  # nothing will ever be due
        balance(5, NOW - timedelta(minutes=1), merchant=OTHER),
        {"_id": f"{MERCHANT}:6", "merchant_id": MERCHANT, "shopify_customer_id": 6, "seq": 4},
    ]
    job, producer, balances = job_with(docs)

    result = job.run_round(NOW)

    assert sorted(producer.ticks(), key=lambda kt: kt[1].customer) == [
        (customer_key(MERCHANT, 1), Tick(MERCHANT, 1, NOW)),
        (customer_key(MERCHANT, 2), Tick(MERCHANT, 2, NOW)),
        (customer_key(OTHER, 5), Tick(OTHER, 5, NOW)),
    ]
    assert producer.clock_ticks() == [NOW]
    assert (result.due, result.sent, result.suppressed, result.malformed) == (3, 3, 0, 0)
    assert balances.batch_sizes == [CURSOR_BATCH]


def test_the_clock_tick_is_sent_even_when_no_customer_is_due() -> None:
    job, producer, _ = job_with([balance(1, NOW + timedelta(days=1))])

    result = job.run_round(NOW)

    assert producer.clock_ticks() == [NOW]
    assert producer.ticks() == []
    assert result.sent == 0


def test_now_in_another_zone_is_ticked_as_utc_and_a_naive_now_is_refused() -> None:
    job, producer, _ = job_with([balance(1, NOW)])
    paris = NOW.astimezone(timezone(timedelta(hours=1)))

    job.run_round(paris)

    assert producer.clock_ticks() == [NOW]
    assert producer.ticks()[0][1].at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        job.run_round(NOW.replace(tzinfo=None))


def test_a_customer_still_due_with_the_same_due_at_is_not_ticked_again_for_a_while() -> None:
    due = NOW - timedelta(hours=1)
    docs = [balance(1, due), balance(2, due)]
    job, producer, _ = job_with(docs)
    job.run_round(NOW)
    producer.clear()

    # The flow has not caught up with customer 1 yet; customer 2 moved on to a new due time
    # that is already past (e.g. its next lot expired in the meantime).
    docs[1]["due_at"] = NOW + timedelta(seconds=30)
    later = NOW + timedelta(minutes=1)
    result = job.run_round(later)

    assert ticked(producer) == {2}
    assert (result.due, result.sent, result.suppressed) == (2, 1, 1)
    assert producer.clock_ticks() == [later]


def test_a_remembered_tick_is_sent_again_once_the_memory_has_passed() -> None:
    job, producer, _ = job_with([balance(1, NOW - timedelta(hours=1))])
    job.run_round(NOW)
    producer.clear()

    job.run_round(NOW + REMEMBER_FOR - timedelta(seconds=1))
    assert ticked(producer) == set()

    job.run_round(NOW + REMEMBER_FOR)
    assert ticked(producer) == {1}


def test_a_restarted_job_sends_again_what_it_had_sent() -> None:
    docs = [balance(1, NOW - timedelta(hours=1))]
    first, _, _ = job_with(docs)
    first.run_round(NOW)

    second, producer, _ = job_with(docs)  # a new process: nothing remembered
    second.run_round(NOW + timedelta(minutes=1))

    assert ticked(producer) == {1}


def test_memory_is_bounded_and_the_oldest_are_forgotten_first() -> None:
    recent = RecentTicks(capacity=2)
    due = NOW - timedelta(hours=1)
    recent.remember([(b"m:1", due)], NOW)
    recent.remember([(b"m:2", due), (b"m:3", due)], NOW + timedelta(seconds=1))

    assert len(recent) == 2
    assert not recent.sent_lately(b"m:1", due)
    assert recent.sent_lately(b"m:2", due)
    assert recent.sent_lately(b"m:3", due)


def test_a_round_larger_than_the_memory_is_remembered_as_far_as_it_fits() -> None:
    recent = RecentTicks(capacity=2)
    due = NOW - timedelta(hours=1)

    recent.remember([(b"m:1", due), (b"m:2", due), (b"m:3", due)], NOW)

    assert len(recent) == 2
    assert sum(recent.sent_lately(key, due) for key in (b"m:1", b"m:2", b"m:3")) == 2


def test_memory_forgets_by_the_time_each_was_sent() -> None:
    recent = RecentTicks(keep_for=timedelta(minutes=10))
    due = NOW - timedelta(hours=1)
    recent.remember([(b"m:1", due)], NOW)
    recent.remember([(b"m:2", due)], NOW + timedelta(minutes=5))
    recent.remember([(b"m:1", due)], NOW + timedelta(minutes=6))  # sent again: newest now

    recent.forget_before(NOW + timedelta(minutes=15))

    assert not recent.sent_lately(b"m:2", due)
    assert recent.sent_lately(b"m:1", due)
    assert len(recent) == 1


def test_a_round_with_a_failed_delivery_raises_and_is_not_remembered() -> None:
    job, producer, _ = job_with([balance(1, NOW), balance(2, NOW)])
    producer.fail_keys = {customer_key(MERCHANT, 2)}

    with pytest.raises(ClockError, match="1 failed"):
        job.run_round(NOW)

    producer.fail_keys.clear()
    producer.clear()
    job.run_round(NOW + timedelta(minutes=1))
    assert ticked(producer) == {1, 2}


def test_a_round_whose_records_are_not_all_acknowledged_in_time_raises() -> None:
    job, producer, _ = job_with([balance(1, NOW)])
    producer.undelivered = 1

    with pytest.raises(ClockError, match="1 record"):
        job.run_round(NOW)
    assert len(job.recent) == 0


def test_a_full_producer_queue_is_waited_out_not_dropped() -> None:
    job, producer, _ = job_with([balance(1, NOW), balance(2, NOW)])
    producer.full_times = 3

    job.run_round(NOW)

    assert ticked(producer) == {1, 2}
    assert producer.polls >= 3


@pytest.mark.parametrize(
    "doc",
    [
        {"_id": "a", "merchant_id": MERCHANT, "shopify_customer_id": "7", "due_at": NOW},
        {"_id": "b", "merchant_id": MERCHANT, "shopify_customer_id": True, "due_at": NOW},
        {"_id": "c", "merchant_id": None, "shopify_customer_id": 7, "due_at": NOW},
        {"_id": "d", "shopify_customer_id": 7, "due_at": NOW},
    ],
)
def test_a_document_without_a_ticks_fields_is_skipped_and_counted(doc: dict[str, Any]) -> None:
    job, producer, _ = job_with([doc, balance(1, NOW)])

    result = job.run_round(NOW)

    assert ticked(producer) == {1}
    assert (result.due, result.sent, result.malformed) == (2, 1, 1)


def test_run_forever_ticks_at_each_time_the_clock_gives_until_stopped() -> None:
    job, producer, _ = job_with([balance(1, NOW - timedelta(days=1))])
    stop = threading.Event()
    times = iter([NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)])

    def clock() -> datetime:
        at = next(times)
        if at == NOW + timedelta(minutes=2):
            stop.set()  # the round under way still completes
        return at

    run_forever(job.run_round, clock, 0.0, stop)

    assert producer.clock_ticks() == [NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)]
    assert ticked(producer) == {1}
    assert len(producer.ticks()) == 1  # the same due_at: suppressed in the later rounds


def test_at_takes_an_iso_time_with_offset_and_implies_a_single_round() -> None:
    args = parse(["--at", "2026-03-01T13:00:00+01:00"])
    assert args.at == NOW
    assert parse(["--at", "2026-03-01T12:00:00Z"]).at == NOW
    assert parse(["--once"]).once
    assert parse([]).at is None
    assert not parse([]).once
    with pytest.raises(argparse.ArgumentTypeError):
        iso_time("2026-03-01T12:00:00")  # no offset: which time would it be?
    with pytest.raises(argparse.ArgumentTypeError):
        iso_time("yesterday")


def test_a_tick_in_the_future_is_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nowhere to send to, should the refusal ever be missed.
    monkeypatch.setenv("MONGO_URL", "mongodb://127.0.0.1:9")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    # Points it would expire early could not be given back: the customer's clock never goes back.
    assert main(["--at", "2026-03-01T12:00:01Z"], clock=lambda: NOW) == 2
    assert "in the future" in capsys.readouterr().err


def test_the_tick_sent_for_a_due_balance_releases_its_points_at_their_own_time() -> None:
    """From the flow's balance snapshot to the clock's record and back into the customer stage:
    the points held until `release_at` are released then, however late the tick comes."""
    earned_at, release_at = NOW - timedelta(days=20), NOW - timedelta(days=6)
    change = PointsChange(
        shop="clock-shop.myshopify.com",
        customer=42,
        source=Source.ORDER,
        source_id="9001",
        kind=Kind.EARN,
        points=50,
        text_key="points.earned.order",
        locale="en",
        at=earned_at,
        order_id=9001,
        key="earn",
        terms=Terms(release_at=release_at),
    )
    state, outputs = apply_customer(None, change)
    snapshot = next(o for o in outputs if isinstance(o, BalanceSnapshot))
    assert (snapshot.balance, snapshot.pending, snapshot.due_at) == (0, 50, release_at)
    doc = balance(42, snapshot.due_at, merchant=change.merchant_id)
    job, producer, _ = job_with([doc])

    job.run_round(NOW)  # the first tick after six days of downtime

    [(_, tick)] = producer.ticks()
    state, outputs = apply_customer(state, tick)
    [release] = [o for o in outputs if isinstance(o, LedgerEntry)]
    assert (release.kind, release.points, release.at) == (Kind.RELEASE, 50, release_at)
    assert state is not None
    assert (state.balance, state.pending) == (50, 0)
