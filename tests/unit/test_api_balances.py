"""`GET /v1/customers/{id}/balance` and gRPC GetPointsBalance on in-memory stores: pending
points, lifetime earned and the next expiry, from the Redis cache and from MongoDB, including
documents and cache entries written before those fields existed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.grpc_service import PointsService
from connectors.balance_cache import CachedBalance, cache_key
from connectors.points_records import balance_id
from connectors.store import BALANCES
from loyalnest.tokens import SCOPE_VIEW
from loyalnest_grpc.points.v1 import points_pb2
from tests.unit.api_fakes import MERCHANT, FakeStores, auth, token

CUSTOMER = 42
KEY = cache_key("unit:", MERCHANT, CUSTOMER)
UPDATED = datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
EXPIRES = datetime(2025, 3, 31, 0, 0, tzinfo=UTC)
CURRENT = CachedBalance(
    balance=120,
    seq=4,
    updated_at=UPDATED,
    pending=30,
    lifetime_earned=200,
    next_expiry=(70, EXPIRES),
)


def naive(value: datetime) -> datetime:
    """As MongoDB returns times: UTC without a zone."""
    return value.replace(tzinfo=None)


CURRENT_DOCUMENT: dict[str, Any] = {
    "_id": balance_id(MERCHANT, CUSTOMER),
    "merchant_id": MERCHANT,
    "shopify_customer_id": CUSTOMER,
    "balance": 120,
    "seq": 4,
    "updated_at": naive(UPDATED),
    "pending": 30,
    "lifetime_earned": 200,
    "next_expiry": {"points": 70, "at": naive(EXPIRES)},
    "due_at": naive(EXPIRES),
    "v": 6,
}
# Written before pending points and expiry existed.
OLD_DOCUMENT: dict[str, Any] = {
    "_id": balance_id(MERCHANT, CUSTOMER),
    "merchant_id": MERCHANT,
    "shopify_customer_id": CUSTOMER,
    "balance": 80,
    "seq": 2,
    "updated_at": naive(UPDATED),
}
NEW_FIELDS = {
    "pending": 30,
    "lifetime_earned": 200,
    "next_expiry": {"points": 70, "at": "2025-03-31T00:00:00Z"},
}


@pytest.fixture
def stores() -> FakeStores:
    return FakeStores()


@pytest.fixture
def client(stores: FakeStores) -> Iterator[TestClient]:
    with stores.client() as http:
        yield http


def cache(stores: FakeStores, value: CachedBalance) -> None:
    """An entry as SET_IF_NEWER writes it (the script's field, value pairs)."""
    args = value.script_args(5000)
    pairs = [str(seq_or_field) for seq_or_field in args[2:]]
    entry = dict(zip(pairs[::2], pairs[1::2], strict=True)) | {"seq": str(args[0])}
    stores.redis.hashes[KEY] = {k.encode(): v.encode() for k, v in entry.items()}


def balance(client: TestClient) -> Any:
    response = client.get(f"/v1/customers/{CUSTOMER}/balance", headers=auth(SCOPE_VIEW))
    assert response.status_code == 200, response.text
    return response.json()


def test_a_cache_hit_shows_pending_lifetime_earned_and_next_expiry(
    stores: FakeStores, client: TestClient
) -> None:
    cache(stores, CURRENT)

    body = balance(client)

    assert {k: body[k] for k in NEW_FIELDS} == NEW_FIELDS
    assert (body["balance"], body["updated_at"]) == (120, "2025-03-01T12:00:00.250000Z")
    assert stores.collection(BALANCES).reads == 0


def test_a_cache_hit_with_nothing_to_expire_shows_null(
    stores: FakeStores, client: TestClient
) -> None:
    cache(stores, CachedBalance(5, 1, UPDATED, pending=0, lifetime_earned=5, next_expiry=None))

    body = balance(client)

    assert (body["pending"], body["lifetime_earned"], body["next_expiry"]) == (0, 5, None)


def test_a_miss_reads_the_fields_from_mongodb_and_fills_the_cache_with_them(
    stores: FakeStores, client: TestClient
) -> None:
    stores.collection(BALANCES).documents[CURRENT_DOCUMENT["_id"]] = CURRENT_DOCUMENT

    body = balance(client)

    assert {k: body[k] for k in NEW_FIELDS} == NEW_FIELDS
    assert (body["balance"], body["updated_at"]) == (120, "2025-03-01T12:00:00.250000Z")
    assert stores.redis.filled.wait(5), "no cache fill after a miss"
    [(key, *args)] = stores.redis.fills
    assert key == KEY
    assert args == [*CURRENT.script_args(args[1])]  # the same value, with the fill's TTL


def test_an_old_document_reads_as_nothing_pending_earned_or_expiring(
    stores: FakeStores, client: TestClient
) -> None:
    stores.collection(BALANCES).documents[OLD_DOCUMENT["_id"]] = OLD_DOCUMENT

    body = balance(client)

    assert (body["balance"], body["pending"], body["lifetime_earned"]) == (80, 0, 0)
    assert body["next_expiry"] is None
    assert body["updated_at"] == "2025-03-01T12:00:00.250000Z"


def test_an_old_cache_entry_is_a_miss(stores: FakeStores, client: TestClient) -> None:
    # Written by the version before: balance, seq and updated_at only.
    stores.redis.hashes[KEY] = {
        b"balance": b"999",
        b"seq": b"4",
        b"updated_at": UPDATED.isoformat().encode(),
    }
    stores.collection(BALANCES).documents[CURRENT_DOCUMENT["_id"]] = CURRENT_DOCUMENT

    body = balance(client)

    assert (body["balance"], body["pending"]) == (120, 30)
    assert stores.collection(BALANCES).reads == 1


def test_with_redis_down_mongodb_answers_with_the_fields(
    stores: FakeStores, client: TestClient
) -> None:
    stores.redis.down = True
    stores.collection(BALANCES).documents[CURRENT_DOCUMENT["_id"]] = CURRENT_DOCUMENT

    body = balance(client)

    assert {k: body[k] for k in NEW_FIELDS} == NEW_FIELDS


def test_a_customer_without_a_balance_is_404(client: TestClient) -> None:
    response = client.get(f"/v1/customers/{CUSTOMER}/balance", headers=auth(SCOPE_VIEW))

    assert response.status_code == 404


# ----------------------------------------------------------------------------------- gRPC


def grpc_balance(stores: FakeStores) -> Any:
    service = PointsService(stores.context())
    request = points_pb2.GetPointsBalanceRequest(customer_id=str(CUSTOMER))
    metadata: dict[str, object] = {"authorization": f"Bearer {token(SCOPE_VIEW)}"}
    return asyncio.run(service._balance(request, metadata))


def test_grpc_answers_pending_lifetime_earned_and_next_expiry(stores: FakeStores) -> None:
    cache(stores, CURRENT)

    response = grpc_balance(stores)

    assert (response.balance, response.pending, response.lifetime_earned) == (120, 30, 200)
    assert response.HasField("next_expiry")
    assert response.next_expiry.points == 70
    assert response.next_expiry.at.ToDatetime(tzinfo=UTC) == EXPIRES


def test_grpc_leaves_next_expiry_unset_when_nothing_expires(stores: FakeStores) -> None:
    stores.collection(BALANCES).documents[OLD_DOCUMENT["_id"]] = OLD_DOCUMENT

    response = grpc_balance(stores)

    assert (response.balance, response.pending, response.lifetime_earned) == (80, 0, 0)
    assert not response.HasField("next_expiry")
