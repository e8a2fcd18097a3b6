"""Where the benchmarks run: an isolated copy of the system on the shared local servers, with
the points flow and the API started as production starts them (`loyalnest.harness`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import ApiProcess, FlowProcess
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.settings import Settings

# API processes for the benches that measure the API at 1,000 req/s: one per core, as the
# README advises (API_WORKERS), unless BENCH_API_WORKERS says otherwise.
API_WORKERS = os.environ.get("BENCH_API_WORKERS", str(os.cpu_count() or 1))


@contextmanager
def bench_env(settings: Settings, partitions: int = 4) -> Iterator[Deployment]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    with isolated_deployment(settings, "bench", workdir, partitions) as env:
        yield env


def flow_process(env: Deployment, port: int) -> FlowProcess:
    """The points flow with production's snapshot interval; returns once its /metrics answer."""
    return FlowProcess(
        env,
        env.workdir / "flow.log",
        snapshot_seconds=5,
        recovery_partitions=1,
        workers=int(os.environ.get("BENCH_FLOW_WORKERS", "1")),
        api_port=port,
    )


def bench_shops(count: int) -> list[Shop]:
    """Merchants earning 1.5 points per unit, so the expected points need the floor rule."""
    return [
        Shop(f"bench-{n}.myshopify.com", f"bench-secret-{n}", Decimal("1.5")) for n in range(count)
    ]


@dataclass
class RunningApi:
    env: Deployment
    api: ApiProcess
    shops: list[Shop]
    flow: FlowProcess | None


@contextmanager
def running_api(
    settings: Settings,
    shops: list[Shop],
    *,
    flow_port: int | None = None,
    api_environ: dict[str, str] | None = None,
) -> Iterator[RunningApi]:
    """A deployment with `shops` registered and the API healthy; the points flow too when
    `flow_port` is given (its dataflow API port). `api_environ` overrides the API's settings."""
    with (
        bench_env(settings) as env,
        fresh_postgres(settings, "bench") as postgres_url,
        ExitStack() as running,
    ):
        add_merchants(postgres_url, *shops)
        flow = None
        if flow_port is not None:
            flow = flow_process(env, flow_port)
            running.callback(flow.stop)
        api = ApiProcess(env, postgres_url, env.workdir / "api.log", **(api_environ or {}))
        running.callback(api.stop)
        api.wait_healthy()
        yield RunningApi(env, api, shops, flow)
