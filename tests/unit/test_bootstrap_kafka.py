"""Aligning topic settings when the broker does not know a just-created topic yet."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from loyalnest.bootstrap.kafka import align_topic_configs
from loyalnest.topics import TopicSpec

SPEC = (TopicSpec("t", {"max.message.bytes": "2097152"}),)


@dataclass
class Entry:
    value: str | None


@dataclass
class FakeAdmin:
    """Describes topic `t` as unknown `unknown_for` times, then with a smaller record limit."""

    unknown_for: int
    error: int = KafkaError.UNKNOWN_TOPIC_OR_PART
    altered: list[Any] = field(default_factory=list)

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, Any]:
        out = {}
        for resource in resources:
            future: Future[dict[str, Entry]] = Future()
            if self.unknown_for:
                self.unknown_for -= 1
                future.set_exception(KafkaException(KafkaError(self.error)))
            else:
                future.set_result({"max.message.bytes": Entry("1048588")})
            out[resource] = future
        return out

    def incremental_alter_configs(self, resources: list[Any], request_timeout: float) -> Any:
        self.altered.extend(resources)
        done: Future[None] = Future()
        done.set_result(None)
        return dict.fromkeys(resources, done)


def test_a_topic_the_broker_does_not_know_yet_is_described_again() -> None:
    admin, waits = FakeAdmin(unknown_for=2), list[float]()

    changed = align_topic_configs(admin, SPEC, wait=waits.append)  # type: ignore[arg-type]

    assert changed == ["t"]
    assert waits == [0.5, 0.5]
    assert len(admin.altered) == 1


def test_it_gives_up_after_its_attempts_and_other_errors_are_not_retried() -> None:
    with pytest.raises(KafkaException):
        align_topic_configs(FakeAdmin(unknown_for=3), SPEC, attempts=3, wait=lambda _: None)  # type: ignore[arg-type]
    waits = list[float]()
    with pytest.raises(KafkaException):
        align_topic_configs(
            FakeAdmin(unknown_for=1, error=KafkaError.TOPIC_AUTHORIZATION_FAILED),  # type: ignore[arg-type]
            SPEC,
            wait=waits.append,
        )
    assert waits == []


def test_nothing_to_align_asks_the_broker_nothing() -> None:
    admin = FakeAdmin(unknown_for=0)
    admin.describe_configs = None  # type: ignore[assignment,method-assign]  # must not be called

    assert align_topic_configs(admin, ()) == []  # type: ignore[arg-type]
