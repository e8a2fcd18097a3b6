"""How the sinks retry a write the server may not have applied: every write is safe to repeat."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: with the defaults, retries wait 1 s, 2 s and 4 s."""

    attempts: int = 4
    base_delay: float = 1.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield self.base_delay * 2**attempt
