"""`loyalnest dlq` on the real Kafka: a listing filters dead letters, a dry run sends nothing,
a replay re-drives each selected dead letter once to the topic it came from (the original key,
value, headers and time, plus where it was re-driven from), and a second replay finds every
mark and re-drives nothing."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from connectors.dead_letters import DLQ_ATTEMPT, DLQ_REASON, DLQ_REPLAYED_FROM, dead_letter
from connectors.kafka import SinkMessage, SourceMessage
from connectors.shopify import encode_body, kafka_headers, partition_key
from connectors.store import BALANCES, LEDGER
from loyalnest import dlq
from loyalnest.harness.deployment import Deployment, isolated_deployment
from loyalnest.harness.processes import FlowProcess, wait_until
from loyalnest.samples import sample_orders
from loyalnest.settings import Settings
from loyalnest.topics import DLQ_REPLAYED, POINTS_DLQ, POINTS_REPLAY, SHOPIFY_ORDERS
from loyalty.policy import Policy
from tests.integration.points_harness import read_log
from tests.integration.test_points_flow import balances_caught_up

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


# ----------------------------------------------------------- end to end, through the flow

SHOP = "redrive.myshopify.com"
OTHER_SHOP = "redrive-elsewhere.myshopify.com"
REFUSED = "unsupported webhook version"  # as if an earlier release had refused them


def order_records(env: Deployment) -> list[SourceMessage]:
    """Valid paid orders as the API produces them, each with its own receive time: 40 of one
    shop's 8 customers, then one of another shop (whose dead letter names no known origin)."""
    hooks = [
        *sample_orders(SHOP, 40, customers=8, seed=3),
        *sample_orders(OTHER_SHOP, 1, customers=1, seed=4, first_order_id=9_000_000),
    ]
    records: list[SourceMessage] = []
    for n, hook in enumerate(hooks):
        records.append(
            KafkaSourceMessage(
                key=partition_key(hook.shop, hook.topic, hook.body),
                value=encode_body(hook.body),
                topic=env.topic(SHOPIFY_ORDERS),
                headers=[
                    (k, v if isinstance(v, bytes) else str(v).encode())
                    for k, v in kafka_headers(hook.headers, f"corr-{n}", Policy())
                ],
                partition=0,
                offset=n,
                timestamp=(1, RECEIVED_MS + 60_000 * n),
            )
        )
    return records


def produce_at_their_time(settings: Settings, topic: str, records: list[SourceMessage]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for r in records:
        assert r.timestamp is not None
        producer.produce(
            topic, key=r.key, value=r.value, headers=list(r.headers), timestamp=r.timestamp[1]
        )
    assert producer.flush(30) == 0


def documents(settings: Settings, env: Deployment) -> dict[str, list[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    try:
        db = client[env.database]
        return {
            name: sorted(db[name].find(), key=lambda d: str(d["_id"]))
            for name in (BALANCES, LEDGER)
        }
    finally:
        client.close()


def run_flow_until(
    settings: Settings,
    env: Deployment,
    entries: int,
    act: Any = None,
    also: Callable[[], bool] | None = None,
) -> None:
    """The flow until the ledger holds `entries`, every balance shows its last entry (the
    balances are written apart from the ledger) and `also` holds."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    flow = FlowProcess(env, env.workdir / "flow.log")
    try:
        if act is not None:
            act()
        db = client[env.database]

        def settled() -> bool:
            ledger = db[LEDGER].count_documents({})
            return ledger >= entries and balances_caught_up(db, ledger) and (also is None or also())

        wait_until(settled, 120, "every earn and balance (and `also`)", flow, 0.25)
    finally:
        flow.stop()
        client.close()


def test_re_driven_orders_end_as_if_they_had_been_valid_the_first_time(
    settings: Settings, tmp_path: Path
) -> None:
    # One partition each: a customer's orders are then applied in the same order in both runs
    # (on several, their order depends on how the partitions interleave, in any two runs).
    with isolated_deployment(settings, "dlqa", tmp_path / "a", partitions=1) as straight:
        produce_at_their_time(settings, straight.topic(SHOPIFY_ORDERS), order_records(straight))
        run_flow_until(settings, straight, 41)
        expected = documents(settings, straight)

    with isolated_deployment(settings, "dlqb", tmp_path / "b", partitions=1) as env:
        s = settings.model_copy(update={"kafka_topic_prefix": env.prefix})
        records = order_records(env)
        bad: SourceMessage = KafkaSourceMessage(
            key=b"bad",
            value=b"{",
            topic=env.topic(SHOPIFY_ORDERS),
            headers=[],
            partition=0,
            offset=len(records),
            timestamp=(1, RECEIVED_MS),
        )
        *ours, lost = records
        # The last one came from a topic no flow reads (an old integration): to points.replay.
        lost = dataclasses.replace(lost, topic="legacy.orders")
        letters = [dead_letter(r, REFUSED, "points", "decode-order") for r in (*ours, lost)]
        letters.append(dead_letter(bad, "not JSON", "points", "decode-order"))
        produce_raw_letters(settings, env.topic(POINTS_DLQ), letters)

        report: list[dlq.ReplayReport] = []
        everything = dlq.Selection()

        def replay_all() -> None:
            report.append(dlq.replay(s, None, everything, dlq.ReplayOptions(), io.StringIO()))

        def failed_again() -> list[dict[str, bytes]]:
            return [dict(m.headers) for m in read_log(s, env.topic(POINTS_DLQ)) if m.key == b"bad"]

        # The bad record, re-driven, fails again: the flow writes its second dead letter.
        run_flow_until(
            settings,
            env,
            41,
            replay_all,
            lambda: any(h.get(DLQ_ATTEMPT) == b"2" for h in failed_again()),
        )
        assert report[0].document()["to"] == {
            env.topic(SHOPIFY_ORDERS): 41,  # the 40 and the bad one
            env.topic(POINTS_REPLAY): 1,
        }
        assert documents(settings, env) == expected, "as if valid the first time"

        again = dlq.replay(
            s, None, dlq.Selection(reason=REFUSED), dlq.ReplayOptions(), io.StringIO()
        )
        assert (again.selected, again.already, again.redriven) == (41, 41, 0)
        assert [h[DLQ_ATTEMPT] for h in failed_again()] == [b"1", b"2"]
        # Left out once it has failed twice: nothing is left to re-drive.
        capped = dlq.replay(
            s, None, dlq.Selection(max_attempt=1), dlq.ReplayOptions(), io.StringIO()
        )
        assert (capped.selected, capped.already, capped.redriven) == (42, 42, 0)
        assert documents(settings, env) == expected


def produce_raw_letters(settings: Settings, topic: str, letters: list[SinkMessage]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for letter in letters:
        producer.produce(topic, key=letter.key, value=letter.value, headers=list(letter.headers))
    assert producer.flush(30) == 0
