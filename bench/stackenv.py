"""An isolated copy of the system's topics and database for one benchmark run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from loyalnest.bootstrap.isolated import isolated_copy
from loyalnest.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BenchEnv:
    settings: Settings
    tag: str
    workdir: Path

    @property
    def prefix(self) -> str:
        return f"bench{self.tag}."

    @property
    def database(self) -> str:
        return f"bench_{self.tag}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "MONGO_DATABASE": self.database,
            "REDIS_KEY_PREFIX": f"bench_{self.tag}:",
            **extra,
        }


@contextmanager
def bench_env(settings: Settings, partitions: int = 4) -> Iterator[BenchEnv]:
    env = BenchEnv(settings, uuid.uuid4().hex[:8], Path(tempfile.mkdtemp(prefix="bench-")))
    with isolated_copy(settings, env.prefix, env.database, partitions):
        yield env


class Process:
    """A job of the system (flow or API) started as production starts it."""

    def __init__(
        self, argv: list[str], env: dict[str, str], log: Path, health_url: str | None = None
    ) -> None:
        self._log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if health_url is not None:
            wait(lambda: _answers(health_url), 60, f"{argv[2]} to be healthy", self)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-30:])


def flow_process(env: BenchEnv, port: int) -> Process:
    recovery = env.workdir / "recovery"
    recovery.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(recovery), "1"],
        check=True,
        capture_output=True,
    )
    return Process(
        [
            sys.executable,
            "-m",
            "bytewax.run",
            "flows.points:flow()",
            "-r",
            str(recovery),
            "-s",
            "5",
            "-b",
            "30",
            "-w",
            os.environ.get("BENCH_FLOW_WORKERS", "1"),
        ],
        env.env(BYTEWAX_DATAFLOW_API_ENABLED="true", BYTEWAX_DATAFLOW_API_PORT=str(port)),
        env.workdir / "flow.log",
        health_url=f"http://127.0.0.1:{port}/metrics",
    )


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    process: Process | None = None,
    interval: float = 0.2,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and not process.alive():
            raise RuntimeError(f"process died waiting for {what}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)
