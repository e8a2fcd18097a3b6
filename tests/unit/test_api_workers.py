"""The API's worker supervisor: ports, metric files and how workers' exits are handled (real
child processes; the API itself with workers is tests/integration/test_api_workers.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from api import workers
from api.prometheus import METRICS_DIR_ENV


@pytest.fixture
def port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def ready(code: str) -> subprocess.Popen[bytes]:
    """A child that has installed its SIGTERM handler (it says so) before this returns."""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None
    with child.stdout:
        assert child.stdout.readline() == b"ready\n"
    return child


STAY = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
)
# Sends its parent SIGTERM once the parent handles it (SigCgt in /proc: SIGTERM is bit 14).
STOP_PARENT = """
import os
while True:
    status = open(f"/proc/{os.getppid()}/status").read()
    caught = int(status.split("SigCgt:")[1].split()[0], 16)
    if caught & (1 << (signal.SIGTERM - 1)):
        break
os.kill(os.getppid(), signal.SIGTERM)
time.sleep(60)
"""


def test_two_workers_share_a_port(port: int) -> None:
    first = workers.shared_socket("127.0.0.1", port)
    second = workers.shared_socket("127.0.0.1", port)
    try:
        assert first.getsockname() == second.getsockname()
    finally:
        first.close()
        second.close()


def test_a_port_someone_listens_on_is_not_free(port: int) -> None:
    workers.check_free("127.0.0.1", port)  # nobody yet
    with socket.create_server(("127.0.0.1", port)), pytest.raises(OSError, match="in use"):
        workers.check_free("127.0.0.1", port)


def test_a_given_metrics_dir_is_emptied_of_earlier_runs_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("not ours")
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path))
    with workers.metrics_dir() as directory:
        assert directory == tmp_path
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert tmp_path.exists()  # the operator's directory stays


def test_without_a_given_dir_a_temporary_one_is_removed_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    with workers.metrics_dir() as directory:
        assert directory.is_dir()
        (directory / "counter_1.db").write_bytes(b"x")
    assert not directory.exists()


def test_a_worker_that_exits_stops_the_others_with_its_status() -> None:
    staying = ready(STAY + "time.sleep(60)")
    failing = python("import sys, time\ntime.sleep(0.2)\nsys.exit(3)")
    assert workers._wait([staying, failing]) == 3
    assert staying.returncode == 0  # asked to stop, and did


def test_a_worker_ending_cleanly_on_its_own_is_still_a_failure() -> None:
    staying = ready(STAY + "time.sleep(60)")
    ending = python("pass")
    assert workers._wait([staying, ending]) == 1


def test_a_signal_to_the_supervisor_reaches_every_worker() -> None:
    # One worker plays the operator: it sends the supervisor (this process) SIGTERM.
    other = ready(STAY + "time.sleep(60)")
    before = signal.getsignal(signal.SIGTERM)
    stopper = python(STAY + STOP_PARENT)
    assert workers._wait([stopper, other]) == 0
    assert (stopper.returncode, other.returncode) == (0, 0)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers are given back


def test_a_worker_killed_by_a_signal_makes_the_status_non_zero() -> None:
    staying = ready(STAY + "time.sleep(60)")
    killed = python("import time\ntime.sleep(60)")
    os.kill(killed.pid, signal.SIGKILL)
    assert workers._wait([staying, killed]) == 1
    assert killed.returncode == -signal.SIGKILL
