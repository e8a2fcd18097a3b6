"""`GET /v1/segments` and `GET /v1/customers/{id}/rfm` on in-memory stores holding documents as
the RFM flow writes them (connectors/rfm_records.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import bson
import grpc
import pytest
from bson.raw_bson import RawBSONDocument
from starlette.testclient import TestClient

from api.app import create_app
from api.grpc_rfm import CoreService, RfmService
from connectors.rfm_records import customer_write, merchant_write
from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS
from loyalnest.tokens import SCOPE_ANALYTICS, SCOPE_VIEW
from loyalnest_grpc.core.v1 import core_pb2
from loyalnest_grpc.rfm.v1 import rfm_pb2
from loyalty.rfm import Scores, Segment, Thresholds, day_number
from loyalty.rfm_customers import RfmCustomer
from loyalty.rfm_merchants import RfmMerchant
from loyalty.rfm_window import CustomerWindow, DayTotal
from tests.unit.api_fakes import (
    MERCHANT,
    OTHER_MERCHANT,
    OTHER_SHOP,
    AbortedError,
    FakeCall,
    FakeStores,
    auth,
    call,
)

AS_OF = day_number(datetime(2026, 3, 1, tzinfo=UTC))
THRESHOLDS = Thresholds(
    (7, 30, 90, 180), (2, 3, 5, 10), (Decimal(50), Decimal(100), Decimal(250), Decimal(500))
)


def stored(write: object) -> dict[str, Any]:
    """The document a write puts in MongoDB, as pymongo reads it back (naive UTC times)."""
    document = getattr(write, "_doc", None)
    assert isinstance(document, RawBSONDocument)
    return bson.decode(document.raw)


@pytest.fixture
def stores() -> FakeStores:
    stores = FakeStores()
    merchant = RfmMerchant()
    merchant.use(THRESHOLDS)
    regular = RfmCustomer(
        CustomerWindow({AS_OF - 3: DayTotal(4, Decimal("260.10"))}, AS_OF),
        Scores(5, 3, 4, Segment.POTENTIAL_LOYALISTS),
        Segment.POTENTIAL_LOYALISTS,
        1,
        1,
        1,
    )
    prospect = RfmCustomer(CustomerWindow({}, AS_OF), None, Segment.PROSPECTS, 1, 1, 1)
    for customer, state in ((501, regular), (502, prospect)):
        merchant.change(None, state.values())
        _name, write = customer_write(MERCHANT, customer, state, 365)
        doc = stored(write)
        stores.collection(RFM_CUSTOMERS).documents[doc["_id"]] = doc
    merchant.advance(AS_OF)
    picture = merchant.refresh()
    assert picture is not None
    doc = stored(merchant_write(MERCHANT, picture)[1])
    stores.collection(RFM_MERCHANTS).documents[doc["_id"]] = doc
    return stores


@pytest.fixture
def client(stores: FakeStores) -> Iterator[TestClient]:
    with stores.client() as http:
        yield http


def test_segments_are_the_merchants_picture_with_every_name(client: TestClient) -> None:
    response = client.get("/v1/segments", headers=auth(SCOPE_ANALYTICS))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["merchant_id"], body["as_of"], body["total"]) == (MERCHANT, "2026-03-01", 2)
    assert list(body["segments"]) == [s.value for s in Segment]
    assert body["segments"]["potential_loyalists"] == 1
    assert body["segments"]["prospects"] == 1
    assert sum(body["segments"].values()) == 2


def test_a_merchant_without_orders_has_all_zeros(client: TestClient) -> None:
    response = client.get("/v1/segments", headers=auth(SCOPE_ANALYTICS, shop=OTHER_SHOP))

    assert response.status_code == 200
    body = response.json()
    assert (body["as_of"], body["total"]) == (None, 0)
    assert set(body["segments"].values()) == {0}
    assert len(body["segments"]) == 11


def test_a_customers_scores_come_from_their_values_and_the_picture(client: TestClient) -> None:
    response = client.get("/v1/customers/501/rfm", headers=auth(SCOPE_ANALYTICS))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "customer_id": 501,
        "recency_days": 3,
        "frequency": 4,
        "monetary": "260.10",
        "r": 5,
        "f": 3,
        "m": 4,
        "segment": "potential_loyalists",
        "as_of": "2026-03-01",
    }


def test_a_prospect_has_no_scores(client: TestClient) -> None:
    body = client.get("/v1/customers/502/rfm", headers=auth(SCOPE_ANALYTICS)).json()

    assert (body["recency_days"], body["r"], body["f"], body["m"]) == (None, None, None, None)
    assert (body["frequency"], body["monetary"], body["segment"]) == (0, "0", "prospects")


@pytest.mark.parametrize(("seconds", "served"), [(3600.0, 1), (0.0, 0)])
def test_the_picture_is_served_from_memory_for_rfm_picture_seconds(
    stores: FakeStores, seconds: float, served: int
) -> None:
    ctx = stores.context()
    ctx.settings = ctx.settings.model_copy(update={"rfm_picture_seconds": seconds})
    with TestClient(create_app(ctx.settings, ctx)) as http:
        first = http.get("/v1/segments", headers=auth(SCOPE_ANALYTICS)).json()
        picture = stores.collection(RFM_MERCHANTS).documents[MERCHANT]
        picture["counts"] = {**picture["counts"], "potential_loyalists": 0}
        second = http.get("/v1/segments", headers=auth(SCOPE_ANALYTICS)).json()

    assert first["segments"]["potential_loyalists"] == 1
    assert second["segments"]["potential_loyalists"] == served


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/customers/999/rfm", auth(SCOPE_ANALYTICS), 404),
        ("/v1/customers/501/rfm", auth(SCOPE_ANALYTICS, shop=OTHER_SHOP), 404),
        ("/v1/customers/abc/rfm", auth(SCOPE_ANALYTICS), 400),
        ("/v1/customers/501/rfm", auth(SCOPE_VIEW), 403),
        ("/v1/segments", auth(SCOPE_VIEW), 403),
        ("/v1/segments", {}, 401),
        ("/v1/customers/501/rfm", {}, 401),
    ],
)
def test_what_a_caller_may_not_see(
    client: TestClient, path: str, headers: dict[str, str], status: int
) -> None:
    assert client.get(path, headers=headers).status_code == status


# ----------------------------------------------------------------------------------- gRPC


def test_grpc_segment_counts_are_the_rest_ones(stores: FakeStores) -> None:
    service = RfmService(stores.context())

    response = asyncio.run(
        service.GetSegmentCounts(rfm_pb2.GetSegmentCountsRequest(), call(SCOPE_ANALYTICS))
    )

    assert (response.merchant_id, response.as_of, response.total) == (MERCHANT, "2026-03-01", 2)
    assert dict(response.segments) == {s.value: 0 for s in Segment} | {
        "potential_loyalists": 1,
        "prospects": 1,
    }


def test_grpc_customer_rfm_and_a_prospects_unset_scores(stores: FakeStores) -> None:
    service = CoreService(stores.context())

    regular = asyncio.run(
        service.GetCustomerRFM(
            core_pb2.GetCustomerRFMRequest(customer_id="501"), call(SCOPE_ANALYTICS)
        )
    )
    prospect = asyncio.run(
        service.GetCustomerRFM(
            core_pb2.GetCustomerRFMRequest(customer_id="502"), call(SCOPE_ANALYTICS)
        )
    )

    assert (regular.recency, regular.r, regular.f, regular.m) == (3, 5, 3, 4)
    assert (regular.monetary, regular.segment, regular.as_of) == (
        "260.10",
        "potential_loyalists",
        "2026-03-01",
    )
    assert not prospect.HasField("r")
    assert not prospect.HasField("recency")
    assert prospect.segment == "prospects"


@pytest.mark.parametrize(
    ("request_", "context", "code"),
    [
        (core_pb2.GetCustomerRFMRequest(customer_id="999"), call(SCOPE_ANALYTICS), "NOT_FOUND"),
        (
            core_pb2.GetCustomerRFMRequest(customer_id="x"),
            call(SCOPE_ANALYTICS),
            "INVALID_ARGUMENT",
        ),
        (
            core_pb2.GetCustomerRFMRequest(customer_id="501", merchant_id=OTHER_MERCHANT),
            call(SCOPE_ANALYTICS),
            "NOT_FOUND",
        ),
        (core_pb2.GetCustomerRFMRequest(customer_id="501"), call(SCOPE_VIEW), "PERMISSION_DENIED"),
        (core_pb2.GetCustomerRFMRequest(customer_id="501"), FakeCall(()), "UNAUTHENTICATED"),
    ],
)
def test_grpc_customer_rfm_refusals(
    stores: FakeStores, request_: core_pb2.GetCustomerRFMRequest, context: FakeCall, code: str
) -> None:
    with pytest.raises(AbortedError) as aborted:
        asyncio.run(CoreService(stores.context()).GetCustomerRFM(request_, context))

    assert aborted.value.code == getattr(grpc.StatusCode, code)


def test_grpc_segment_counts_of_another_merchant_are_not_found(stores: FakeStores) -> None:
    request = rfm_pb2.GetSegmentCountsRequest(merchant_id=OTHER_MERCHANT)

    with pytest.raises(AbortedError) as aborted:
        asyncio.run(RfmService(stores.context()).GetSegmentCounts(request, call(SCOPE_ANALYTICS)))

    assert aborted.value.code == grpc.StatusCode.NOT_FOUND
