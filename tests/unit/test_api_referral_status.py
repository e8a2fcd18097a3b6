"""Referral reads through the real app on in-memory stores: `GET /v1/referrals/{id}` (cache
first, PostgreSQL on a miss, then a guarded fill), an advocate's referrals page by page, and
gRPC `GetReferralStatus`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from api.grpc_referrals import ReferralsService
from connectors.referral_cache import cache_key, encode_document
from connectors.referral_links import ReferralLink
from connectors.referral_records import ReferralRow
from loyalnest.tokens import SCOPE_REFERRALS_MANAGE, SCOPE_REFERRALS_VIEW, SCOPE_VIEW
from loyalnest_grpc.referrals.v1 import referrals_pb2
from loyalty.referrals import referral_id
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

VIEW = auth(SCOPE_REFERRALS_VIEW)
AT = datetime(2026, 11, 1, 9, tzinfo=UTC)
ADVOCATE = 42


def row(friend: int, *, merchant: str = MERCHANT, minutes: int = 0) -> ReferralRow:
    return ReferralRow(
        merchant_id=merchant,
        referral_id=referral_id(merchant, friend, 1000 + friend),
        code="ABCD2345",
        friend=friend,
        order_id=1000 + friend,
        advocate=ADVOCATE,
        status="completed",
        reason=None,
        advocate_points=500,
        friend_points=50,
        release_at=AT + timedelta(days=14),
        decided_at=AT,
        status_rank=1,
        created_at=AT + timedelta(minutes=minutes),
        updated_at=AT + timedelta(minutes=minutes),
    )


def stores_with(*rows: ReferralRow) -> FakeStores:
    stores = FakeStores()
    stores.referrals.rows.extend(rows)
    created = datetime(2026, 10, 1, tzinfo=UTC)
    stores.links.links[(MERCHANT, "ABCD2345")] = ReferralLink("ABCD2345", ADVOCATE, created)
    return stores


def test_a_referral_read_from_postgresql_is_its_document_and_is_cached_by_version() -> None:
    stored = row(9)
    stores = stores_with(stored)
    with stores.client() as http:
        reply = http.get(f"/v1/referrals/{stored.referral_id}", headers=VIEW)
        assert stores.redis.filled.wait(5)

    assert reply.status_code == 200
    assert reply.json() == {
        "referral_id": stored.referral_id,
        "code": "ABCD2345",
        "status": "completed",
        "reason": None,
        "advocate": {"customer_id": ADVOCATE},
        "friend": {"customer_id": 9},
        "order_id": 1009,
        "rewards": {
            "advocate_points": 500,
            "friend_points": 50,
            "pending_until": "2026-11-15T09:00:00Z",
            "reversed": False,
        },
        "decided_at": "2026-11-01T09:00:00Z",
        "created_at": "2026-11-01T09:00:00Z",
        "updated_at": "2026-11-01T09:00:00Z",
    }
    key, version, ttl_ms, name, document = stores.redis.fills[0]
    assert key == cache_key("unit:", MERCHANT, stored.referral_id)
    assert (version, ttl_ms, name) == (stored.version, 60_000, "document")
    assert json.loads(document) == reply.json()


def test_a_cached_referral_is_served_without_postgresql() -> None:
    stored = row(9)
    stores = stores_with()  # not in PostgreSQL: only the cache can answer
    stores.referrals.down = True
    key = cache_key("unit:", MERCHANT, stored.referral_id)
    stores.redis.hashes[key] = {b"document": encode_document(stored).encode()}
    with stores.client() as http:
        reply = http.get(f"/v1/referrals/{stored.referral_id}", headers=VIEW)

    assert reply.status_code == 200
    assert reply.json()["friend"] == {"customer_id": 9}


def test_without_redis_postgresql_answers_and_nothing_is_filled() -> None:
    stored = row(9)
    stores = stores_with(stored)
    stores.redis.down = True
    with stores.client() as http:
        reply = http.get(f"/v1/referrals/{stored.referral_id}", headers=VIEW)

    assert reply.status_code == 200
    assert stores.redis.fills == []


def test_a_later_change_has_a_higher_version() -> None:
    completed = row(9)
    revoked = replace(completed, status="revoked", reason="refunded", status_rank=2)
    later = replace(completed, decided_at=AT + timedelta(microseconds=1), status_rank=0)

    assert completed.version < revoked.version < later.version
    assert revoked.document()["rewards"]["reversed"] is True


@pytest.mark.parametrize(
    ("path", "headers", "status", "said"),
    [
        ("/v1/referrals/not-a-uuid", VIEW, 400, "referral_id must be a UUID"),
        (f"/v1/referrals/{referral_id(MERCHANT, 1, 2)}", VIEW, 404, "referral not found"),
        (f"/v1/referrals/{row(9).referral_id}", auth(SCOPE_VIEW), 403, "lacks scope"),
        (f"/v1/referrals/{row(9).referral_id}", {}, 401, ""),
        (
            f"/v1/referrals/{row(9, merchant=OTHER_MERCHANT).referral_id}",
            VIEW,
            404,
            "referral not found",
        ),
        (
            f"/v1/referrals/{row(9).referral_id}",
            auth(SCOPE_REFERRALS_VIEW, shop=OTHER_SHOP),
            404,
            "referral not found",
        ),
    ],
)
def test_what_a_referral_read_refuses(
    path: str, headers: dict[str, str], status: int, said: str
) -> None:
    with stores_with(row(9), row(9, merchant=OTHER_MERCHANT)).client() as http:
        reply = http.get(path, headers=headers)

    assert reply.status_code == status
    assert said in reply.json()["error"]


def test_postgresql_away_is_a_503() -> None:
    stores = stores_with(row(9))
    stores.referrals.down = True
    with stores.client() as http:
        reply = http.get(f"/v1/referrals/{row(9).referral_id}", headers=VIEW)

    assert reply.status_code == 503


def test_an_advocates_referrals_come_newest_first_page_by_page() -> None:
    rows = [row(friend, minutes=friend) for friend in range(1, 6)]
    stores = stores_with(*rows, row(99, merchant=OTHER_MERCHANT))
    pages: list[list[int]] = []
    with stores.client() as http:
        before: str | None = None
        while True:
            params = {"limit": "2"} | ({"before": before} if before else {})
            reply = http.get(f"/v1/customers/{ADVOCATE}/referrals", params=params, headers=VIEW)
            assert reply.status_code == 200
            body = reply.json()
            pages.append([item["friend"]["customer_id"] for item in body["items"]])
            before = body["next_before"]
            if before is None:
                break

    assert pages == [[5, 4], [3, 2], [1]]


@pytest.mark.parametrize(
    ("path", "headers", "status", "said"),
    [
        ("/v1/customers/7/referrals", VIEW, 404, "customer has no referral code"),
        (
            f"/v1/customers/{ADVOCATE}/referrals",
            auth(SCOPE_REFERRALS_VIEW, shop=OTHER_SHOP),
            404,
            "customer has no referral code",
        ),
        ("/v1/customers/x/referrals", VIEW, 400, "customer_id must be"),
        (f"/v1/customers/{ADVOCATE}/referrals?limit=0", VIEW, 400, "limit must be"),
        (f"/v1/customers/{ADVOCATE}/referrals?before=yesterday", VIEW, 400, "before must be"),
        (
            f"/v1/customers/{ADVOCATE}/referrals?before=2026-11-01T09:00:00_{'0' * 8}",
            VIEW,
            400,
            "before must be",
        ),
        (f"/v1/customers/{ADVOCATE}/referrals", auth(SCOPE_REFERRALS_MANAGE), 403, "lacks"),
    ],
)
def test_what_an_advocates_referrals_refuse(
    path: str, headers: dict[str, str], status: int, said: str
) -> None:
    with stores_with(row(9)).client() as http:
        reply = http.get(path, headers=headers)

    assert reply.status_code == status
    assert said in reply.json()["error"]


# ----------------------------------------------------------------------------------- gRPC


def test_grpc_referral_status_is_the_rest_document() -> None:
    stored = replace(row(9), status="revoked", reason="cancelled", status_rank=2)
    service = ReferralsService(stores_with(stored).context())

    found = asyncio.run(
        service.GetReferralStatus(
            referrals_pb2.GetReferralStatusRequest(referral_id=stored.referral_id),
            call(SCOPE_REFERRALS_VIEW),
        )
    )

    assert (found.status, found.reason, found.reversed) == ("revoked", "cancelled", True)
    assert (found.friend_customer_id, found.advocate_customer_id) == (9, ADVOCATE)
    assert (found.order_id, found.advocate_points, found.friend_points) == (1009, 500, 50)
    assert found.pending_until == "2026-11-15T09:00:00Z"
    assert found.decided_at == "2026-11-01T09:00:00Z"


def test_grpc_an_unknown_advocate_is_unset() -> None:
    stored = replace(row(9), advocate=None, status="pending", status_rank=0)
    service = ReferralsService(stores_with(stored).context())

    found = asyncio.run(
        service.GetReferralStatus(
            referrals_pb2.GetReferralStatusRequest(referral_id=stored.referral_id),
            call(SCOPE_REFERRALS_VIEW),
        )
    )

    assert not found.HasField("advocate_customer_id")
    assert found.status == "pending"


@pytest.mark.parametrize(
    ("request_", "context", "code"),
    [
        (referrals_pb2.GetReferralStatusRequest(referral_id="x"), "view", "INVALID_ARGUMENT"),
        (
            referrals_pb2.GetReferralStatusRequest(referral_id=referral_id(MERCHANT, 1, 2)),
            "view",
            "NOT_FOUND",
        ),
        (
            referrals_pb2.GetReferralStatusRequest(
                referral_id=row(9).referral_id, merchant_id=OTHER_MERCHANT
            ),
            "view",
            "NOT_FOUND",
        ),
        (
            referrals_pb2.GetReferralStatusRequest(referral_id=row(9).referral_id),
            "manage",
            "PERMISSION_DENIED",
        ),
        (
            referrals_pb2.GetReferralStatusRequest(referral_id=row(9).referral_id),
            "none",
            "UNAUTHENTICATED",
        ),
    ],
)
def test_grpc_referral_status_refusals(
    request_: referrals_pb2.GetReferralStatusRequest, context: str, code: str
) -> None:
    calls = {
        "view": call(SCOPE_REFERRALS_VIEW),
        "manage": call(SCOPE_REFERRALS_MANAGE),
        "none": FakeCall(()),
    }
    service = ReferralsService(stores_with(row(9)).context())

    with pytest.raises(AbortedError) as aborted:
        asyncio.run(service.GetReferralStatus(request_, calls[context]))

    assert aborted.value.code == getattr(grpc.StatusCode, code)
