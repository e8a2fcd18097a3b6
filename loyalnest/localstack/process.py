"""Process plumbing shared by the services: pid files, health waits, log tails."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A service could not be installed, started or stopped."""


def run(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; raise with its output when it fails."""
    proc = subprocess.run(  # noqa: S603 - commands are built from constants and settings
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise StackError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def spawn(cmd: Sequence[str], *, log: Path, pid_file: Path, cwd: Path | None = None) -> int:
    """Start a long-running server detached from our session and record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603
            list(cmd),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; treat it as dead.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == 0


def stop_pid(pid_file: Path, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> bool:
    """Stop the process named in pid_file (only that one); escalate to SIGKILL after timeout."""
    pid = read_pid(pid_file)
    if pid is None or not alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, sig)
    if not wait_until(lambda: not alive(pid), timeout=timeout):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), timeout=10)
    pid_file.unlink(missing_ok=True)
    return True


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.25) -> bool:
    """Poll check() until it holds or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"
