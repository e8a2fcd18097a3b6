"""Run LoyalNest's long-running jobs as child processes and restart them when they die.

Bytewax flows scale with processes, not threads, and one dead process stops a cluster; the
supervisor restarts it and Bytewax recovery resumes from the last snapshot. The jobs are the API
and those listed in `loyalnest.registry`. Each flow runs with the Bytewax dataflow API on its
own port, whose `/metrics` answering is the job's health check; its recovery store and its
files (dataflow.json) live under the data directory.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loyalnest import logs
from loyalnest.allocator import allocator_env
from loyalnest.registry import JOBS, Kind, RegisteredJob
from loyalnest.scaling import processes_for
from loyalnest.settings import Settings

log = logging.getLogger("loyalnest.supervisor")

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# A job that ran this long before it exited was healthy: its next restart waits INITIAL_BACKOFF.
HEALTHY_UPTIME = 60.0
POLL_INTERVAL = 0.5
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Process:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    # A flow's recovery store, created (with FLOW_RECOVERY_PARTITIONS) before the first start.
    recovery: Path | None = None
    # Where the job writes files of its own (a flow's dataflow.json); created before each start.
    files: Path | None = None
    # A Bytewax cluster's other processes (argv and env above are process 0's): they start,
    # die and restart together, as a cluster missing one process stops.
    peers: tuple[Process, ...] = ()

    @property
    def processes(self) -> list[Process]:
        return [Process(self.argv, self.env), *self.peers]


def cluster_job(name: str, processes: list[Process], **fields: Any) -> Job:
    """A job of one or more processes (the first is the job's argv and env)."""
    first, *peers = processes
    return Job(name, first.argv, first.env, peers=tuple(peers), **fields)


def flow_argv(
    import_str: str,
    recovery: Path,
    snapshot_seconds: int,
    backup_seconds: int,
    workers: int = 1,
    cluster: tuple[int, list[str]] | None = None,
) -> list[str]:
    """How a flow runs, here and in the test and bench harness: with a recovery store; as
    process `i` of a cluster whose processes listen on `addresses` when `cluster` is
    (i, addresses) with more than one address."""
    place: tuple[str, ...] = ()
    if cluster is not None and len(cluster[1]) > 1:
        place = ("-i", str(cluster[0]), "-a", ";".join(cluster[1]))
    return [
        sys.executable,
        "-m",
        "bytewax.run",
        import_str,
        *("-r", str(recovery), "-s", str(snapshot_seconds), "-b", str(backup_seconds)),
        *(("-w", str(workers)) if workers > 1 else ()),
        *place,
    ]


def cluster_addresses(first_port: int, processes: int) -> list[str]:
    """Where each process of a cluster on this host listens for its peers."""
    return [f"127.0.0.1:{first_port + k}" for k in range(processes)]


def dataflow_api_env(port: int, files: Path) -> dict[str, str]:
    """The Bytewax dataflow API on `port` (its /metrics are a flow's health check).

    Bytewax 0.21 writes the dataflow.json it serves into BYTEWAX_DATAFLOW_API_CACHE_PATH, a
    directory that must exist, or else into the working directory (src/run.rs); pointing it at
    `files` keeps it out of the repository. (The working directory itself stays: `.env` and a
    relative LOYALNEST_DATA_DIR are read from it.)"""
    return {
        "BYTEWAX_DATAFLOW_API_ENABLED": "true",
        "BYTEWAX_DATAFLOW_API_PORT": str(port),
        "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(files),
    }


def flow_allocator_env(settings: Settings) -> dict[str, str]:
    """The malloc every flow process runs with (FLOW_ALLOCATOR)."""
    return allocator_env(settings.flow_allocator, os.environ)


def flow_job(settings: Settings, job: RegisteredJob) -> Job:
    """A registered flow as a cluster of `processes_for` processes. Process k serves its
    dataflow API (/metrics) on the flow's port + 100·k and meets its peers on
    FLOW_CLUSTER_PORT + 100·(port offset) + k; process 0's /metrics is the health check."""
    assert job.port_offset is not None, f"flow {job.name} has no port offset"
    port = settings.flow_api_port + job.port_offset
    data = settings.data_dir.resolve()
    files = data / "flows" / job.name
    recovery = data / "recovery" / job.name
    first = settings.flow_cluster_port + 100 * job.port_offset
    addresses = cluster_addresses(first, processes_for(settings, job.name))
    processes = [
        Process(
            flow_argv(job.target, recovery, settings.flow_snapshot_seconds, 60, 1, (k, addresses)),
            dataflow_api_env(port + 100 * k, files) | flow_allocator_env(settings),
        )
        for k in range(len(addresses))
    ]
    return cluster_job(
        job.name,
        processes,
        health_url=f"http://127.0.0.1:{port}/metrics",
        recovery=recovery,
        files=files,
    )


def module_job(name: str, module: str, health_port: int | None = None) -> Job:
    """A job that is a plain Python module (`python -m module`); given a port, it serves its
    health there (ROUND_HEALTH_PORT, loyalnest/liveness.py)."""
    argv = [sys.executable, "-m", module]
    if health_port is None:
        return Job(name=name, argv=argv)
    return Job(
        name=name,
        argv=argv,
        env={"ROUND_HEALTH_PORT": str(health_port)},
        health_url=f"http://127.0.0.1:{health_port}/health",
    )


def api_job(settings: Settings) -> Job:
    return Job(
        name="api",
        argv=[sys.executable, "-m", "api"],
        health_url=f"http://127.0.0.1:{settings.api_http_port}/health",
    )


def registered_job(settings: Settings, job: RegisteredJob) -> Job:
    if job.kind is Kind.FLOW:
        return flow_job(settings, job)
    return module_job(job.name, job.target, job.port(settings))


def default_jobs(settings: Settings) -> list[Job]:
    """The API and every job in loyalnest.registry."""
    return [api_job(settings), *(registered_job(settings, job) for job in JOBS)]


def init_recovery(settings: Settings, job: Job) -> None:
    if job.recovery is not None:
        create_recovery_store(job.recovery, settings.flow_recovery_partitions)


def create_recovery_store(directory: Path, partitions: int) -> None:
    """Create a flow's recovery store once: its partition count is fixed from then on, and a
    restarted flow resumes from what is in it."""
    if directory.exists() and any(directory.iterdir()):
        return
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - argv is ours, not input
        [sys.executable, "-m", "bytewax.recovery", str(directory), str(partitions)],
        check=True,
        capture_output=True,
    )


