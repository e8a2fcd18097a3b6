"""RequestLimits: headers and bodies of every endpoint are bounded before the app reads them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.request_limits import (
    DEFAULT_LIMIT,
    MAX_HEADER_BYTES,
    WEBHOOK_LIMIT,
    WEBHOOK_PATH,
    RequestLimits,
)

reads: list[str] = []


async def echo_size(request: Request) -> JSONResponse:
    reads.append(request.url.path)
    return JSONResponse({"size": len(await request.body())})


async def never_reads(request: Request) -> JSONResponse:
    reads.append(request.url.path)
    return JSONResponse({"ok": True})


@pytest.fixture
def client() -> Iterator[TestClient]:
    reads.clear()
    app = Starlette(
        routes=[
            Route(WEBHOOK_PATH, echo_size, methods=["POST"]),
            Route("/v1/redemptions", echo_size, methods=["POST"]),
            Route("/v1/ignores-body", never_reads, methods=["POST"]),
        ],
        middleware=[Middleware(RequestLimits)],
    )
    with TestClient(app) as test_client:
        yield test_client


def chunks(size: int, chunk: int = 8192) -> Iterator[bytes]:
    """A body of `size` bytes without a Content-Length (sent chunked)."""
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)


@pytest.mark.parametrize(
    ("path", "limit"), [(WEBHOOK_PATH, WEBHOOK_LIMIT), ("/v1/redemptions", DEFAULT_LIMIT)]
)
def test_a_body_at_the_limit_is_read_and_one_byte_more_is_413(
    client: TestClient, path: str, limit: int
) -> None:
    at_limit = client.post(path, content=b"x" * limit)
    declared = client.post(path, content=b"x" * (limit + 1))
    streamed = client.post(path, content=chunks(limit + 1))

    assert at_limit.status_code == 200
    assert at_limit.json() == {"size": limit}
    assert declared.status_code == 413
    assert declared.json() == {"error": f"body larger than {limit} bytes"}
    assert declared.headers["connection"] == "close"
    assert streamed.status_code == 413
    assert "content-length" not in streamed.request.headers
    # The declared one never reached the app; the streamed one was cut while it was read.
    assert reads == [path, path]


def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/ignores-body", content=b"x" * (DEFAULT_LIMIT + 1), headers={"X-Test": "1"}
    )

    assert response.status_code == 413
    assert reads == []


def test_an_endpoint_that_does_not_read_its_body_is_not_refused_for_a_streamed_one(
    client: TestClient,
) -> None:
    response = client.post("/v1/ignores-body", content=chunks(DEFAULT_LIMIT + 1))

    assert response.status_code == 200


def test_headers_over_the_limit_are_431_before_the_app_runs(client: TestClient) -> None:
    within = client.post("/v1/redemptions", content=b"{}", headers={"X-Pad": "x" * 15_000})
    over = client.post("/v1/redemptions", content=b"{}", headers={"X-Pad": "x" * MAX_HEADER_BYTES})

    assert within.status_code == 200
    assert over.status_code == 431
    assert over.json() == {"error": f"request headers larger than {MAX_HEADER_BYTES} bytes"}
    assert reads == ["/v1/redemptions"]
