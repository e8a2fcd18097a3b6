"""Referral codes through the real app on in-memory stores: every status code path."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from connectors.referral_links import ReferralLink
from loyalnest.tokens import SCOPE_REFERRALS_MANAGE, SCOPE_REFERRALS_VIEW, SCOPE_VIEW
from loyalty.pii import merchant_key
from loyalty.referral_codes import advocate_code
from loyalty.referral_commands import decode_code_record
from loyalty.referral_fraud import Identity
from loyalty.referrals import CodeCreated
from tests.unit.api_fakes import (
    MERCHANT,
    OTHER_SHOP,
    SECRETS_KEY,
    SHOP,
    FakeStores,
    auth,
)

MANAGE = auth(SCOPE_REFERRALS_MANAGE)
VIEW = auth(SCOPE_REFERRALS_VIEW)
CODE = re.compile(r"[2-9A-HJKMNP-Z]{8}")


def test_an_advocate_gets_a_code_once_and_the_same_code_after() -> None:
    stores = FakeStores()
    with stores.client() as http:
        first = http.post("/v1/referrals/codes", json={"customer_id": 42}, headers=MANAGE)
        again = http.post("/v1/referrals/codes", json={"customer_id": 42}, headers=MANAGE)

    assert first.status_code == 201
    assert again.status_code == 200
    assert first.json() == again.json()
    body = first.json()
    assert CODE.fullmatch(body["code"])
    assert body["customer_id"] == 42
    assert body["url"] == f"https://{SHOP}/?ref={body['code']}"
    assert body["created_at"] == "2026-11-22T08:00:00Z"
    assert body["code"] == advocate_code(merchant_key(SECRETS_KEY, MERCHANT), 42)


def test_codes_differ_per_advocate_and_per_merchant() -> None:
    with FakeStores().client() as http:
        a = http.post("/v1/referrals/codes", json={"customer_id": 1}, headers=MANAGE).json()
        b = http.post("/v1/referrals/codes", json={"customer_id": 2}, headers=MANAGE).json()
        other = http.post(
            "/v1/referrals/codes",
            json={"customer_id": 1},
            headers=auth(SCOPE_REFERRALS_MANAGE, shop=OTHER_SHOP),
        ).json()

    assert len({a["code"], b["code"], other["code"]}) == 3
    assert other["url"].startswith(f"https://{OTHER_SHOP}/")


def test_a_code_another_advocate_holds_moves_the_next_one_to_its_next_attempt() -> None:
    stores = FakeStores()
    key = merchant_key(SECRETS_KEY, MERCHANT)
    # Advocate 9 holds what would be advocate 7's first code (a collision, made by hand).
    taken = advocate_code(key, 7, 0)
    stores.links.links[(MERCHANT, taken)] = ReferralLink(taken, 9, datetime(2026, 1, 1, tzinfo=UTC))
    with stores.client() as http:
        reply = http.post("/v1/referrals/codes", json={"customer_id": 7}, headers=MANAGE)

    assert reply.status_code == 201
    assert reply.json()["code"] == advocate_code(key, 7, 1)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"{", "body is not JSON"),
        (b"[42]", "body must be a JSON object"),
        (b"{}", "customer_id must be an integer id"),
        (b'{"customer_id": "42"}', "customer_id must be an integer id"),
        (b'{"customer_id": true}', "customer_id must be an integer id"),
        (b'{"customer_id": 0}', "customer_id must be an id from 1 to 2^63-1"),
        (b'{"customer_id": 9223372036854775808}', "customer_id must be an id from 1 to 2^63-1"),
        (b'{"customer_id": 4.2}', "customer_id must be an integer id"),
    ],
)
def test_a_bad_body_is_a_400_saying_why(body: bytes, said: str) -> None:
    stores = FakeStores()
    with stores.client() as http:
        reply = http.post("/v1/referrals/codes", content=body, headers=MANAGE)

    assert reply.status_code == 400
    assert said in reply.json()["error"]
    assert stores.links.links == {}


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/v1/referrals/codes", SCOPE_REFERRALS_VIEW),
        ("POST", "/v1/referrals/codes", SCOPE_VIEW),
        ("GET", "/v1/referrals/codes/ABCDEFGH", SCOPE_REFERRALS_MANAGE),
    ],
)
def test_without_the_scope_it_is_403_and_without_a_token_401(
    method: str, path: str, scope: str
) -> None:
    with FakeStores().client() as http:
        forbidden = http.request(method, path, json={"customer_id": 1}, headers=auth(scope))
        anonymous = http.request(method, path, json={"customer_id": 1})

    assert forbidden.status_code == 403
    assert anonymous.status_code == 401


def test_a_code_reads_back_whatever_its_case_and_another_merchants_is_404() -> None:
    with FakeStores().client() as http:
        code = http.post("/v1/referrals/codes", json={"customer_id": 5}, headers=MANAGE).json()
        found = http.get(f"/v1/referrals/codes/{code['code'].lower()}", headers=VIEW)
        elsewhere = http.get(
            f"/v1/referrals/codes/{code['code']}",
            headers=auth(SCOPE_REFERRALS_VIEW, shop=OTHER_SHOP),
        )
        unknown = http.get("/v1/referrals/codes/ABCDEFGH", headers=VIEW)

    assert found.status_code == 200
    zero = {"pending": 0, "completed": 0, "blocked": 0, "revoked": 0}
    assert found.json() == code | {"referrals": zero}
    assert elsewhere.status_code == 404
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "referral code not found"}


@pytest.mark.parametrize("code", ["ABCDEFG", "ABCDEFGHJ", "ABCDEFGI", "ABCD-FGH", "ABCDEFG0"])
def test_a_code_of_the_wrong_shape_is_a_400(code: str) -> None:
    with FakeStores().client() as http:
        reply = http.get(f"/v1/referrals/codes/{code}", headers=VIEW)

    assert reply.status_code == 400
    assert "a referral code is 8 characters of" in reply.json()["error"]


def test_postgresql_away_is_a_503_with_retry_after() -> None:
    stores = FakeStores()
    stores.links.down = True
    with stores.client() as http:
        created = http.post("/v1/referrals/codes", json={"customer_id": 1}, headers=MANAGE)
        read = http.get("/v1/referrals/codes/ABCDEFGH", headers=VIEW)

    assert [created.status_code, read.status_code] == [503, 503]
    assert created.headers["Retry-After"] == "5"


def test_every_request_for_a_code_puts_it_on_referral_commands_with_the_advocates_hashes() -> None:
    stores = FakeStores()
    hashes = Identity(42, email_hash="h1:" + "e" * 64, address_hashes=frozenset({"h1:" + "a" * 64}))
    stores.links.identities[(MERCHANT, 42)] = hashes
    with stores.client() as http:
        first = http.post("/v1/referrals/codes", json={"customer_id": 42}, headers=MANAGE).json()
        http.post("/v1/referrals/codes", json={"customer_id": 42}, headers=MANAGE)

    sent = stores.producer.sent
    assert [s.topic for s in sent] == ["unit.referral.commands"] * 2
    assert {s.key for s in sent} == {f"{MERCHANT}:{first['code']}".encode()}
    at = datetime(2026, 11, 22, 8, tzinfo=UTC)  # the code's creation time
    assert decode_code_record(sent[0].value) == CodeCreated(MERCHANT, first["code"], hashes, at)
    assert sent[0].value == sent[1].value


def test_kafka_away_is_a_503_and_the_code_is_kept_for_the_retry() -> None:
    stores = FakeStores()
    stores.producer.failing = True
    with stores.client() as http:
        failed = http.post("/v1/referrals/codes", json={"customer_id": 8}, headers=MANAGE)
        stores.producer.failing = False
        retried = http.post("/v1/referrals/codes", json={"customer_id": 8}, headers=MANAGE)

    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "5"
    assert retried.status_code == 200  # the code was stored; now the flow hears of it too
    assert len(stores.producer.sent) == 1


def test_a_code_counts_its_referrals_by_status_every_status_named() -> None:
    stores = FakeStores()
    with stores.client() as http:
        code = http.post("/v1/referrals/codes", json={"customer_id": 5}, headers=MANAGE).json()
        stores.links.referral_counts[(MERCHANT, code["code"])] = {"completed": 3, "blocked": 1}
        found = http.get(f"/v1/referrals/codes/{code['code']}", headers=VIEW).json()

    assert found["referrals"] == {"pending": 0, "completed": 3, "blocked": 1, "revoked": 0}
