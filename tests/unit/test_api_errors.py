"""Stores that do not answer are 503 with Retry-After (gRPC: UNAVAILABLE), never 500."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from pymongo.errors import (
    AutoReconnect,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from api.app import EXCEPTION_HANDLERS
from api.errors import RETRY_AFTER, unavailable_store
from connectors.kafka import CORRELATION_HEADER

FAILURES: dict[str, Exception] = {
    "server-selection": ServerSelectionTimeoutError("no servers"),
    "auto-reconnect": AutoReconnect("connection reset"),
    "network-timeout": NetworkTimeout("timed out"),
    "postgres-refused": psycopg.OperationalError("connection refused"),
    "pool-timeout": PoolTimeout("couldn't get a connection after 3.00 sec"),
    "bug": OperationFailure("unknown operator $foo"),
}


async def fail(request: Request) -> Response:
    raise FAILURES[request.path_params["kind"]]


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = Starlette(
        routes=[Route("/fail/{kind}", fail)], exception_handlers=dict(EXCEPTION_HANDLERS)
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("kind", "store"),
    [
        ("server-selection", "MongoDB"),
        ("auto-reconnect", "MongoDB"),
        ("network-timeout", "MongoDB"),
        ("postgres-refused", "PostgreSQL"),
        ("pool-timeout", "PostgreSQL"),
    ],
)
def test_an_unreachable_store_is_503_with_retry_after(
    client: TestClient, kind: str, store: str
) -> None:
    response = client.get(f"/fail/{kind}")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == RETRY_AFTER
    assert response.json() == {"error": f"{store} is unavailable, retry later"}
    assert unavailable_store(FAILURES[kind]) == store


def test_any_other_store_error_stays_a_500_in_json_without_the_exceptions_text(
    client: TestClient,
) -> None:
    response = client.get("/fail/bug")

    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert unavailable_store(FAILURES["bug"]) is None


def test_a_500_names_the_callers_correlation_id_when_it_sent_a_valid_one(
    client: TestClient,
) -> None:
    valid = client.get("/fail/bug", headers={CORRELATION_HEADER: "order-42.retry_1"})
    invalid = client.get("/fail/bug", headers={CORRELATION_HEADER: "not valid!"})

    assert valid.json() == {"error": "internal error", "correlation_id": "order-42.retry_1"}
    assert invalid.json() == {"error": "internal error"}
