"""Bring the local stack up, down, or report on it (`make infra-up|infra-down|infra-status`)."""

from __future__ import annotations

import argparse
import sys

from loyalnest.allocator import JEMALLOC, JEMALLOC_PACKAGE, JEMALLOC_PATHS, find_jemalloc
from loyalnest.localstack.kafka import Kafka
from loyalnest.localstack.mongo import Mongo
from loyalnest.localstack.postgres import Postgres
from loyalnest.localstack.process import StackError, tail, wait_until
from loyalnest.localstack.redis_server import Redis
from loyalnest.localstack.registry import SchemaRegistry
from loyalnest.localstack.service import Service, StackPaths, ensure_apt
from loyalnest.settings import Settings

# Start order: the registry keeps its schemas in PostgreSQL.
SERVICE_TYPES: tuple[type[Service], ...] = (Postgres, Redis, Mongo, Kafka, SchemaRegistry)


def services(settings: Settings) -> list[Service]:
    paths = StackPaths(settings.data_dir.resolve())
    return [kind(settings, paths) for kind in SERVICE_TYPES]


def bring_up(service: Service) -> str:
    """Use what answers; otherwise install, start and wait for health."""
    if service.answers():
        return "running (ours)" if service.owned_pid() else "using existing server"
    service.install()
    service.start()
    if not wait_until(service.answers, timeout=service.start_timeout):
        raise StackError(
            f"{service.name} did not become healthy at {service.url} within "
            f"{service.start_timeout:.0f}s; last lines of {service.log_file}:\n"
            f"{tail(service.log_file)}"
        )
    return "started"


def ensure_flow_allocator(settings: Settings) -> None:
    """Install jemalloc for the flows (loyalnest/allocator.py) when they are to use it.

    Not having it is no reason to stop: the flows then run on glibc's malloc."""
    if settings.flow_allocator != JEMALLOC or find_jemalloc() is not None:
        return
    try:
        ensure_apt([JEMALLOC_PACKAGE], str(JEMALLOC_PATHS[0]))
    except StackError as exc:
        print(f"! flows will use glibc's malloc: {exc}", file=sys.stderr, flush=True)


def start_all(settings: Settings) -> list[Service]:
    """Bring every service up; return the ones this call started (raise StackError on failure)."""
    ensure_flow_allocator(settings)
    started = []
    for service in services(settings):
        try:
            state = bring_up(service)
        except StackError as exc:
            raise StackError(f"{service.name}: {exc}") from exc
        print(f"✓ {service.name:<9} {service.url:<45} {state}", flush=True)
        if state == "started":
            started.append(service)
    return started


def up(settings: Settings) -> int:
    try:
        start_all(settings)
    except StackError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    return 0


def down(settings: Settings, only: list[str] | None = None) -> int:
    for service in reversed(services(settings)):
        if only and service.name not in only:
            continue
        stopped = service.stop()
        print(f"{service.name:<9} {'stopped' if stopped else 'not started by us'}")
    return 0


def status(settings: Settings) -> int:
    healthy = True
    for service in services(settings):
        answers = service.answers()
        healthy &= answers
        pid = service.owned_pid()
        owner = f"ours, pid {pid}" if pid else "external" if answers else "-"
        state = "up" if answers else "down"
        print(f"{service.name:<9} {state:<5} {service.url:<45} {owner}")
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loyalnest.localstack")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--only",
        action="append",
        metavar="SERVICE",
        help="with down: stop only this service (repeatable)",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "down":
        return down(settings, args.only)
    return up(settings) if args.command == "up" else status(settings)
