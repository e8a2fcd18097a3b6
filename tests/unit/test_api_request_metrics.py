"""Every HTTP request is timed and counted by route template, method and status."""

from __future__ import annotations

from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from api.request_metrics import RequestMetrics
from loyalnest.logs import current_correlation

METRIC = "loyalnest_http_request_duration_seconds_count"


async def item(_request: Request) -> Response:
    return JSONResponse({"correlation": current_correlation()})


async def broken(_request: Request) -> Response:
    raise RuntimeError("a defect")


def client() -> TestClient:
    app = Starlette(
        routes=[
            Route("/v1/items/{item_id}", item, methods=["GET"]),
            Route("/broken", broken, methods=["GET"]),
        ],
        middleware=[Middleware(RequestMetrics)],
    )
    return TestClient(app, raise_server_exceptions=False)


def count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value(METRIC, labels) or 0.0


def test_a_request_counts_under_its_route_template_not_its_path() -> None:
    before = count("GET", "/v1/items/{item_id}", "200")

    for n in range(3):
        assert client().get(f"/v1/items/{n}").status_code == 200

    assert count("GET", "/v1/items/{item_id}", "200") == before + 3


def test_unmatched_paths_unknown_methods_and_failures_stay_bounded() -> None:
    before = (
        count("GET", "unmatched", "404"),
        count("OTHER", "unmatched", "404"),
        count("GET", "/broken", "500"),
    )

    client().get("/no/such/path/7")
    client().request("BREW", "/no/such/path/8")
    assert client().get("/broken").status_code == 500

    after = (
        count("GET", "unmatched", "404"),
        count("OTHER", "unmatched", "404"),
        count("GET", "/broken", "500"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


def test_a_valid_correlation_id_is_the_current_one_while_the_request_is_handled() -> None:
    valid = client().get("/v1/items/1", headers={"X-Correlation-Id": "wh-77"})
    malformed = client().get("/v1/items/2", headers={"X-Correlation-Id": "not valid!"})

    assert valid.json() == {"correlation": "wh-77"}
    assert malformed.json() == {"correlation": None}
