"""The points flow with Kafka-only outputs, for the scaling benchmark (`bench/scaling.py`).

Both stages run as in production: orders in, change commands out and back in, every ledger
entry decided and its `points.earned` event Avro-encoded and produced. Only the store writes
(ledger, balances, cache) are dropped, so the test store's single core does not set the pace:
what is measured is the flow's own throughput.
"""

from __future__ import annotations

from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.points import wired
from loyalnest.settings import Settings


class _Dropped(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        del items


class Dropped(DynamicSink[Any]):
    """A sink that writes nothing."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Dropped:
        return _Dropped()


def flow() -> Dataflow:
    return wired(Settings(), ledger=Dropped(), cache=Dropped())
