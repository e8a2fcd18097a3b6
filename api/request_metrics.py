"""Latency and status of every HTTP request, by route, as one pure ASGI middleware; it also
gives the lines logged for a request the caller's correlation id (`X-Correlation-Id`, when
valid).

The route is Starlette's template (`/v1/customers/{customer_id}/balance`), never the path a
client sent, so the series stay as few as the routes: a request no route matched counts as
`unmatched`, a method outside HTTP's usual ones as `OTHER`.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Histogram
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.kafka import CORRELATION_HEADER
from loyalnest.logs import correlated
from loyalty.fields import is_correlation_id

REQUESTS = Histogram(
    "loyalnest_http_request_duration_seconds",
    "HTTP requests: seconds from the request's arrival to the end of the response, by route "
    "template, method and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Outermost middleware: it sees every response, the limits' refusals and errors too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # labels() looks its child up through a lock; a dict of the few children is cheaper.
        self._children: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before it answers

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with correlated(request_correlation(scope)):
                await self.app(scope, receive, send_noting_status)
        finally:
            key = (_method(scope), route_of(scope), str(status))
            self._child(key).observe(time.perf_counter() - started)

    def _child(self, key: tuple[str, str, str]) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = REQUESTS.labels(*key)
        return child


def route_of(scope: Scope) -> str:
    """The template of the route that handled the request (the router notes it in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def request_correlation(scope: Scope) -> str | None:
    """The caller's correlation id, when it sent a valid one."""
    value = Headers(scope=scope).get(CORRELATION_HEADER)
    return value if value is not None and is_correlation_id(value) else None


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in METHODS else "OTHER"
