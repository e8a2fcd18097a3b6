"""What `/metrics` answers: this process's metrics, or every API worker's added up."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

# Set (by api/workers.py) for API workers: the directory their metric files are written to.
# prometheus_client reads it when it is imported, so a worker has it from its start.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_text() -> tuple[bytes, str]:
    """The /metrics body and its content type."""
    if METRICS_DIR_ENV not in os.environ:
        return generate_latest(), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
