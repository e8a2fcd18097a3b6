"""Core's customers over gRPC (`core.v1.CoreService/CreateCustomer` and `GetCustomer`) on
in-memory stores, and their events' records against the Avro schemas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from api.grpc_rfm import CoreService
from connectors.customer_records import CustomerRow, customer_event
from loyalnest.tokens import (
    SCOPE_CUSTOMERS_MANAGE,
    SCOPE_CUSTOMERS_PII,
    SCOPE_CUSTOMERS_VIEW,
    SCOPE_VIEW,
)
from loyalnest_grpc.core.v1 import core_pb2
from loyalty import ids
from loyalty.pii import Hasher, is_email, merchant_key
from tests.unit.api_fakes import (
    MERCHANT,
    OTHER_MERCHANT,
    SECRETS_KEY,
    AbortedError,
    FakeCall,
    FakeStores,
    call,
)
from tests.unit.avro_records import avro_bytes, avro_round_trip

HASHER = Hasher(merchant_key(SECRETS_KEY, MERCHANT))


def create(stores: FakeStores, email: str, context: Any = None, merchant: str = "") -> Any:
    service = CoreService(stores.context())
    request = core_pb2.CreateCustomerRequest(email=email, merchant_id=merchant)
    return asyncio.run(service.CreateCustomer(request, context or call(SCOPE_CUSTOMERS_MANAGE)))


def get(stores: FakeStores, customer_id: str, *scopes: str, merchant: str = "") -> Any:
    service = CoreService(stores.context())
    request = core_pb2.GetCustomerRequest(customer_id=customer_id, merchant_id=merchant)
    return asyncio.run(service.GetCustomer(request, call(*scopes)))


def test_a_customer_is_created_once_per_email_and_announced_each_time() -> None:
    stores = FakeStores()

    first = create(stores, "Jo.Doe+news@gmail.com")
    again = create(stores, "jodoe@googlemail.com")  # the same person, normalized

    assert (first.created, again.created) == (True, False)
    assert first.customer_id == again.customer_id
    expected = ids.email_customer_id(MERCHANT, HASHER.email("jodoe@gmail.com"))
    assert first.customer_id == str(expected)
    # Both calls announce customer.created (one event id per customer: a repeat, recognisable).
    assert [customer_event(r)[0] for r in stores.customer_events.announced] == [
        "customer.created",
        "customer.created",
    ]
    assert len({customer_event(r)[1]["event_id"] for r in stores.customer_events.announced}) == 1


def test_the_raw_email_is_read_back_only_with_the_pii_scope() -> None:
    stores = FakeStores()
    made = create(stores, "ann@example.com")

    plain = get(stores, made.customer_id, SCOPE_CUSTOMERS_VIEW)
    full = get(stores, made.customer_id, SCOPE_CUSTOMERS_VIEW, SCOPE_CUSTOMERS_PII)

    assert not plain.HasField("email")
    assert full.email == "ann@example.com"
    assert stores.customers.asked_with_email == [False, True]
    assert plain.email_hash == HASHER.email("ann@example.com")
    assert not plain.HasField("shopify_customer_id")
    assert plain.created_at == "2026-11-22T08:00:00Z"


@pytest.mark.parametrize(
    ("email", "context", "merchant", "code"),
    [
        ("not an email", "manage", "", "INVALID_ARGUMENT"),
        ("a@b", "manage", "", "INVALID_ARGUMENT"),
        ("x" * 250 + "@b.io", "manage", "", "INVALID_ARGUMENT"),
        ("ann@example.com", "manage", OTHER_MERCHANT, "NOT_FOUND"),
        ("ann@example.com", "view", "", "PERMISSION_DENIED"),
        ("ann@example.com", "none", "", "UNAUTHENTICATED"),
    ],
)
def test_what_create_customer_refuses(email: str, context: str, merchant: str, code: str) -> None:
    contexts = {
        "manage": call(SCOPE_CUSTOMERS_MANAGE),
        "view": call(SCOPE_CUSTOMERS_VIEW),
        "none": FakeCall(()),
    }
    stores = FakeStores()

    with pytest.raises(AbortedError) as aborted:
        create(stores, email, contexts[context], merchant)

    assert aborted.value.code == getattr(grpc.StatusCode, code)
    assert stores.customers.rows == {}


@pytest.mark.parametrize(
    ("customer_id", "scopes", "merchant", "code"),
    [
        ("x-1", (SCOPE_CUSTOMERS_VIEW,), "", "INVALID_ARGUMENT"),
        ("77", (SCOPE_CUSTOMERS_VIEW,), "", "NOT_FOUND"),  # a Shopify id nobody has
        ("made", (SCOPE_CUSTOMERS_VIEW,), OTHER_MERCHANT, "NOT_FOUND"),
        ("made", (SCOPE_VIEW,), "", "PERMISSION_DENIED"),
        ("made", (SCOPE_CUSTOMERS_PII,), "", "PERMISSION_DENIED"),  # pii alone is not view
    ],
)
def test_what_get_customer_refuses(
    customer_id: str, scopes: tuple[str, ...], merchant: str, code: str
) -> None:
    stores = FakeStores()
    made = create(stores, "ann@example.com").customer_id

    with pytest.raises(AbortedError) as aborted:
        get(stores, made if customer_id == "made" else customer_id, *scopes, merchant=merchant)

    assert aborted.value.code == getattr(grpc.StatusCode, code)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("ann@example.com", True),
        ("a.b+c@sub.example.co.uk", True),
        ("ann@example", False),
        ("ann example.com", False),
        ("ann@@example.com", False),
        ("", False),
    ],
)
def test_what_counts_as_an_email(text: str, ok: bool) -> None:
    assert is_email(text) is ok


def test_customer_events_fit_their_schemas_and_carry_no_raw_email() -> None:
    at = datetime(2026, 11, 22, 8, tzinfo=UTC)
    row = CustomerRow(
        str(ids.customer_id(MERCHANT, 5)),
        MERCHANT,
        5,
        HASHER.email("a@b.io"),
        None,
        None,
        at,
        at,
        created=False,
    )
    contract, record = customer_event(row)

    assert contract == "customer.updated"
    assert avro_round_trip(contract, record) == record
    assert b"a@b.io" not in avro_bytes(contract, record)
