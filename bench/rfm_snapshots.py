"""Bytes a flow snapshots per epoch, read from its recovery store while it runs.

Bytewax 0.21 keeps a flow's recovery partitions as SQLite files (WAL mode, so reading them
does not block the flow): table `snaps` holds one row per (step, key, epoch) in which that
key's state changed, its pickled state in `ser_change`. A row superseded by a later one of its
key is deleted once the backup interval (30 s, `loyalnest.supervisor.flow_argv`) has passed,
so the store at the end no longer shows what each epoch wrote: the log reads it every few
seconds, each time the epochs from the last frontier it saw (rows are written before the
frontier passes them, and a re-read row replaces itself).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loyalnest.harness.processes import ChildProcess, wait_until

READ_EVERY = 2.0  # seconds; well inside the 30 s a superseded row survives

RECENT_ROWS = """
SELECT step_id, state_key, snap_epoch, COALESCE(LENGTH(ser_change), 0)
FROM snaps WHERE snap_epoch >= ?
"""
FRONTIER = "SELECT COALESCE(MAX(worker_frontier), 0) FROM fronts"

Row = tuple[str, str, int, int]  # step, key, epoch, bytes


@dataclass(frozen=True)
class EpochSizes:
    """What the run's epochs wrote: the largest and the mean over epochs that wrote any."""

    epochs: int
    max_bytes: int
    mean_bytes: float
    max_keys: int

    @staticmethod
    def of(per_epoch: dict[int, tuple[int, int]]) -> EpochSizes:
        """`per_epoch`: epoch -> (bytes, keys)."""
        if not per_epoch:
            return EpochSizes(0, 0, 0.0, 0)
        sizes = [b for b, _ in per_epoch.values()]
        return EpochSizes(
            len(sizes), max(sizes), sum(sizes) / len(sizes), max(k for _, k in per_epoch.values())
        )


def per_epoch(rows: Iterable[Row], step_suffix: str | None = None) -> dict[int, tuple[int, int]]:
    """epoch -> (bytes, keys) over the rows of every step, or of the steps whose id ends
    with `step_suffix`."""
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for step, _key, epoch, size in rows:
        if step_suffix is None or step.endswith(step_suffix):
            totals[epoch][0] += size
            totals[epoch][1] += 1
    return {epoch: (b, k) for epoch, (b, k) in totals.items()}


class SnapshotLog:
    """Reads a recovery store's snapshot rows on a thread of its own until stopped."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._rows: dict[tuple[str, str, int], int] = {}
        self._since: dict[Path, int] = {}
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="snapshot-log", daemon=True)

    def __enter__(self) -> SnapshotLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def read(self) -> None:
        """One pass over every partition: the rows of the epochs not yet seen complete."""
        for path in sorted(self._directory.glob("*.sqlite3")):
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
                frontier = int(conn.execute(FRONTIER).fetchone()[0])
                since = self._since.get(path, 0)
                for step, key, epoch, size in conn.execute(RECENT_ROWS, (since,)):
                    self._rows[(step, key, epoch)] = size
            conn.close()
            self._since[path] = max(since, frontier - 1)

    def frontier(self) -> int:
        """The lowest epoch some partition has not finished: every epoch before it is
        snapshotted (0 before the first)."""
        fronts = []
        for path in sorted(self._directory.glob("*.sqlite3")):
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
                fronts.append(int(conn.execute(FRONTIER).fetchone()[0]))
            conn.close()
        return min(fronts, default=0)

    def wait_snapshotted(self, process: ChildProcess) -> None:
        """Until the epoch open now is snapshotted: a flow stopped with SIGINT does not
        snapshot its last epoch, and what it did there would be missing from the figures."""
        now = self.frontier()
        wait_until(lambda: self.frontier() >= now + 2, 60, "the epoch to be snapshotted", process)

    def rows(self) -> list[Row]:
        """Every row seen: call after the flow stopped (a last read picks up the rest)."""
        if self._failure is not None:
            raise RuntimeError(f"reading the recovery store failed: {self._failure}")
        self.read()
        return [(step, key, epoch, size) for (step, key, epoch), size in self._rows.items()]

    def _run(self) -> None:
        while not self._stop.wait(READ_EVERY):
            try:
                self.read()
            except sqlite3.Error as exc:  # reported by rows(): figures would miss epochs
                self._failure = exc
                return
