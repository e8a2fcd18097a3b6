"""The supervisor's restart backoff: doubling while a job crash-loops, reset after a healthy run."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loyalnest.settings import Settings
from loyalnest.supervisor import (
    HEALTHY_UPTIME,
    INITIAL_BACKOFF,
    MAX_BACKOFF,
    Backoff,
    Job,
    Supervisor,
    default_jobs,
)

POLICY = Backoff()


def test_the_first_restart_waits_the_initial_delay() -> None:
    assert POLICY.delay(None, uptime=0.0) == INITIAL_BACKOFF


def test_a_crash_loop_doubles_the_delay_up_to_the_maximum() -> None:
    delays = [POLICY.delay(None, uptime=0.0)]
    for _ in range(6):
        delays.append(POLICY.delay(delays[-1], uptime=0.5))

    assert delays == [1, 2, 4, 8, 16, MAX_BACKOFF, MAX_BACKOFF]


def test_a_run_that_lasted_the_healthy_uptime_resets_the_delay() -> None:
    assert POLICY.delay(MAX_BACKOFF, uptime=HEALTHY_UPTIME) == INITIAL_BACKOFF
    assert POLICY.delay(MAX_BACKOFF, uptime=7 * 24 * 3600) == INITIAL_BACKOFF


def test_a_run_just_short_of_the_healthy_uptime_keeps_backing_off() -> None:
    assert POLICY.delay(4.0, uptime=HEALTHY_UPTIME - 0.1) == 8.0


# --- Supervisor.run with a real job that exits at once, and a clock the test controls ------

FAST = Backoff(initial=0.01, maximum=0.04, healthy_uptime=60.0)
RUNS = 6  # enough restarts for a crash loop to reach FAST.maximum


def crashing_job() -> Job:
    return Job("crasher", [sys.executable, "-c", "print('ran'); raise SystemExit(1)"])


def supervise(tmp_path: Path, clock: Callable[[], float]) -> Supervisor:
    """Run a supervisor over `crashing_job` until the job has run RUNS times; stop it."""
    supervisor = Supervisor(
        [crashing_job()], tmp_path, backoff=FAST, clock=clock, poll_interval=0.01
    )
    worker = threading.Thread(target=supervisor.run)
    worker.start()
    try:
        await_condition(lambda: runs(tmp_path / "crasher.log") >= RUNS, timeout=30)
    finally:
        supervisor.stop()
        worker.join(30)
    assert not worker.is_alive()
    return supervisor


def runs(log: Path) -> int:
    return log.read_text().count("ran") if log.exists() else 0


def await_condition(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        tick.wait(0.01)


def test_run_backs_off_to_the_maximum_while_a_job_crash_loops(tmp_path: Path) -> None:
    # Each reading of the clock is a millisecond after the previous one: every run lasts far
    # less than the healthy uptime, and each backoff ends after a few readings.
    ticks = itertools.count(start=0.0, step=0.001)
    supervisor = supervise(tmp_path, clock=lambda: next(ticks))

    assert supervisor.delays["crasher"] == FAST.maximum


def test_run_restarts_a_job_that_ran_healthily_after_the_initial_delay(tmp_path: Path) -> None:
    # Each reading of the clock is 100 s after the previous one: every run lasted 100 s.
    ticks = itertools.count(start=0.0, step=100.0)
    supervisor = supervise(tmp_path, clock=lambda: next(ticks))

    assert supervisor.delays["crasher"] == FAST.initial


def test_the_clock_runs_as_a_job_of_its_own() -> None:
    jobs = {job.name: job for job in default_jobs(Settings(_env_file=None))}

    assert jobs["clock"].argv == [sys.executable, "-m", "loyalnest.clock"]
    assert "-r" not in jobs["clock"].argv  # no flow: no recovery store to create


def test_flows_run_with_the_configured_allocator_and_other_jobs_do_not() -> None:
    system = {
        job.name: job for job in default_jobs(Settings(_env_file=None, FLOW_ALLOCATOR="system"))
    }

    assert system["points"].env["MALLOC_ARENA_MAX"] == "2"
    assert "LD_PRELOAD" not in system["points"].env
    assert "MALLOC_ARENA_MAX" not in system["api"].env
    assert "MALLOC_ARENA_MAX" not in system["clock"].env


def test_an_unknown_flow_allocator_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="FLOW_ALLOCATOR"):
        Settings(_env_file=None, FLOW_ALLOCATOR="tcmalloc")


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def gated_job(name: str, gate: Path) -> Job:
    """Runs until `gate` exists, then removes it and exits (a crash the test decides)."""
    code = (
        "import os, sys, time; print('ran', flush=True); gate = sys.argv[1]\n"
        "while not os.path.exists(gate): time.sleep(0.01)\n"
        "os.remove(gate); raise SystemExit(1)"
    )
    return Job(name, [sys.executable, "-c", code, str(gate)])


def backing_off(supervisor: Supervisor, logs: Path, ran: int, delay: float) -> Callable[[], bool]:
    """The crasher has run `ran` times and waits `delay` before its next start."""
    return lambda: runs(logs / "crasher.log") == ran and supervisor.delays.get("crasher") == delay


def test_a_job_waiting_out_its_backoff_does_not_hold_up_another_jobs_restart(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    crasher, gate = crashing_job(), tmp_path / "gate"
    supervisor = Supervisor(
        [crasher, gated_job("steady", gate)],
        tmp_path,
        backoff=Backoff(initial=1.0, maximum=100.0, healthy_uptime=1000.0),
        clock=clock,
        poll_interval=0.01,
    )
    worker = threading.Thread(target=supervisor.run)
    worker.start()
    try:
        # The crasher backs off 1, 2, then 4 s of the test's clock: due again at t = 7.
        for now, ran, delay in ((0.0, 1, 1.0), (1.0, 2, 2.0), (3.0, 3, 4.0)):
            clock.now = now
            await_condition(backing_off(supervisor, tmp_path, ran, delay), timeout=30)
        clock.now = 3.5
        gate.touch()  # the steady job exits: its first restart is due at t = 4.5
        await_condition(lambda: supervisor.delays.get("steady") == 1.0, timeout=30)
        clock.now = 5.0
        await_condition(lambda: runs(tmp_path / "steady.log") == 2, timeout=30)
        assert (
            runs(tmp_path / "crasher.log") == 3
        )  # still waiting: its own restart is not due before t = 7
        clock.now = 7.0
        await_condition(lambda: runs(tmp_path / "crasher.log") == 4, timeout=30)
    finally:
        supervisor.stop()
        worker.join(30)
    assert not worker.is_alive()
