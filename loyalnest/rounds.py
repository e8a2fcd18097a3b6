"""What the round-based jobs share (the clock, the RFM rounds): the command line, the loop,
and producing onto a queue that may be full.

A job runs one round at a time, each as of a time its caller gives (`--at` for a past moment,
`--once` for now), or rounds forever every `interval` seconds until SIGINT or SIGTERM; the
round under way finishes first. A round that fails ends the job, and the supervisor restarts it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pymongo
from confluent_kafka import KafkaError, Message
from pymongo.database import Database

from loyalnest import logs
from loyalnest.liveness import Liveness, serve_health
from loyalnest.settings import Settings

Clock = Callable[[], datetime]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class TickProducer(Protocol):
    """What the job needs of confluent-kafka's Producer (tests pass a fake)."""

    def produce(
        self, topic: str, *, value: bytes, key: bytes, on_delivery: DeliveryCallback
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(at: datetime) -> datetime:
    """An aware time, in UTC; a naive one is refused (which time would it be?)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"the clock needs a timezone-aware time, got {at.isoformat()}")
    return at.astimezone(UTC)


def iso_time(text: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time with offset, e.g. 2026-03-01T00:00:00Z: {exc}"
        ) from exc


def round_args(prog: str, description: str | None, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--once", action="store_true", help="one round now, then exit")
    parser.add_argument(
        "--at", type=iso_time, help="one round as of this time (implies --once), then exit"
    )
    return parser.parse_args(argv)


def refused_future(args: argparse.Namespace, clock: Clock) -> bool:
    """Time only moves forward in the flows: a round in the future is refused, loudly."""
    if args.at is not None and args.at > clock():
        print(f"--at {args.at.isoformat()} is in the future; refused", file=sys.stderr)
        return True
    return False


@dataclass(frozen=True)
class RoundJob:
    """What makes one round job: its name (as the registry names it), its command line, how
    it builds its round function, and how often it runs one."""

    name: str
    prog: str
    description: str | None
    build: Callable[[Settings, Database[Any]], Callable[[datetime], object]]
    interval: Callable[[Settings], float]


def run_job(job: RoundJob, argv: list[str] | None, clock: Clock) -> int:
    """A round job's `main`: its command line, settings and logging, a MongoDB client (times
    read as aware UTC), then one round or rounds forever; running forever, it serves its health
    on ROUND_HEALTH_PORT when that is set (loyalnest/liveness.py)."""
    args = round_args(job.prog, job.description, argv)
    if refused_future(args, clock):
        return 2
    settings = Settings()
    logs.configure_job(settings)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo_url, tz_aware=True
    )
    try:
        run_round = job.build(settings, client[settings.mongo_database])
        if args.at is not None or args.once:
            run_round(args.at or clock())
        else:
            serve(settings, job.name, run_round, clock, job.interval(settings))
        return 0
    finally:
        client.close()


def serve(
    settings: Settings,
    name: str,
    run_round: Callable[[datetime], object],
    clock: Clock,
    interval: float,
) -> None:
    """Rounds until a stop signal, with the health server when a port is configured."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())  # the round under way finishes first
    liveness = Liveness(name, interval)
    port = settings.round_health_port
    # The API's listen address: 127.0.0.1 locally, all interfaces in a pod (its probes).
    server = None if port is None else serve_health(settings.api_host, port, liveness)
    try:
        run_forever(run_round, clock, interval, stop, liveness.beat)
    finally:
        if server is not None:
            server.shutdown()


def run_forever(
    run_round: Callable[[datetime], object],
    clock: Clock,
    interval: float,
    stop: threading.Event,
    finished: Callable[[], None] = lambda: None,
) -> None:
    """A round every `interval` seconds (measured start to start) until `stop` is set;
    `finished` is told of each round that ended."""
    while not stop.is_set():
        started = time.monotonic()
        run_round(clock())
        finished()
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
