"""Kafka topics and the Avro schemas registered for them."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.cimpl import NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from loyalnest.schemas import TOPIC_SCHEMAS, schema_text, value_subject
from loyalnest.topics import TopicSpec

COMPATIBILITY = "BACKWARD"


def ensure_topics(
    admin: AdminClient,
    topics: tuple[TopicSpec, ...],
    *,
    partitions: int,
    replication: int,
    timeout: float = 30,
) -> list[str]:
    """Create the topics that do not exist yet; return their names."""
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(t.name, num_partitions=partitions, replication_factor=replication, config=t.config)
        for t in topics
        if t.name not in existing
    ]
    if not new:
        return []
    created = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            # It exists after all: another bootstrap created it between our listing and our
            # request, or the broker's metadata had not caught up with a topic just created.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"creating topic {name}: {exc}") from exc
            continue
        created.append(name)
    return created


def align_topic_configs(
    admin: AdminClient,
    topics: tuple[TopicSpec, ...],
    *,
    timeout: float = 30,
    attempts: int = 10,
    wait: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Give existing topics the settings their spec asks for (e.g. a topic created by an older
    version with a smaller record limit); return the names of the topics changed.

    A topic created a moment ago may be unknown to the broker answering for a while (its
    metadata catches up): such a description is asked for again, up to `attempts` times."""
    wanted = {t.name: t.config for t in topics if t.config}
    changed = []
    for name, current in _describe(admin, list(wanted), timeout, attempts, wait).items():
        stale = {k: v for k, v in wanted[name].items() if current.get(k) != v}
        if stale:
            _set_configs(admin, name, stale, timeout)
            changed.append(name)
    return changed


def _describe(
    admin: AdminClient,
    names: list[str],
    timeout: float,
    attempts: int,
    wait: Callable[[float], None],
) -> dict[str, dict[str, str | None]]:
    """Each topic's current settings."""
    found: dict[str, dict[str, str | None]] = {}
    pending = names
    for attempt in range(attempts if names else 0):  # the client refuses an empty request
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in pending]
        unknown = []
        for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
            try:
                entries = future.result()
            except KafkaException as exc:
                last_try = attempt == attempts - 1
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or last_try:
                    raise
                unknown.append(resource.name)
                continue
            found[resource.name] = {key: entry.value for key, entry in entries.items()}
        if not unknown:
            break
        pending = unknown
        wait(0.5)
    return found


def _set_configs(admin: AdminClient, topic: str, configs: dict[str, str], timeout: float) -> None:
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource], request_timeout=timeout).values():
        future.result()


def register_schemas(client: SchemaRegistryClient, prefix: str = "") -> dict[str, int]:
    """Set BACKWARD compatibility and register each topic's value schema; return schema ids.

    Compatibility is set before registering, so an incompatible change to a file in `avro/`
    fails the bootstrap instead of silently becoming a new, breaking version.
    """
    ids = {}
    for topic in TOPIC_SCHEMAS:
        subject = value_subject(prefix + topic)
        client.set_compatibility(subject, COMPATIBILITY)
        ids[subject] = client.register_schema(subject, Schema(schema_text(topic), "AVRO"))
    return ids