def healthy(job: Job) -> bool:
    if job.health_url is None:
        return True
    try:
        return httpx.get(job.health_url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Backoff:
    """How long to wait before restarting a job that exited: doubling from `initial` up to
    `maximum` while it keeps crashing, and `initial` again once a run lasted `healthy_uptime`
    seconds, so a job that crashed a few times last week is not held back for `maximum` now."""

    initial: float = INITIAL_BACKOFF
    maximum: float = MAX_BACKOFF
    healthy_uptime: float = HEALTHY_UPTIME

    def delay(self, previous: float | None, uptime: float) -> float:
        """The wait before the next restart, given the wait before the previous one (None if
        the job was never restarted) and how long the run that just ended lasted."""
        if previous is None or uptime >= self.healthy_uptime:
            return self.initial
        return min(previous * 2, self.maximum)


DEFAULT_BACKOFF = Backoff()


class Supervisor:
    """Starts every job, restarts any that exits (a cluster as a whole when any of its
    processes exits), applies a reload of the job list, stops them all on request."""

    def __init__(
        self,
        jobs: list[Job],
        log_dir: Path,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = POLL_INTERVAL,
        reload: Callable[[], list[Job]] | None = None,
    ) -> None:
        self.jobs = jobs
        self.log_dir = log_dir
        self.backoff = backoff
        self.poll_interval = poll_interval
        self.delays: dict[str, float] = {}  # the wait before each job's last restart
        # When each job waiting out its backoff starts again: every job keeps its own
        # schedule, so one crash-looping job never holds up the restart of another.
        self._due: dict[str, float] = {}
        self._clock = clock  # uptimes and restart times (tests drive it)
        self._reload = reload
        self._procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._started_at: dict[str, float] = {}
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()

    def run(self) -> None:
        """Block until stop() is called, keeping every job alive."""
        for job in self.jobs:
            self._start(job)
        while not self._stopping.wait(self.poll_interval):
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._apply_reload()
            for job in self.jobs:
                if self._stopping.is_set():
                    break
                self._tend(job)
        self._terminate_all()

    def stop(self) -> None:
        self._stopping.set()

    def request_reload(self) -> None:
        """Re-read the job list (SIGHUP): a job whose definition changed, e.g. a flow scaled to
        another process count, is stopped cleanly and started as now defined."""
        self._reload_requested.set()

    def pids(self, name: str) -> list[int]:
        return [proc.pid for proc in self._procs.get(name, [])]

    def _tend(self, job: Job) -> None:
        """Start a job whose backoff is over; schedule the restart of one that exited."""
        due = self._due.get(job.name)
        if due is None:
            self._schedule_if_exited(job)
        elif self._clock() >= due:
            del self._due[job.name]
            self._start(job)

    def _schedule_if_exited(self, job: Job) -> None:
        procs = self._procs[job.name]
        exited = [proc for proc in procs if proc.poll() is not None]
        if not exited:
            return
        now = self._clock()
        uptime = now - self._started_at[job.name]
        delay = self.backoff.delay(self.delays.get(job.name), uptime)
        self.delays[job.name] = delay
        log.error(
            "%s: %d of %d process(es) exited (%s) after %.0fs; restarting %s in %gs",
            job.name,
            len(exited),
            len(procs),
            ", ".join(str(p.returncode) for p in exited),
            uptime,
            "the cluster" if len(procs) > 1 else "it",
            delay,
        )
        # What the survivors hold is in the recovery store up to the last snapshot; a cluster
        # missing a process cannot finish another, so they are not asked to stop cleanly.
        _kill(procs)
        self._procs[job.name] = []
        self._due[job.name] = now + delay

    def _apply_reload(self) -> None:
        if self._reload is None:
            return
        current = {job.name: job for job in self.jobs}
        self.jobs = self._reload()
        for job in self.jobs:
            if current.get(job.name) == job:
                continue
            log.info("%s changed: restarting it with %d process(es)", job.name, len(job.peers) + 1)
            _stop(self._procs.pop(job.name, []))
            self._due.pop(job.name, None)  # a job waiting out a backoff starts as now defined
            self._start(job)

    def _start(self, job: Job) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if job.files is not None:
            job.files.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{job.name}.log").open("ab") as out:
            self._procs[job.name] = [
                subprocess.Popen(  # noqa: S603
                    process.argv,
                    env={**os.environ, **process.env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
                for process in job.processes
            ]
        self._started_at[job.name] = self._clock()
        log.info("started %s (pids %s)", job.name, self.pids(job.name))

    def _terminate_all(self) -> None:
        _stop([proc for procs in self._procs.values() for proc in procs])


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT (Bytewax stops cleanly on KeyboardInterrupt, with a last snapshot), then SIGKILL
    whatever has not stopped within STOP_TIMEOUT."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop in %.0fs; killing it", proc.pid, STOP_TIMEOUT)
            proc.kill()
            proc.wait()


def _kill(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def main() -> int:
    """Foreground supervisor (what `make up` runs in the background)."""
    settings = Settings()
    logs.configure_job(settings)
    jobs = default_jobs(settings)
    for job in jobs:
        init_recovery(settings, job)
    supervisor = Supervisor(
        jobs, settings.data_dir.resolve() / "logs", reload=lambda: default_jobs(settings)
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: supervisor.stop())
    # `loyalnest flows scale` records the new process count, then sends SIGHUP.
    signal.signal(signal.SIGHUP, lambda *_: supervisor.request_reload())
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
