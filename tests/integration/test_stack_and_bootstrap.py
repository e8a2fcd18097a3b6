"""The local stack answers, and the bootstrap steps are safe to run twice."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource

from loyalnest.bootstrap.kafka import align_topic_configs, ensure_topics
from loyalnest.localstack.stack import services, status
from loyalnest.settings import Settings
from loyalnest.topics import TOPICS, TopicSpec


def test_every_configured_server_answers(settings: Settings) -> None:
    down = [s.name for s in services(settings) if not s.answers()]
    assert down == []
    assert status(settings) == 0


def test_ensure_topics_creates_missing_topics_once(settings: Settings, admin: AdminClient) -> None:
    specs = (TopicSpec(f"boot.{uuid.uuid4().hex[:10]}", {"retention.ms": "-1"}),)
    try:
        first = ensure_topics(admin, specs, partitions=3, replication=1)
        second = ensure_topics(admin, specs, partitions=3, replication=1)
        metadata = admin.list_topics(specs[0].name, timeout=10).topics[specs[0].name]
    finally:
        for future in admin.delete_topics([specs[0].name]).values():
            future.result(30)

    assert first == [specs[0].name]
    assert second == []
    assert len(metadata.partitions) == 3


def test_align_topic_configs_updates_an_existing_topic_once(admin: AdminClient) -> None:
    name = f"boot.{uuid.uuid4().hex[:10]}"
    old = (TopicSpec(name, {"retention.ms": "-1"}),)
    new = (TopicSpec(name, {"retention.ms": "-1", "max.message.bytes": "2097152"}),)
    try:
        ensure_topics(admin, old, partitions=1, replication=1)
        first = align_topic_configs(admin, new)
        second = align_topic_configs(admin, new)
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        configs = admin.describe_configs([resource])[resource].result(10)
    finally:
        for future in admin.delete_topics([name]).values():
            future.result(30)

    assert (first, second) == ([name], [])
    assert configs["max.message.bytes"].value == "2097152"
    assert configs["retention.ms"].value == "-1"


@pytest.mark.parametrize("name", ["shopify.orders", "points.dlq"])
def test_bootstrap_created_the_system_topics(admin: AdminClient, name: str) -> None:
    assert name in admin.list_topics(timeout=10).topics


@pytest.mark.parametrize("spec", TOPICS, ids=lambda s: s.name)
def test_bootstrap_gave_every_system_topic_its_configs(
    settings: Settings, admin: AdminClient, spec: TopicSpec
) -> None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.topic(spec.name))
    configs = admin.describe_configs([resource])[resource].result(30)

    assert {k: configs[k].value for k in spec.config} == spec.config
