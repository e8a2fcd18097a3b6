"""Flows and the API as child processes, started the way production starts them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from loyalnest.harness.deployment import Deployment
from loyalnest.harness.shops import JWT_SECRET, SECRETS_KEY
from loyalnest.registry import Kind, registered
from loyalnest.supervisor import (
    Job,
    Process,
    cluster_job,
    create_recovery_store,
    dataflow_api_env,
    flow_allocator_env,
    flow_argv,
)

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ChildProcess:
    """One job, its output appended to a log file; stopped by the signal it handles cleanly."""

    def __init__(
        self, argv: list[str], environ: dict[str, str], log: Path, stop_signal: signal.Signals
    ) -> None:
        self._log = log
        self._stop_signal = stop_signal
        with log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - argv is ours, not input
                argv, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self._stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: no snapshot, no flush, no goodbye."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def child_pids(self) -> list[int]:
        """The process's own children (an API's workers when API_WORKERS > 1)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def wait_answering(self, url: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until `url` answers 200; fail early if the process exits first."""
        wait_until(lambda: _answers(url), timeout, f"{url} to answer", self, 0.1)


class FlowProcess(ChildProcess):
    """A registered flow (`loyalnest.registry`; the points flow unless `flow` names another)
    under `python -m bytewax.run`, with a recovery store, as production runs it.

    With `api_port`, the Bytewax dataflow API serves the flow's /metrics there (its
    dataflow.json goes to the deployment's workdir, `flows/<name>`), and the constructor returns
    once they answer. `recovery` defaults to the deployment's. `overrides` are environment
    variables, e.g. REDIS_URL.
    """

    def __init__(
        self,
        deployment: Deployment,
        log: Path,
        *,
        flow: str = "points",
        recovery: Path | None = None,
        snapshot_seconds: int = 1,
        recovery_partitions: int = 2,
        workers: int = 1,
        api_port: int | None = None,
        **overrides: str,
    ) -> None:
        self.api_port = api_port
        job = registered(flow)
        if job.kind is not Kind.FLOW:
            raise ValueError(f"{flow} is not a flow")
        store = deployment.recovery if recovery is None else recovery
        create_recovery_store(store, recovery_partitions)
        argv = flow_argv(job.target, store, snapshot_seconds, 30, workers)
        extra = flow_allocator_env(deployment.settings)
        if api_port is not None:
            files = deployment.workdir / "flows" / job.name
            files.mkdir(parents=True, exist_ok=True)
            extra |= dataflow_api_env(api_port, files)
        super().__init__(
            argv,
            deployment.environ(**(extra | overrides)),
            log,
            signal.SIGINT,  # Bytewax stops cleanly on KeyboardInterrupt
        )
        if api_port is not None:
            self.wait_answering(f"http://127.0.0.1:{api_port}/metrics")


def flow_cluster_job(
    deployment: Deployment,
    processes: int,
    *,
    flow: str = "points",
    target: str | None = None,
    snapshot_seconds: int = 1,
    recovery_partitions: int = 2,
) -> Job:
    """A registered flow as the supervisor runs it with FLOW_PROCESSES=`processes`: a Bytewax
    cluster on free local ports, against the deployment, resuming from its recovery store.
    `target` runs another import string in its place (a benchmark's variant)."""
    job = registered(flow)
    if job.kind is not Kind.FLOW:
        raise ValueError(f"{flow} is not a flow")
    create_recovery_store(deployment.recovery, recovery_partitions)
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    environ = deployment.environ(**flow_allocator_env(deployment.settings))
    cluster = [
        Process(
            flow_argv(
                target or job.target, deployment.recovery, snapshot_seconds, 30, 1, (k, addresses)
            ),
            environ,
        )
        for k in range(processes)
    ]
    return cluster_job(job.name, cluster)


class ApiProcess(ChildProcess):
    """`python -m api` on free ports against a deployment, with the harness's JWT secret and
    secrets key (so `Shop` tokens and `add_merchants` rows work). `overrides` are environment
    variables, e.g. WEBHOOK_RATE_LIMIT."""

    def __init__(
        self, deployment: Deployment, postgres_url: str, log: Path, **overrides: str
    ) -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        environ = deployment.environ(
            **{
                "POSTGRES_URL": postgres_url,
                "API_HOST": "127.0.0.1",
                "API_HTTP_PORT": str(self.http_port),
                "API_GRPC_PORT": str(self.grpc_port),
                "JWT_SECRET": JWT_SECRET,
                "LOYALNEST_SECRETS_KEY": SECRETS_KEY,
                **overrides,  # e.g. POSTGRES_URL at a dead port
            }
        )
        super().__init__([sys.executable, "-m", "api"], environ, log, signal.SIGTERM)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_healthy(self, timeout: float = 30) -> None:
        self.wait_answering(f"{self.url}/health", timeout)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    process: ChildProcess | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `condition` until it holds; raise if `process` exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and not process.alive():
            raise RuntimeError(f"process exited waiting for {what}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            tail = "" if process is None else f":\n{process.log_tail()}"
            raise TimeoutError(f"timed out waiting for {what}{tail}")
        time.sleep(interval)
