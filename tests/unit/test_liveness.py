"""A round job's health: fresh while rounds keep finishing, stalled once none has for a while."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from loyalnest.harness.processes import free_port
from loyalnest.liveness import MIN_STALE_SECONDS, STALE_INTERVALS, Liveness, serve_health
from loyalnest.rounds import run_forever
from loyalnest.settings import Settings
from loyalnest.supervisor import default_jobs


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_job_just_started_is_fresh() -> None:
    status, body = Liveness("clock", 60.0, ManualClock()).report()

    assert status == 200
    assert body == {
        "status": "ok",
        "job": "clock",
        "seconds_since_last_round": 0.0,
        "stale_after_seconds": STALE_INTERVALS * 60.0,
    }


@pytest.mark.parametrize(
    ("interval", "stale_after"),
    [(60.0, STALE_INTERVALS * 60.0), (5.0, MIN_STALE_SECONDS), (1.0, MIN_STALE_SECONDS)],
)
def test_a_job_is_stalled_once_no_round_finished_for_its_stale_time(
    interval: float, stale_after: float
) -> None:
    clock = ManualClock()
    liveness = Liveness("clock", interval, clock)

    clock.now += stale_after
    assert liveness.report()[0] == 200  # at the limit: still fresh
    clock.now += 0.5
    status, body = liveness.report()
    assert (status, body["status"]) == (503, "stalled")
    assert body["seconds_since_last_round"] == stale_after + 0.5


def test_a_finished_round_makes_a_stalled_job_fresh_again() -> None:
    clock = ManualClock()
    liveness = Liveness("rfm-rounds", 5.0, clock)
    clock.now += 1_000.0
    assert liveness.report()[0] == 503

    liveness.beat()

    assert liveness.report() == (
        200,
        {
            "status": "ok",
            "job": "rfm-rounds",
            "seconds_since_last_round": 0.0,
            "stale_after_seconds": MIN_STALE_SECONDS,
        },
    )


def test_run_forever_tells_of_each_round_once_it_ended() -> None:
    stop, events = threading.Event(), []
    times = iter(datetime(2026, 3, 1, hour, tzinfo=UTC) for hour in range(3))

    def run_round(at: datetime) -> None:
        events.append(f"round {at.hour}")
        if at.hour == 2:
            stop.set()

    run_forever(run_round, lambda: next(times), 0.0, stop, lambda: events.append("finished"))

    assert events == ["round 0", "finished", "round 1", "finished", "round 2", "finished"]


@pytest.fixture
def served() -> Iterator[tuple[str, ManualClock, Liveness]]:
    clock, port = ManualClock(), free_port()
    liveness = Liveness("clock", 60.0, clock)
    server = serve_health("127.0.0.1", port, liveness)
    try:
        yield f"http://127.0.0.1:{port}", clock, liveness
    finally:
        server.shutdown()
        server.server_close()


def test_health_is_served_over_http_as_the_report_says(
    served: tuple[str, ManualClock, Liveness],
) -> None:
    url, clock, liveness = served

    fresh = httpx.get(f"{url}/health")
    clock.now += 10_000.0
    stalled = httpx.get(f"{url}/health")

    assert (fresh.status_code, fresh.json()["status"]) == (200, "ok")
    assert (stalled.status_code, json.loads(stalled.content)) == liveness.report()


def test_metrics_are_served_with_the_time_of_the_last_round(
    served: tuple[str, ManualClock, Liveness],
) -> None:
    url, _, liveness = served
    liveness.beat()

    metrics = httpx.get(f"{url}/metrics")

    assert metrics.status_code == 200
    assert 'loyalnest_round_last_completed_timestamp_seconds{round="clock"}' in metrics.text
    assert httpx.get(f"{url}/elsewhere").status_code == 404


def test_the_supervisor_gives_each_round_job_its_own_health_port() -> None:
    settings = Settings(_env_file=None, FLOW_API_PORT=4000)
    jobs = {job.name: job for job in default_jobs(settings)}

    for name, port in (("clock", 4006), ("rfm-rounds", 4007)):
        assert jobs[name].env == {"ROUND_HEALTH_PORT": str(port)}
        assert jobs[name].health_url == f"http://127.0.0.1:{port}/health"
    ports = [job.health_url for job in jobs.values() if job.health_url is not None]
    assert len(ports) == len(set(ports))  # no two jobs on one port
