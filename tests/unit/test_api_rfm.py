"""`GET /v1/segments` and `GET /v1/customers/{id}/rfm` on in-memory stores holding documents as
the RFM flow writes them (connectors/rfm_records.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import bson
import pytest
from bson.raw_bson import RawBSONDocument
from starlette.testclient import TestClient

from connectors.rfm_records import customer_write, merchant_write
from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS
from loyalnest.tokens import SCOPE_ANALYTICS, SCOPE_VIEW
from loyalty.rfm import Scores, Segment, Thresholds, day_number
from loyalty.rfm_customers import RfmCustomer
from loyalty.rfm_merchants import RfmMerchant
from loyalty.rfm_window import CustomerWindow, DayTotal
from tests.unit.api_fakes import MERCHANT, OTHER_SHOP, FakeStores, auth

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
