"""Fixtures for tests against the real local stack (`make infra-up`).

Every test gets fresh names (topic, database, key prefix) so tests never see each other's data.
Nothing here skips: if a server does not answer, the test fails and says which one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymongo
import pytest
import redis
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from psycopg import sql
from pymongo.database import Database

from loyalnest.harness.deployment import Deployment, isolated_deployment
from loyalnest.settings import Settings

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def admin(settings: Settings) -> AdminClient:
    client = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    try:
        client.list_topics(timeout=10)
    except Exception as exc:
        pytest.fail(
            f"Kafka at {settings.kafka_bootstrap_servers} does not answer "
            f"(run `make infra-up`): {exc}"
        )
    return client


@pytest.fixture
def make_topic(admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Create fresh topics for this test; delete them afterwards."""
    created: list[str] = []

    def make(prefix: str = "test", partitions: int = 1) -> str:
        name = unique(prefix).replace("_", ".")
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
            name
        ].result(30)
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created).values():
            future.result(30)


@pytest.fixture
def mongo_db(settings: Settings) -> Iterator[Database[Any]]:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=5000
    )
    name = unique("test")
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def pg_url(settings: Settings) -> Iterator[str]:
    """A fresh, empty PostgreSQL database; its URL."""
    name = unique("test")
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlsplit(settings.postgres_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client: redis.Redis) -> Iterator[str]:
    prefix = unique("test") + ":"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def registry(settings: Settings) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": settings.schema_registry_url}) as client:
        yield client


@pytest.fixture
def rfm_env(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    """A private deployment for the RFM flow's tests (tests/integration/rfm_harness.py)."""
    with isolated_deployment(settings, "rfm", tmp_path) as deployment:
        yield deployment


@pytest.fixture
def tz_mongo(settings: Settings) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    """A MongoDB client that reads times as aware UTC datetimes."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo_url, tz_aware=True
    )
    yield client
    client.close()


@pytest.fixture
def rfm_db(tz_mongo: pymongo.MongoClient[dict[str, Any]], rfm_env: Deployment) -> Database[Any]:
    return tz_mongo[rfm_env.database]


@pytest.fixture
def points_env(settings: Settings, admin: AdminClient, tmp_path: Path) -> Iterator[Deployment]:
    """A private deployment for the points flow's tests (tests/integration/points_harness.py)."""
    with isolated_deployment(settings, "test", tmp_path) as env:
        yield env


@pytest.fixture
def db(settings: Settings, points_env: Deployment) -> Iterator[Database[Any]]:
    """The points deployment's database (a module whose flow runs elsewhere defines its own)."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    yield client[points_env.database]
    client.close()
