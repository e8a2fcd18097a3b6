"""A round job's health (the clock, the RFM rounds): `GET /health` answers 200 while its rounds
keep finishing and 503 once none has for a while, and `GET /metrics` serves its Prometheus
metrics.

A round that hangs (a broker or a store that stopped answering without failing) does not end
the process, so the supervisor would not restart it and points would silently stop expiring
and releasing. With this, `make status`, Kubernetes' liveness probe and the
`RoundJobStalled` alert see it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

log = logging.getLogger("loyalnest.liveness")

# A job is stale when no round has finished for this many intervals, and never sooner than
# MIN_STALE_SECONDS: a big round (100,000 due customers take about 10 s) is not a hang.
STALE_INTERVALS = 10
MIN_STALE_SECONDS = 300.0
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"

LAST_ROUND = Gauge(
    "loyalnest_round_last_completed_timestamp_seconds",
    "When the job's last round finished (Unix time)",
    ["round"],
)


class Liveness:
    """When the job last finished a round. A job just started counts as having finished one
    then: it has `stale_after` seconds for its first."""

    def __init__(
        self, job: str, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.job = job
        self.stale_after = max(STALE_INTERVALS * interval, MIN_STALE_SECONDS)
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        """A round finished."""
        self._last = self._clock()
        LAST_ROUND.labels(self.job).set(time.time())

    def report(self) -> tuple[int, dict[str, object]]:
        """The health check's status code and body."""
        age = self._clock() - self._last
        fresh = age <= self.stale_after
        return (200 if fresh else 503), {
            "status": "ok" if fresh else "stalled",
            "job": self.job,
            "seconds_since_last_round": round(age, 3),
            "stale_after_seconds": self.stale_after,
        }


def serve_health(host: str, port: int, liveness: Liveness) -> ThreadingHTTPServer:
    """Serve /health and /metrics on a daemon thread; `shutdown()` the server to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == HEALTH_PATH:
                status, body = liveness.report()
                self._reply(status, "application/json", json.dumps(body).encode())
            elif self.path == METRICS_PATH:
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest())
            else:
                self._reply(404, "application/json", b'{"error": "not found"}')

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds are not worth a log line each."""

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("health on http://%s:%d%s", host, port, HEALTH_PATH)
    return server
