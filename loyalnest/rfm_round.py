"""One RFM rescoring round: the records that keep customers' scores in step with their merchant.

For each merchant picture in the store (`rfm_merchants`, written by the RFM flow): an `rfm.day`
when the round's day is past the picture's as-of day, and an `rfm.tick` with the picture for
every customer whose stored document one of the `stale_customers` queries finds (an oldest day
out of the window, nothing announced yet, or a score whose band no longer holds the value). The
flow applies them and writes the documents again, so a later round finds only what moved since:
rounds converge, and repeating one is harmless (a tick of a picture already applied changes
nothing).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from pymongo.database import Database

from connectors.kafka import produce_when_room
from connectors.rfm_records import stale_customers
from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS
from loyalnest.clock import CURSOR_BATCH, FLUSH_SECONDS, kafka_producer
from loyalnest.rounds import Clock, RoundJob, run_job, utc_now
from loyalnest.topics import RFM_COMMANDS
from loyalty.rfm import day_number
from loyalty.rfm_commands import CustomerTick, DayTick, RfmCommand, encode, scales_from
from loyalty.rfm_customers import Tick
from loyalty.rfm_window import DEFAULT_LOOKBACK_DAYS
from loyalty.times import as_utc

log = logging.getLogger("loyalnest.rfm_round")

Produce = Callable[[bytes, bytes], None]  # (key, value) onto rfm.commands
PICTURE_FIELDS = {"as_of": 1, "scales": 1, "v": 1, "lookback_days": 1}
STALE_FIELDS = {"shopify_customer_id": 1}


@dataclass
class RoundCounts:
    merchants: int = 0
    days: int = 0
    ticks: int = 0


def rescoring_round(
    merchants: Iterable[Mapping[str, Any]],
    stale: Callable[[Mapping[str, Any]], Iterable[Mapping[str, Any]]],
    produce: Produce,
    now: datetime,
) -> RoundCounts:
    """`merchants`: the picture documents; `stale(query)`: the customer documents matching a
    query; `produce(key, value)`: one record onto rfm.commands. A customer several queries
    find is ticked once."""
    counts = RoundCounts()
    today = day_number(now)
    for doc in merchants:
        counts.merchants += 1
        merchant_id = str(doc["_id"])
        as_of = day_number(as_utc(doc["as_of"]))
        if today > as_of:
            _send(produce, merchant_id.encode(), DayTick(merchant_id, today))
            counts.days += 1
        scales = scales_from(doc["scales"])
        tick = Tick(as_of, scales, int(doc["v"]))
        lookback = int(doc.get("lookback_days", DEFAULT_LOOKBACK_DAYS))
        ticked: set[int] = set()
        for query in stale_customers(merchant_id, scales, as_of):
            for customer_doc in stale(query):
                customer = int(customer_doc["shopify_customer_id"])
                if customer in ticked:
                    continue
                ticked.add(customer)
                command = CustomerTick(merchant_id, customer, tick, lookback)
                _send(produce, f"{merchant_id}:{customer}".encode(), command)
        counts.ticks += len(ticked)
    return counts


def _send(produce: Produce, key: bytes, command: RfmCommand) -> None:
    produce(key, encode(command))


class RoundError(RuntimeError):
    """The broker did not acknowledge every record of a round: the job ends, and its
    supervisor restarts it (a repeated round is harmless)."""


class RescoringJob:
    """Rounds over the store; each takes its time from the caller, never from the wall clock."""

    def __init__(self, db: Database[Any], producer: Producer, topic: str) -> None:
        self._merchants = db[RFM_MERCHANTS]
        self._customers = db[RFM_CUSTOMERS]
        self._producer = producer
        self._topic = topic
        self._failures = 0

    def run_round(self, now: datetime) -> RoundCounts:
        started = time.perf_counter()
        self._failures = 0
        counts = rescoring_round(
            self._merchants.find({}, PICTURE_FIELDS),
            lambda query: self._customers.find(query, STALE_FIELDS, batch_size=CURSOR_BATCH),
            self._produce,
            now,
        )
        undelivered = self._producer.flush(FLUSH_SECONDS)
        if undelivered or self._failures:
            raise RoundError(f"rfm round at {now.isoformat()}: {undelivered + self._failures} lost")
        log.info(
            "rfm round at %s: %d merchants, %d day ticks, %d customers ticked; %.2fs",
            now.isoformat(),
            counts.merchants,
            counts.days,
            counts.ticks,
            time.perf_counter() - started,
        )
        return counts

    def _produce(self, key: bytes, value: bytes) -> None:
        produce = partial(
            self._producer.produce,
            self._topic,
            value=value,
            key=key,
            on_delivery=self._delivered,
        )
        produce_when_room(produce, self._producer.poll)

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failures += 1


JOB = RoundJob(
    "rfm-rounds",
    "python -m loyalnest.rfm_round",
    __doc__,
    lambda settings, db: (
        RescoringJob(db, kafka_producer(settings), settings.topic(RFM_COMMANDS)).run_round
    ),
    lambda settings: settings.rfm_round_seconds,
)


def main(argv: list[str] | None = None, clock: Clock = utc_now) -> int:
    return run_job(JOB, argv, clock)


if __name__ == "__main__":
    sys.exit(main())
