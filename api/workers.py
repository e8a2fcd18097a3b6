"""More than one API process: API_WORKERS of them behind the same two ports.

One Python process serves on one core. With API_WORKERS > 1, `python -m api` becomes a
supervisor that starts that many `python -m api --worker` processes. Each binds the HTTP and
gRPC ports with SO_REUSEPORT, and the kernel spreads new connections over them. The
supervisor checks first that no other process holds either port (a stale API would otherwise
share them silently), hands SIGTERM and SIGINT on to the workers, and when one worker dies,
stops the others and exits with its status: whoever runs the API restarts it whole.

Prometheus counters live in each worker, so the workers write them to files in one
directory (prometheus_client's multiprocess mode) and `/metrics`, whichever worker answers,
adds them all up. Per-process figures (CPU, memory) are not in that sum.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from api.prometheus import METRICS_DIR_ENV
from loyalnest.settings import Settings

log = logging.getLogger("loyalnest.api.workers")

WORKER_FLAG = "--worker"
BACKLOG = 2048
FORWARDED = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) that the other workers' sockets share."""
    return socket.create_server(
        (host, port), family=_family(host), backlog=BACKLOG, reuse_port=True
    )


def check_free(host: str, port: int) -> None:
    """Raise OSError when some process already holds (host, port)."""
    socket.create_server((host, port), family=_family(host)).close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@contextlib.contextmanager
def metrics_dir() -> Iterator[Path]:
    """The directory the workers' metric files go to: PROMETHEUS_MULTIPROC_DIR if set (emptied
    first: files of earlier runs would be added in), else a temporary one, removed after."""
    given = os.environ.get(METRICS_DIR_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="loyalnest-api-metrics-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def supervise(settings: Settings) -> int:
    """Run API_WORKERS workers until a signal stops them or one of them exits."""
    for port in (settings.api_http_port, settings.api_grpc_port):
        try:
            check_free(settings.api_host, port)
        except OSError as exc:
            print(f"python -m api: {settings.api_host}:{port}: {exc}", file=sys.stderr)
            return 2
    with metrics_dir() as directory:
        environ = os.environ | {METRICS_DIR_ENV: str(directory)}
        argv = [sys.executable, "-m", "api", WORKER_FLAG]
        workers = [_start(argv, environ) for _ in range(settings.api_workers)]
        return _wait(workers)


def _start(argv: list[str], environ: dict[str, str]) -> subprocess.Popen[bytes]:
    """A worker in a process group of its own, so that a terminal's Ctrl-C reaches it once,
    through the supervisor; and (on Linux) sent SIGTERM if the supervisor dies, even killed."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        argv, env=environ, process_group=0, preexec_fn=_die_with_parent
    )


def _die_with_parent() -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait(workers: list[subprocess.Popen[bytes]]) -> int:
    """Until every worker has exited: the first non-zero status, or 1 when a worker ended on
    its own (not asked to by a signal), else 0."""
    group = _Workers(workers)
    previous = {signum: signal.signal(signum, group.forward) for signum in FORWARDED}
    try:
        return group.reap()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Workers:
    def __init__(self, workers: list[subprocess.Popen[bytes]]) -> None:
        self._running = {worker.pid: worker for worker in workers}
        self._stopping = False
        self._status = 0

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        self._signal_all(signum)

    def reap(self) -> int:
        while self._running:
            pid, code = os.wait()  # resumed after a signal's handler has run (PEP 475)
            worker = self._running.pop(pid, None)
            if worker is not None:
                worker.returncode = os.waitstatus_to_exitcode(code)
                self._exited(worker)
        return self._status

    def _exited(self, worker: subprocess.Popen[bytes]) -> None:
        code = worker.returncode
        if code != 0 and self._status == 0:
            self._status = code if code > 0 else 1
        if not self._stopping:
            log.error("API worker %d exited (%d): stopping the others", worker.pid, code)
            self._stopping = True
            self._status = self._status or 1  # a worker that ends by itself is a failure
            self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        # os.kill, not Popen.send_signal: that polls, and could reap a worker os.wait awaits.
        for pid in self._running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
