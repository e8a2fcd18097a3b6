"""The API as several processes (API_WORKERS=2) on the real stack: both workers serve the same
ports, /metrics adds up every worker's counts whichever answers, gRPC answers, SIGTERM stops
them all cleanly, and a worker that dies takes the API down rather than leaving it half up."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import ApiProcess, wait_until
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_VIEW

pytestmark = pytest.mark.integration

SHOP = Shop("api-workers.myshopify.com", "api-workers-secret", Decimal(1))
WORKERS = 2
TIMEOUT = 60.0
COUNT = 'loyalnest_http_request_duration_seconds_count{method="GET",route="/v1/tiers",status="200"}'


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    with isolated_deployment(settings, "apiworkers", tmp_path) as deployment:
        yield deployment


@pytest.fixture
def api(settings: Settings, env: Deployment, tmp_path: Path) -> Iterator[ApiProcess]:
    with fresh_postgres(settings, "apiworkers") as postgres_url:
        add_merchants(postgres_url, SHOP)
        api = ApiProcess(
            env,
            postgres_url,
            tmp_path / "api.log",
            API_WORKERS=str(WORKERS),
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        )
        try:
            api.wait_healthy()
            yield api
        finally:
            api.stop()


def read_tiers(api: ApiProcess) -> None:
    """One request on a new connection: the kernel picks the worker that takes it."""
    reply = httpx.get(f"{api.url}/v1/tiers", headers=SHOP.auth(SCOPE_VIEW), timeout=10)
    assert reply.status_code == 200, reply.text


def counted(api: ApiProcess) -> float:
    for line in httpx.get(f"{api.url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == COUNT:
            return float(value)
    return 0.0


def test_workers_share_the_ports_and_metrics_add_up(api: ApiProcess, tmp_path: Path) -> None:
    workers = api.child_pids()
    assert len(workers) == WORKERS
    sent = 0

    def every_worker_served() -> bool:
        nonlocal sent
        read_tiers(api)
        sent += 1
        # A worker's histogram file appears with the first request it times.
        return all((tmp_path / "metrics" / f"histogram_{pid}.db").exists() for pid in workers)

    wait_until(every_worker_served, TIMEOUT, "a request served by each worker", api, 0)
    for _ in range(20):
        read_tiers(api)
    sent += 20
    assert [counted(api) for _ in range(10)] == [sent] * 10  # whichever worker answers

    with grpc.insecure_channel(api.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    api.stop()
    assert api.proc.returncode == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_dead_worker_takes_the_api_down(api: ApiProcess) -> None:
    victim, other = api.child_pids()
    os.kill(victim, signal.SIGKILL)
    assert api.proc.wait(TIMEOUT) != 0
    wait_until(lambda: not Path(f"/proc/{other}").exists(), TIMEOUT, "the other worker to stop")
