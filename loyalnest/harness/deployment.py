"""A private deployment on the shared local servers, removed again on exit.

Topics are prefixed, the MongoDB and PostgreSQL databases are fresh, and Redis keys share a
prefix, so concurrent tests and benchmarks never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

from loyalnest.bootstrap.isolated import isolated_copy
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalnest.settings import Settings


@dataclass
class Deployment:
    """Where one isolated run keeps its data; `environ()` points a child process at it."""

    settings: Settings
    prefix: str  # of every Kafka topic
    database: str  # MongoDB
    redis_prefix: str
    workdir: Path  # logs of the processes
    recovery: Path  # the recovery store of the flow it runs (a test may swap in a fresh one)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def environ(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "MONGO_DATABASE": self.database,
            "REDIS_KEY_PREFIX": self.redis_prefix,
            **extra,
        }


@contextmanager
def isolated_deployment(
    settings: Settings, kind: str, workdir: Path, partitions: int = 4
) -> Iterator[Deployment]:
    """Topics with their schemas, a MongoDB database with collections and translations, and a
    Redis key prefix, all named `kind` plus a random tag."""
    tag = uuid.uuid4().hex[:10]
    deployment = Deployment(
        settings,
        prefix=f"{kind}{tag}.",
        database=f"{kind}_{tag}",
        redis_prefix=f"{kind}_{tag}:",
        workdir=workdir,
        recovery=workdir / "recovery",
    )
    with isolated_copy(settings, deployment.prefix, deployment.database, partitions):
        try:
            yield deployment
        finally:
            _delete_redis_keys(settings.redis_url, deployment.redis_prefix)


def _delete_redis_keys(url: str, prefix: str) -> None:
    """Webhook deliveries are remembered for 24 h: without this, every run would leave its
    keys behind in the shared Redis."""
    client = redis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


@contextmanager
def fresh_postgres(settings: Settings, kind: str) -> Iterator[str]:
    """A new PostgreSQL database with the migrations applied; its URL. Dropped on exit."""
    name = f"{kind}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlsplit(settings.postgres_url)._replace(path=f"/{name}").geturl()
    try:
        with psycopg.connect(url) as conn:
            apply_migrations(conn, discover())
        yield url
    finally:
        with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
