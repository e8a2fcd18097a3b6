"""Every long-running job besides the API, in one list: the supervisor (`make run`/`make up`),
the app's printout and the test and bench harness all read it.

Adding a flow is one line in JOBS. A flow is named by its Bytewax import string, never imported
here: the supervisor runs it as `python -m bytewax.run <target>` with a recovery store under
the data directory and the Bytewax dataflow API (`/metrics`, the health check) on
FLOW_API_PORT + `port_offset`. A job that is not a dataflow (a MODULE, e.g. a clock that
produces ticks) runs as `python -m <target>`, serving its health on FLOW_API_PORT + `port_offset`
when it has one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from loyalnest.settings import Settings


class Kind(enum.Enum):
    FLOW = "flow"  # python -m bytewax.run <target>, with recovery and the dataflow API
    MODULE = "module"  # python -m <target>


@dataclass(frozen=True)
class RegisteredJob:
    name: str  # the job's log, recovery store and files are named after it (kebab-case)
    kind: Kind
    target: str  # FLOW: "package.module:factory()"; MODULE: "package.module"
    # FLOW: its dataflow API on FLOW_API_PORT + this; MODULE: its health server, if any
    # (loyalnest/liveness.py), on the same range.
    port_offset: int | None = None

    def port(self, settings: Settings) -> int | None:
        return None if self.port_offset is None else settings.flow_api_port + self.port_offset


def flow(name: str, target: str, port_offset: int) -> RegisteredJob:
    return RegisteredJob(name, Kind.FLOW, target, port_offset)


JOBS: tuple[RegisteredJob, ...] = (
    flow("points", "flows.points:flow()", 0),
    flow("order-archive", "flows.order_archive:flow()", 1),
    flow("rfm", "flows.rfm:flow()", 2),
    # Core's customers.rfm_score (PostgreSQL) from rfm.updated.
    flow("customers", "flows.customers:flow()", 3),
    # Referrals: codes, claims and verdicts through their own logs; rewards to points.commands.
    flow("referrals", "flows.referrals:flow()", 4),
    # VIP tiers: from order changes on points.commands; assignments and bonuses back to it.
    flow("tiers", "flows.tiers:flow()", 5),
    # Time as data: a points.tick per due customer every CLOCK_INTERVAL_SECONDS. Its health
    # says whether its rounds keep finishing.
    RegisteredJob("clock", Kind.MODULE, "loyalnest.clock", 6),
    # RFM: day ticks and the customers whose scores must follow, every RFM_ROUND_SECONDS.
    RegisteredJob("rfm-rounds", Kind.MODULE, "loyalnest.rfm_round", 7),
)


def flows() -> tuple[RegisteredJob, ...]:
    return tuple(job for job in JOBS if job.kind is Kind.FLOW)


def registered(name: str) -> RegisteredJob:
    for job in JOBS:
        if job.name == name:
            return job
    raise KeyError(f"no job {name!r} in loyalnest.registry (known: {_names()})")


def _names() -> str:
    return ", ".join(job.name for job in JOBS)
