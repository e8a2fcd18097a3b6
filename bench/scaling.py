"""Scale-out: the points flow's own throughput as a cluster of 1 and of 2 processes.

The same orders (each a paid order of its own customer: one earn, one ledger entry, one
`points.earned` event per order) are produced to a fresh deployment for each size, and the
flow runs with Kafka-only outputs (`bench/scale_flow.py`): store writes are dropped, so the
test store's one core does not set the pace. The rate is the steady one, from the tenth to the
ninetieth percent of the `points.earned` events (read from the topic's end offsets), so
start-up and drain are left out; the CPU is every flow process's, over the same window. The
ratio: the 2-process rate over the 1-process one.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from bench.pipeline import produce_orders
from bench.proc import cpu_seconds
from bench.report import Targets
from bench.stackenv import bench_env
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.processes import ChildProcess, flow_cluster_job, wait_until
from loyalnest.settings import Settings
from loyalnest.topics import POINTS_EARNED

TARGET = "bench.scale_flow:flow()"
PARTITIONS = 4
SIZES = (1, 2)
# No target: the ratio depends on the cores beside the flow (README, "Scaling").
TARGETS: Targets = {}


@dataclass
class Events:
    """Counts `points.earned` records by the topic's end offsets, noting when (and at what
    CPU reading, of every flow process) the first tenth and nine tenths had appeared: the
    window the steady rate is read over (the first events wait for a whole first batch to go
    through both stages, the last ones for the last to drain)."""

    consumer: Consumer
    topic: str
    expected: int
    cpu: Callable[[], float]
    first: float | None = None
    last: float | None = None
    cpu_first: float = 0.0
    cpu_last: float = 0.0

    def count(self) -> int:
        total = 0
        for partition in range(PARTITIONS):
            _low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=5
            )
            total += high
        return total

    def done(self) -> bool:
        seen, now = self.count(), time.perf_counter()
        if seen >= self.expected // 10 and self.first is None:
            self.first, self.cpu_first = now, self.cpu()
        if seen >= self.expected * 9 // 10 and self.last is None:
            self.last, self.cpu_last = now, self.cpu()
        return seen >= self.expected


def run_cluster(env: Deployment, processes: int, orders: int) -> dict[str, float]:
    job = flow_cluster_job(
        env, processes, target=TARGET, snapshot_seconds=5, recovery_partitions=PARTITIONS
    )
    # Only its end-offset queries are used: the group is never joined.
    consumer = Consumer(
        {"bootstrap.servers": env.settings.kafka_bootstrap_servers, "group.id": "bench-scaling"}
    )
    children = [
        ChildProcess(p.argv, p.env, env.workdir / f"flow-{k}.log", signal.SIGINT)
        for k, p in enumerate(job.processes)
    ]
    events = Events(
        consumer,
        env.topic(POINTS_EARNED),
        orders,
        lambda: sum(cpu_seconds(child.pid) for child in children),
    )
    started = time.perf_counter()
    try:
        wait_until(events.done, 1800, "every points.earned event", children[0], 0.25)
        ended = time.perf_counter()
    finally:
        for child in children:
            child.stop()
        consumer.close()
    assert events.first is not None
    assert events.last is not None
    steady = orders * 9 // 10 - orders // 10
    return {
        f"orders_per_s_{processes}p": steady / (events.last - events.first),
        f"orders_per_s_with_startup_{processes}p": orders / (ended - started),
        f"cpu_s_per_1k_orders_{processes}p": (events.cpu_last - events.cpu_first) * 1000 / steady,
    }


def measure(settings: Settings, orders: int) -> dict[str, float]:
    figures: dict[str, float] = {"orders": orders}
    for processes in SIZES:
        with bench_env(settings, PARTITIONS) as env:
            produce_orders(env, orders)
            figures |= run_cluster(env, processes, orders)
    figures["scaling_ratio_2p_vs_1p"] = figures["orders_per_s_2p"] / figures["orders_per_s_1p"]
    return figures
