"""What a process has cost, read from /proc: CPU seconds (user + system) and its pid files."""

from __future__ import annotations

import os
from pathlib import Path

from loyalnest.harness.processes import ChildProcess
from loyalnest.settings import Settings

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` so far (its own, not its children's)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count fields from its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def tree_cpu_seconds(process: ChildProcess) -> float:
    """CPU seconds of `process` and of its running children (an API's workers)."""
    return cpu_seconds(process.pid) + sum(cpu_seconds(pid) for pid in process.child_pids())


def store_pid(settings: Settings) -> int | None:
    """The local MongoDB-wire server's pid, or None when the store is not one `make up` started
    (an existing server elsewhere: its CPU cannot be read from here)."""
    pid_file = settings.data_dir / "run" / "mongo.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None
