"""`loyalnest dlq` on the real Kafka: a listing filters dead letters, a dry run sends nothing,
a replay re-drives each selected dead letter once to the topic it came from (the original key,
value, headers and time, plus where it was re-driven from), and a second replay finds every
mark and re-drives nothing."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from connectors.dead_letters import DLQ_REASON, DLQ_REPLAYED_FROM, dead_letter
from connectors.kafka import SourceMessage
from loyalnest import dlq
from loyalnest.harness.deployment import Deployment, isolated_deployment
from loyalnest.settings import Settings
from loyalnest.topics import DLQ_REPLAYED, POINTS_DLQ, SHOPIFY_ORDERS
from tests.integration.points_harness import read_log

RECEIVED_MS = 1_777_000_000_000
UNKNOWN = "unknown merchant"


@pytest.fixture
def env(settings: Settings, admin: AdminClient, tmp_path: Path) -> Iterator[Deployment]:
    with isolated_deployment(settings, "dlq", tmp_path, partitions=2) as deployment:
        yield deployment


def originals(env: Deployment) -> list[SourceMessage]:
    """Order records as a flow read them: 20 of shop a, then 10 of shop b."""
    records: list[SourceMessage] = []
    for n in range(30):
        shop = b"a.myshopify.com" if n < 20 else b"b.myshopify.com"
        records.append(
            KafkaSourceMessage(
                key=f"order-{n}".encode(),
                value=f'{{"id": {n}}}'.encode(),
                topic=env.topic(SHOPIFY_ORDERS),
                headers=[("X-Shopify-Shop-Domain", shop), ("X-Shopify-Topic", b"orders/paid")],
                partition=n % 2,
                offset=n // 2,
                timestamp=(1, RECEIVED_MS + n),
            )
        )
    return records


def dead_letter_them(settings: Settings, env: Deployment) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for n, record in enumerate(originals(env)):
        reason = UNKNOWN if n < 20 else "not JSON"
        letter = dead_letter(record, reason, "points", "decode-order")
        producer.produce(
            env.topic(POINTS_DLQ),
            key=letter.key,
            value=letter.value,
            headers=list(letter.headers),
            partition=0,
        )
    assert producer.flush(30) == 0


def test_replay_re_drives_each_selected_dead_letter_once_to_where_it_came_from(
    settings: Settings, env: Deployment
) -> None:
    dead_letter_them(settings, env)
    s = settings.model_copy(update={"kafka_topic_prefix": env.prefix})
    orders = env.topic(SHOPIFY_ORDERS)
    unknown = dlq.Selection(reason=UNKNOWN)

    listing = io.StringIO()
    assert dlq.list_dead_letters(s, POINTS_DLQ, unknown, listing) == 20
    assert f"20  {UNKNOWN}" in listing.getvalue()
    assert (
        dlq.list_dead_letters(s, None, dlq.Selection(shop="b.myshopify.com"), io.StringIO()) == 10
    )

    dry = dlq.replay(s, None, unknown, dlq.ReplayOptions(dry_run=True), io.StringIO())
    assert (dry.selected, dry.redriven) == (20, 0)
    assert list(read_log(s, orders)) == []
    assert list(read_log(s, env.topic(DLQ_REPLAYED))) == []

    first = dlq.replay(s, None, unknown, dlq.ReplayOptions(), io.StringIO())
    assert first.document() == {
        "selected": 20,
        "already_replayed": 0,
        "redriven": 20,
        "to": {orders: 20},
    }
    sent = {m.key: m for m in read_log(s, orders)}
    for n, original in enumerate(originals(env)[:20]):
        redrive = sent[original.key]
        assert redrive.value == original.value
        assert redrive.timestamp == (1, RECEIVED_MS + n), "re-driven at its original time"
        headers = dict(redrive.headers)
        assert headers["X-Shopify-Shop-Domain"] == b"a.myshopify.com"
        assert headers[DLQ_REPLAYED_FROM] == f"{env.topic(POINTS_DLQ)}/0/{n}".encode()
        assert DLQ_REASON not in headers

    again = dlq.replay(s, None, unknown, dlq.ReplayOptions(), io.StringIO())
    assert (again.selected, again.already, again.redriven) == (20, 20, 0)
    rest = dlq.replay(s, POINTS_DLQ, dlq.Selection(), dlq.ReplayOptions(rate=1_000), io.StringIO())
    assert (rest.selected, rest.already, rest.redriven) == (30, 20, 10)
    assert len(list(read_log(s, orders))) == 30
    assert len(list(read_log(s, env.topic(DLQ_REPLAYED)))) == 30
