"""A private copy of the system's topics, schemas and collections, for one test or benchmark.

Topics are prefixed and the MongoDB database is named by the caller, so runs sharing the same
servers never see each other's data; everything is removed on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymongo
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from loyalnest.bootstrap.kafka import ensure_topics, register_schemas
from loyalnest.bootstrap.mongo import ensure_collections, seed_translations
from loyalnest.settings import Settings
from loyalnest.topics import prefixed


@contextmanager
def isolated_copy(
    settings: Settings, prefix: str, database: str, partitions: int = 4
) -> Iterator[None]:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    topics = prefixed(prefix)
    ensure_topics(admin, topics, partitions=partitions, replication=1)
    with SchemaRegistryClient({"url": settings.schema_registry_url}) as registry:
        register_schemas(registry, prefix)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    ensure_collections(client[database])
    seed_translations(client[database])
    try:
        yield
    finally:
        client.drop_database(database)
        client.close()
        for future in admin.delete_topics([t.name for t in topics]).values():
            future.result(60)
