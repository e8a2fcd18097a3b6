"""What a process has cost, read from /proc: CPU seconds (user + system) and its pid files."""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class MachineCpu:
    """The whole machine's CPU time so far (/proc/stat, every core): busy and all."""

    busy: float
    total: float

    @classmethod
    def now(cls) -> MachineCpu:
        with open("/proc/stat") as stat:
            fields = [int(n) for n in stat.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is counted in user);
        # steal is time the host kept the machine from running: neither busy nor idle here.
        user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
        busy = user + nice + system + irq + softirq
        return cls(busy / _TICKS, (busy + idle + iowait + steal) / _TICKS)

    def busy_cores(self, later: MachineCpu) -> float:
        """Cores kept busy on average since this reading, by every process together (a load
        generator included), of os.cpu_count() in all."""
        cores = os.cpu_count() or 1
        return cores * (later.busy - self.busy) / max(later.total - self.total, 1e-9)


def store_pid(settings: Settings) -> int | None:
    """The local MongoDB-wire server's pid, or None when the store is not one `make up` started
    (an existing server elsewhere: its CPU cannot be read from here)."""
    return _local_pid(settings, "mongo")


def broker_pid(settings: Settings) -> int | None:
    """The local Kafka broker's pid, or None when it is not one `make up` started."""
    return _local_pid(settings, "kafka")


def _local_pid(settings: Settings, service: str) -> int | None:
    pid_file = settings.data_dir / "run" / f"{service}.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None
