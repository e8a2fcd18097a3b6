"""Targets of issue 3 next to measured figures, and the checks every benchmark run must pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bench.http import Reply


@dataclass(frozen=True)
class Target:
    """A bound a measured figure should meet: at least (throughput) or at most (latency)."""

    bound: float
    at_least: bool

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:,g}"


Targets = dict[str, Target]


def at_least(bound: float) -> Target:
    return Target(bound, at_least=True)


def at_most(bound: float) -> Target:
    return Target(bound, at_least=False)


def require_status(what: str, replies: Sequence[Reply], status: int = 200) -> None:
    """Fail the run, loudly, if any reply is not `status`."""
    wrong = [r for r in replies if r.status != status]
    if wrong:
        counts = Counter(r.status for r in wrong)
        raise RuntimeError(
            f"{what}: {len(wrong)} of {len(replies)} replies were not {status} "
            f"(by status: {dict(counts)}); first: {wrong[0].body[:300]!r}"
        )
