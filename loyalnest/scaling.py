"""How many processes each flow runs as, and changing it (`loyalnest flows scale FLOW N`).

A flow is a Bytewax cluster of N processes with one worker each. N comes from, first to last:
the count `flows scale` recorded in the data directory (`flows/<flow>/processes`), the flow's
entry in FLOW_PROCESSES_BY_FLOW, FLOW_PROCESSES. A cluster cannot change size while it runs:
the supervisor stops the flow cleanly (a last snapshot), and starts it again with the new N,
resuming from its recovery store. N can grow up to the partitions of the flow's input topics
(KAFKA_TOPIC_PARTITIONS, as bootstrap creates them) and of its recovery store, both fixed when
they are created: a process beyond them would have nothing to read.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from loyalnest.settings import Settings

PROCESSES_FILE = "processes"


class ScaleError(ValueError):
    """A process count the flow cannot run with; the message says why."""


def processes_file(settings: Settings, flow: str) -> Path:
    return settings.data_dir.resolve() / "flows" / flow / PROCESSES_FILE


def processes_for(settings: Settings, flow: str) -> int:
    """The process count the flow runs with now."""
    recorded = processes_file(settings, flow)
    if recorded.exists():
        return int(recorded.read_text().strip())
    return settings.flow_processes_by_flow.get(flow, settings.flow_processes)


def recovery_partitions(settings: Settings, flow: str) -> int:
    """The partitions of the flow's recovery store (settings' count before it exists)."""
    store = settings.data_dir.resolve() / "recovery" / flow
    parts = list(store.glob("part-*.sqlite3")) if store.is_dir() else []
    return len(parts) or settings.flow_recovery_partitions


def check_processes(settings: Settings, flow: str, processes: int) -> None:
    if processes < 1:
        raise ScaleError(f"{flow}: the process count must be at least 1, not {processes}")
    limits = {
        "input topic partitions (KAFKA_TOPIC_PARTITIONS)": settings.kafka_topic_partitions,
        "recovery store partitions": recovery_partitions(settings, flow),
    }
    for what, limit in limits.items():
        if processes > limit:
            raise ScaleError(
                f"{flow}: {processes} processes, but only {limit} {what}; a process past "
                "them would read nothing (README, Scaling)"
            )


@dataclass(frozen=True)
class Scaled:
    flow: str
    before: int
    after: int


def scale(settings: Settings, flow: str, processes: int, supervisor_pid: int | None) -> Scaled:
    """Record the flow's new process count, then tell a running supervisor (SIGHUP), which
    stops the flow and starts it again with that many processes, from its recovery store."""
    check_processes(settings, flow, processes)
    before = processes_for(settings, flow)
    target = processes_file(settings, flow)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_suffix(".new")
    staged.write_text(f"{processes}\n")
    staged.replace(target)  # a supervisor reading it sees the old count or the new one
    if supervisor_pid is not None:
        os.kill(supervisor_pid, signal.SIGHUP)
    return Scaled(flow, before, processes)
