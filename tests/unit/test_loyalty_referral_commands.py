"""The referrals flow's record formats: what is written decodes to the same record, and
anything else is refused with its reason."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from loyalty.errors import InvalidEventError
from loyalty.referral_commands import (
    decode_code_record,
    decode_friend_record,
    encode_claim,
    encode_code_created,
    encode_friend_order,
    encode_verdict,
    referral_key,
)
from loyalty.referral_fraud import Block, Identity
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import Claim, CodeCreated, FriendOrder, Verdict

MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
HASH = "h1:" + "c" * 64
CREATED = CodeCreated(
    MERCHANT,
    "ABCD2345",
    Identity(7, email_hash=HASH, name_hash=None, address_hashes=frozenset({HASH})),
    datetime(2026, 11, 22, 8, 30, tzinfo=UTC),
)


def test_a_code_record_round_trips() -> None:
    assert decode_code_record(encode_code_created(CREATED)) == CREATED
    assert referral_key(MERCHANT, "ABCD2345") == f"{MERCHANT}:ABCD2345".encode()


def body(**changes: Any) -> bytes:
    record = json.loads(encode_code_created(CREATED))
    record.update(changes)
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"[]", "not a JSON object"),
        (body(type="referral.order"), "unknown referral command type"),
        (body(code="abcd2345"), "not a referral code"),
        (body(code="ABCD234I"), "not a referral code"),
        (body(merchant_id="m"), "merchant_id must be a UUID"),
        (body(advocate=0), "advocate must be an id"),
        (body(advocate_email_hash="a@b.c"), "advocate_email_hash must be a keyed hash"),
        (body(advocate_address_hashes=["x"]), "advocate_address_hashes must hold keyed hashes"),
        (body(advocate_address_hashes=[HASH] * 9), "advocate_address_hashes must be a list of"),
        (body(at=None), "at is missing"),
    ],
)
def test_anything_else_is_refused_saying_why(raw: bytes, said: str) -> None:
    with pytest.raises(InvalidEventError, match=said):
        decode_code_record(raw)


CLAIM = Claim(MERCHANT, "ABCD2345", MERCHANT, Identity(9, HASH), 5, CREATED.at, HASH)
ORDER = FriendOrder(
    shop="ref.myshopify.com",
    merchant_id=MERCHANT,
    friend=9,
    order_id=5,
    placed_at=CREATED.at,
    at=CREATED.at,
    paid=True,
    cancelled=False,
    net_subtotal=Decimal("12.50"),
    fully_refunded=False,
    code=None,
    identity=Identity(9, None, HASH, frozenset({HASH})),
    ip_hash=None,
    terms=ReferralTerms(500, 50, Decimal("10.00"), 7),
    locale="he",
)


@pytest.mark.parametrize("record", [CLAIM, CREATED])
def test_code_log_records_round_trip(record: CodeCreated | Claim) -> None:
    raw = encode_claim(record) if isinstance(record, Claim) else encode_code_created(record)
    assert decode_code_record(raw) == record


@pytest.mark.parametrize(
    "record",
    [
        ORDER,
        replace(ORDER, code="ABCD2345", cancelled=True, fully_refunded=True),
        Verdict(MERCHANT, 9, MERCHANT, 7, None),
        Verdict(MERCHANT, 9, MERCHANT, None, None),
        Verdict(MERCHANT, 9, MERCHANT, 7, Block.IP_VELOCITY),
    ],
)
def test_friend_log_records_round_trip(record: FriendOrder | Verdict) -> None:
    raw = encode_friend_order(record) if isinstance(record, FriendOrder) else encode_verdict(record)
    assert decode_friend_record(raw) == record


def friend_body(**changes: Any) -> bytes:
    record = json.loads(encode_friend_order(ORDER))
    record.update(changes)
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (friend_body(type="referral.code"), "unknown referral record type"),
        (friend_body(paid="yes"), "paid must be true or false"),
        (friend_body(net_subtotal="-1"), "net_subtotal must be a decimal amount"),
        (friend_body(advocate_points=2_000_000), "referral terms: advocate_points"),
        (friend_body(min_subtotal="1.001"), "referral terms: referral minimum subtotal"),
        (friend_body(locale="english"), "locale must be a language code"),
        (friend_body(shop="example.com"), "not a myshopify.com shop domain"),
        (
            json.dumps(
                {**json.loads(encode_verdict(Verdict(MERCHANT, 9, MERCHANT, 7))), "block": "nope"}
            ).encode(),
            "unknown block",
        ),
    ],
)
def test_bad_friend_records_are_refused_saying_why(raw: bytes, said: str) -> None:
    with pytest.raises(InvalidEventError, match=said):
        decode_friend_record(raw)
