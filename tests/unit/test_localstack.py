"""Local stack plumbing that needs no server: URLs, paths, pid files, health waits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loyalnest.localstack.process import alive, read_pid, stop_pid, tail, wait_until
from loyalnest.localstack.service import StackPaths, host_port


def test_host_port_reads_urls_and_bare_addresses() -> None:
    assert host_port("postgresql://u:p@db.internal:6543/x", 5432) == ("db.internal", 6543)
    assert host_port("redis://127.0.0.1/0", 6379) == ("127.0.0.1", 6379)
    assert host_port("127.0.0.1:19092", 9092) == ("127.0.0.1", 19092)


def test_stack_paths_keep_each_kind_of_file_apart(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)

    assert paths.log("kafka") == tmp_path / "logs" / "kafka.log"
    assert paths.pid("kafka") == tmp_path / "run" / "kafka.pid"
    assert paths.data("kafka").is_dir()


def test_stop_pid_stops_only_the_recorded_process(tmp_path: Path) -> None:
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{ours.pid}\n")
    try:
        assert stop_pid(pid_file, timeout=10) is True
        assert ours.wait(10) is not None
        assert alive(other.pid)
        assert not pid_file.exists()
    finally:
        other.kill()
        other.wait()


def test_stop_pid_ignores_a_stale_pid_file(tmp_path: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{finished.pid}\n")

    assert stop_pid(pid_file) is False
    assert read_pid(pid_file) is None


def test_wait_until_reports_success_or_timeout() -> None:
    calls = iter([False, False, True])
    assert wait_until(lambda: next(calls), timeout=5, interval=0) is True
    assert wait_until(lambda: False, timeout=0.05, interval=0.01) is False


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))

    assert tail(log, 2) == "line 98\nline 99"
    assert "no log" in tail(tmp_path / "missing.log")
