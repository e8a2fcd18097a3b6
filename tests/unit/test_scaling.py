"""Flows as clusters of processes: how many, the cluster's command lines, and the supervisor
restarting a whole cluster when one of its processes exits or its size changes."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import pytest

from loyalnest import scaling
from loyalnest.settings import Settings
from loyalnest.supervisor import Backoff, Job, Process, Supervisor, default_jobs
from tests.unit.test_supervisor import await_condition

FAST = Backoff(initial=0.01, maximum=0.04, healthy_uptime=60.0)
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
QUITTER = [sys.executable, "-c", "raise SystemExit(3)"]


def settings(tmp_path: Path, **env: object) -> Settings:
    return Settings(_env_file=None, LOYALNEST_DATA_DIR=str(tmp_path), **env)  # type: ignore[arg-type]


def test_the_count_comes_from_flows_scale_then_the_flows_override_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_PROCESSES", "2")
    monkeypatch.setenv("FLOW_PROCESSES_BY_FLOW", '{"rfm": 3}')  # JSON, as in .env
    s = settings(tmp_path)
    assert (scaling.processes_for(s, "points"), scaling.processes_for(s, "rfm")) == (2, 3)

    scaling.scale(s, "rfm", 4, supervisor_pid=None)

    assert (scaling.processes_for(s, "points"), scaling.processes_for(s, "rfm")) == (2, 4)


@pytest.mark.parametrize(
    ("processes", "why"),
    [(0, "at least 1"), (5, "KAFKA_TOPIC_PARTITIONS"), (3, "recovery store partitions")],
)
def test_a_count_the_flow_cannot_run_with_is_refused_and_nothing_changes(
    tmp_path: Path, processes: int, why: str
) -> None:
    s = settings(tmp_path, KAFKA_TOPIC_PARTITIONS=4, FLOW_RECOVERY_PARTITIONS=2)

    with pytest.raises(scaling.ScaleError, match=why):
        scaling.scale(s, "points", processes, supervisor_pid=None)

    assert scaling.processes_for(s, "points") == 1


def test_an_existing_recovery_store_sets_the_limit_not_the_setting(tmp_path: Path) -> None:
    store = tmp_path / "recovery" / "points"
    store.mkdir(parents=True)
    for n in range(3):
        (store / f"part-{n}.sqlite3").touch()
    s = settings(tmp_path, FLOW_RECOVERY_PARTITIONS=1)

    assert scaling.recovery_partitions(s, "points") == 3
    scaling.check_processes(s, "points", 3)


def test_scale_tells_a_running_supervisor_with_sighup(tmp_path: Path) -> None:
    received = threading.Event()

    def on_hup(_sig: int, _frame: FrameType | None) -> None:
        received.set()

    previous = signal.signal(signal.SIGHUP, on_hup)
    try:
        scaled = scaling.scale(settings(tmp_path), "points", 2, supervisor_pid=os.getpid())
        assert received.wait(5)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert (scaled.before, scaled.after) == (1, 2)


def test_a_flow_of_two_processes_runs_each_with_its_place_ports_and_peers(tmp_path: Path) -> None:
    s = settings(tmp_path, FLOW_PROCESSES_BY_FLOW={"rfm": 2})
    jobs = {job.name: job for job in default_jobs(s)}
    rfm = jobs["rfm"]  # port offset 2

    (zero, one) = rfm.processes
    peers = "127.0.0.1:2301;127.0.0.1:2302"
    assert zero.argv[-4:] == ["-i", "0", "-a", peers]
    assert one.argv[-4:] == ["-i", "1", "-a", peers]
    assert zero.argv[:-4] == one.argv[:-4]  # the same flow, recovery store and intervals
    assert (zero.env["BYTEWAX_DATAFLOW_API_PORT"], one.env["BYTEWAX_DATAFLOW_API_PORT"]) == (
        "3032",
        "3132",
    )
    assert rfm.health_url == "http://127.0.0.1:3032/metrics"
    assert "-a" not in jobs["points"].argv  # one process: no cluster arguments
    assert jobs["points"].peers == ()


def running(supervisor: Supervisor) -> threading.Thread:
    worker = threading.Thread(target=supervisor.run)
    worker.start()
    return worker


def test_when_one_process_of_a_cluster_exits_the_whole_cluster_restarts(tmp_path: Path) -> None:
    cluster = Job("cluster", SLEEPER, peers=(Process(QUITTER),))
    supervisor = Supervisor([cluster], tmp_path, backoff=FAST, poll_interval=0.01)
    worker = running(supervisor)
    try:
        await_condition(lambda: len(supervisor.pids("cluster")) == 2, timeout=10)
        first_sleeper = supervisor.pids("cluster")[0]
        # The quitter exits at once: the sleeper beside it is killed and started again.
        # (While the cluster waits out its backoff it has no processes: no pids.)
        await_condition(
            lambda: supervisor.pids("cluster")[:1] not in ([], [first_sleeper]), timeout=30
        )
        await_condition(lambda: not Path(f"/proc/{first_sleeper}").exists(), timeout=10)
    finally:
        supervisor.stop()
        worker.join(30)
    assert not worker.is_alive()


def test_a_reload_restarts_only_the_jobs_that_changed(tmp_path: Path) -> None:
    steady, scaled = Job("steady", SLEEPER), Job("scaled", SLEEPER)
    wanted = [steady, scaled]
    supervisor = Supervisor(wanted, tmp_path, poll_interval=0.01, reload=lambda: wanted)
    worker = running(supervisor)
    try:
        await_condition(lambda: len(supervisor.pids("scaled")) == 1, timeout=10)
        before = {name: supervisor.pids(name) for name in ("steady", "scaled")}
        wanted = [steady, Job("scaled", SLEEPER, peers=(Process(SLEEPER),))]
        supervisor.request_reload()
        await_condition(lambda: len(supervisor.pids("scaled")) == 2, timeout=30)
        assert supervisor.pids("steady") == before["steady"]
        assert not set(supervisor.pids("scaled")) & set(before["scaled"])
    finally:
        supervisor.stop()
        worker.join(30)
    assert not supervisor.delays  # a reload is not a crash: no backoff
