"""How the sinks retry a write the server may not have applied: every write is safe to repeat."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter

T = TypeVar("T")

log = logging.getLogger("loyalnest.sinks")

SINK_RETRIES = Counter(
    "loyalnest_sink_retries_total", "Sink writes retried after a transient error", ["sink"]
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: with the defaults, retries wait 1 s, 2 s and 4 s."""

    attempts: int = 4
    base_delay: float = 1.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield self.base_delay * 2**attempt

    def call(
        self,
        sink: str,
        attempt: Callable[[], T],
        *,
        transient: tuple[type[Exception], ...],
        failed: Callable[[str], Exception],
        reset: Callable[[], object] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """`attempt()` until it returns, waiting `delays()` between tries that raise one of
        `transient` (after `reset()`, e.g. dropping a broken connection); past the last, raise
        `failed(why)` from the error. Every retry is counted and logged under `sink`."""
        delays = self.delays()
        while True:
            try:
                return attempt()
            except transient as exc:
                if reset is not None:
                    reset()
                delay = next(delays, None)
                if delay is None:
                    raise failed(f"gave up after retries: {exc}") from exc
                SINK_RETRIES.labels(sink).inc()
                log.warning("%s sink: %s; retrying in %.1fs", sink, exc, delay)
                sleep(delay)
