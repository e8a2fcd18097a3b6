"""`python -m loyalnest.bootstrap`: topics, schemas, collections, indexes and migrations."""

from __future__ import annotations

import sys

import psycopg
import pymongo
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from loyalnest.bootstrap.kafka import align_topic_configs, ensure_topics, register_schemas
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalnest.bootstrap.mongo import apply_mongo_migrations, ensure_collections, seed_translations
from loyalnest.settings import Settings
from loyalnest.topics import prefixed


def bootstrap(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    topics = prefixed(settings.kafka_topic_prefix)
    created = ensure_topics(
        admin,
        topics,
        partitions=settings.kafka_topic_partitions,
        replication=settings.kafka_replication_factor,
    )
    # Topics just created have their spec's settings already.
    updated = align_topic_configs(admin, tuple(t for t in topics if t.name not in created))
    print(f"kafka     topics: {len(topics)} ({len(created)} created, {len(updated)} reconfigured)")
    with SchemaRegistryClient({"url": settings.schema_registry_url}) as registry:
        ids = register_schemas(registry, settings.kafka_topic_prefix)
    print(f"registry  schemas: {', '.join(f'{s}=#{i}' for s, i in ids.items())}")
    client: pymongo.MongoClient[dict[str, object]]
    with pymongo.MongoClient(settings.mongo_url) as client:
        collections = ensure_collections(client[settings.mongo_database])
        seed_translations(client[settings.mongo_database])
        migrated = apply_mongo_migrations(client[settings.mongo_database])
    print(f"mongo     collections and indexes ensured ({len(collections)} created)")
    for name, count in migrated.items():
        print(f"mongo     migration {name}: {count} documents")
    with psycopg.connect(settings.postgres_url) as conn:
        applied = apply_migrations(conn, discover())
    print(f"postgres  migrations: {len(applied)} applied")


def main() -> int:
    bootstrap(Settings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
