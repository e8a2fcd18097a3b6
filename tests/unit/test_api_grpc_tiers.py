"""gRPC `campaign.v1.TiersService/GetCustomerTier` (api/grpc_tiers.py): the REST document as a
message (absent values empty, numbers text), and the RPC on in-memory stores with its refusals.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest

from api.grpc_tiers import TiersService, tier_message
from connectors.tier_configs import TierVersion
from loyalnest.tokens import SCOPE_ANALYTICS, SCOPE_TIERS_MANAGE, SCOPE_VIEW
from loyalnest_grpc.campaign.v1 import tiers_pb2
from loyalty.tier_config import parse_tiers
from loyalty.tier_customers import tier_id
from loyalty.tier_preview import StoredCustomer
from loyalty.tiers import CustomerMetric, OrderMetric
from tests.unit.api_fakes import (
    MERCHANT,
    OTHER_MERCHANT,
    AbortedError,
    FakeCall,
    FakeStores,
    call,
)

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
TIERS = {
    "metric": "points_earned",
    "period": "calendar_year",
    "tiers": [
        {"name": "Bronze", "threshold": 100},
        {"name": "Silver", "threshold": 500, "multiplier": "1.25", "entry_bonus": 50},
    ],
}


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # grpc_tiers imported `now` from api.tiers: the name it calls is its own
    monkeypatch.setattr("api.grpc_tiers.now", lambda: NOW)


@pytest.fixture
def stores() -> FakeStores:
    stores = FakeStores()
    stores.tiers.history[MERCHANT] = [TierVersion(1, NOW - timedelta(days=30), parse_tiers(TIERS))]
    earned = CustomerMetric(
        {
            1: OrderMetric(datetime(2026, 2, 1, tzinfo=UTC), Decimal(300)),
            2: OrderMetric(datetime(2026, 4, 1, tzinfo=UTC), Decimal(250)),
        }
    )
    stores.tiers.keep(MERCHANT, 42, StoredCustomer("Silver", earned, CustomerMetric()))
    return stores


def get_tier(
    stores: FakeStores, request: tiers_pb2.GetCustomerTierRequest, context: Any
) -> tiers_pb2.GetCustomerTierResponse:
    return asyncio.run(TiersService(stores.context()).GetCustomerTier(request, context))


# ------------------------------------------------------------------------- tier_message


def test_a_full_document_becomes_text_fields() -> None:
    document: dict[str, Any] = {
        "customer_id": 42,
        "as_of": "2026-06-15T12:00:00Z",
        "tier": "Silver",
        "tier_id": "b5f3c1de-0000-5000-8000-000000000001",
        "multiplier": "1.25",
        "metric": "amount_spent",
        "period": "calendar_year",
        "progress": "150.75",
        "next_tier": "Gold",
        "delta_to_next": "849.25",
        "delta_to_retain": "99.25",
        "period_end": "2027-01-01T00:00:00Z",
    }

    message = tier_message(document)

    assert message == tiers_pb2.GetCustomerTierResponse(**document)


def test_numbers_become_text_and_nones_empty_strings() -> None:
    document = {
        "customer_id": 42,
        "as_of": "2026-06-15T12:00:00Z",
        "tier": None,
        "tier_id": None,
        "multiplier": "1",
        "metric": "points_earned",
        "period": "lifetime",
        "progress": 0,
        "next_tier": "Bronze",
        "delta_to_next": 100,
        "delta_to_retain": 0,
        "period_end": None,
    }

    message = tier_message(document)

    assert message.customer_id == 42
    assert (message.tier, message.tier_id, message.period_end) == ("", "", "")
    assert (message.progress, message.delta_to_next, message.delta_to_retain) == ("0", "100", "0")
    assert (message.multiplier, message.next_tier) == ("1", "Bronze")


def test_at_the_top_tier_the_next_is_empty() -> None:
    message = tier_message(
        {
            "customer_id": 7,
            "as_of": "2026-06-15T12:00:00Z",
            "tier": "Gold",
            "next_tier": None,
            "delta_to_next": None,
            "progress": 2000,
        }
    )

    assert (message.next_tier, message.delta_to_next, message.progress) == ("", "", "2000")


def test_the_document_without_tiers_leaves_the_status_empty() -> None:
    document = {
        "customer_id": 42,
        "as_of": "2026-06-15T12:00:00Z",
        "tier": None,
        "tier_id": None,
        "multiplier": "1",
        "metric": None,
    }

    message = tier_message(document)

    assert message == tiers_pb2.GetCustomerTierResponse(
        customer_id=42, as_of="2026-06-15T12:00:00Z", multiplier="1"
    )


# ------------------------------------------------------------------------ GetCustomerTier


def test_a_customers_tier_over_grpc(stores: FakeStores) -> None:
    response = get_tier(stores, tiers_pb2.GetCustomerTierRequest(customer_id=42), call(SCOPE_VIEW))

    assert response == tiers_pb2.GetCustomerTierResponse(
        customer_id=42,
        tier="Silver",
        tier_id=tier_id(MERCHANT, "Silver"),
        multiplier="1.25",
        metric="points_earned",
        period="calendar_year",
        progress="550",
        next_tier="",
        delta_to_next="",
        delta_to_retain="0",
        period_end="2028-01-01T00:00:00Z",
        as_of="2026-06-15T12:00:00Z",
    )


def test_the_callers_own_merchant_id_may_be_named(stores: FakeStores) -> None:
    request = tiers_pb2.GetCustomerTierRequest(customer_id=42, merchant_id=MERCHANT)

    response = get_tier(stores, request, call(SCOPE_VIEW))

    assert response.tier == "Silver"


def test_a_customer_without_orders_has_no_tier(stores: FakeStores) -> None:
    response = get_tier(stores, tiers_pb2.GetCustomerTierRequest(customer_id=99), call(SCOPE_VIEW))

    assert (response.customer_id, response.tier, response.tier_id) == (99, "", "")
    assert (response.progress, response.next_tier, response.delta_to_next) == ("0", "Bronze", "100")
    assert response.multiplier == "1"


def test_a_merchant_without_tiers_has_no_metric() -> None:
    response = get_tier(
        FakeStores(), tiers_pb2.GetCustomerTierRequest(customer_id=42), call(SCOPE_VIEW)
    )

    assert response == tiers_pb2.GetCustomerTierResponse(
        customer_id=42, multiplier="1", as_of="2026-06-15T12:00:00Z"
    )


@pytest.mark.parametrize(
    ("request_", "context", "code"),
    [
        (tiers_pb2.GetCustomerTierRequest(customer_id=0), call(SCOPE_VIEW), "INVALID_ARGUMENT"),
        (tiers_pb2.GetCustomerTierRequest(customer_id=-5), call(SCOPE_VIEW), "INVALID_ARGUMENT"),
        (
            tiers_pb2.GetCustomerTierRequest(customer_id=42, merchant_id=OTHER_MERCHANT),
            call(SCOPE_VIEW),
            "NOT_FOUND",
        ),
        (
            tiers_pb2.GetCustomerTierRequest(customer_id=42),
            call(SCOPE_ANALYTICS, SCOPE_TIERS_MANAGE),
            "PERMISSION_DENIED",
        ),
        (tiers_pb2.GetCustomerTierRequest(customer_id=42), FakeCall(()), "UNAUTHENTICATED"),
    ],
)
def test_refusals(
    stores: FakeStores, request_: tiers_pb2.GetCustomerTierRequest, context: FakeCall, code: str
) -> None:
    with pytest.raises(AbortedError) as aborted:
        get_tier(stores, request_, context)

    assert aborted.value.code == getattr(grpc.StatusCode, code)


def test_postgresql_away_is_unavailable(stores: FakeStores) -> None:
    stores.tiers.down = True

    with pytest.raises(AbortedError) as aborted:
        get_tier(stores, tiers_pb2.GetCustomerTierRequest(customer_id=42), call(SCOPE_VIEW))

    assert aborted.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(aborted.value) == "PostgreSQL is unavailable, retry later"
