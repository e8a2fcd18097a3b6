"""A store the API needs is unreachable: that is a 503 with Retry-After (gRPC: UNAVAILABLE),
never a 500. One mapping, used by the REST exception handlers and the gRPC service alike.
Anything else unexpected is a JSON 500."""

from __future__ import annotations

import logging

import psycopg
from pymongo.errors import ConnectionFailure
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.request_metrics import request_correlation

log = logging.getLogger("loyalnest.api.errors")

RETRY_AFTER = "5"
# ConnectionFailure covers ServerSelectionTimeoutError, AutoReconnect and NetworkTimeout;
# OperationalError covers a refused or dropped PostgreSQL connection and the pool's
# PoolTimeout. Anything else (a bad query, a wrong secrets key) is a bug or a misconfiguration,
# and stays a 500.
UNAVAILABLE: dict[type[Exception], str] = {
    ConnectionFailure: "MongoDB",
    psycopg.OperationalError: "PostgreSQL",
}


def unavailable_store(exc: BaseException) -> str | None:
    """Which store `exc` says is unreachable, or None if it says something else."""
    for kind, store in UNAVAILABLE.items():
        if isinstance(exc, kind):
            return store
    return None


def unavailable_message(store: str) -> str:
    return f"{store} is unavailable, retry later"


async def internal_error(request: Request, _exc: Exception) -> Response:
    """A bug met by a request: a JSON 500 like every other error, naming the caller's
    correlation id to quote when it sent one, never the exception (its text may hold
    internals). Starlette logs the traceback and re-raises after this reply is sent."""
    body = {"error": "internal error"}
    correlation = request_correlation(request.scope)
    if correlation is not None:
        body["correlation_id"] = correlation
    return JSONResponse(body, status_code=500)


async def store_unavailable(_request: Request, exc: Exception) -> Response:
    store = unavailable_store(exc) or "a store"
    log.warning("%s unavailable: %s: %s", store, type(exc).__name__, exc)
    return JSONResponse(
        {"error": unavailable_message(store)},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER},
    )
