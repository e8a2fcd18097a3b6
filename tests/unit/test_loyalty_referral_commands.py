"""The referral.commands format: what the API writes decodes to the same record, and anything
else is refused with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from loyalty.errors import InvalidEventError
from loyalty.referral_commands import decode_referral_command, encode_code_created, referral_key
from loyalty.referral_fraud import Identity
from loyalty.referrals import CodeCreated

MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
HASH = "h1:" + "c" * 64
CREATED = CodeCreated(
    MERCHANT,
    "ABCD2345",
    Identity(7, email_hash=HASH, name_hash=None, address_hashes=frozenset({HASH})),
    datetime(2026, 11, 22, 8, 30, tzinfo=UTC),
)


def test_a_code_record_round_trips() -> None:
    assert decode_referral_command(encode_code_created(CREATED)) == CREATED
    assert referral_key(MERCHANT, "ABCD2345") == f"{MERCHANT}:ABCD2345".encode()


def body(**changes: Any) -> bytes:
    record = json.loads(encode_code_created(CREATED))
    record.update(changes)
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"[]", "not a JSON object"),
        (body(type="referral.claim"), "unknown referral command type"),
        (body(code="abcd2345"), "not a referral code"),
        (body(code="ABCD234I"), "not a referral code"),
        (body(merchant_id="m"), "merchant_id must be a UUID"),
        (body(advocate=0), "advocate must be an id"),
        (body(email_hash="alice@example.com"), "email_hash must be a keyed hash"),
        (body(address_hashes=["x"]), "address_hashes must hold keyed hashes only"),
        (body(address_hashes=[HASH] * 9), "address_hashes must be a list of at most 8"),
        (body(at=None), "at is missing"),
    ],
)
def test_anything_else_is_refused_saying_why(raw: bytes, said: str) -> None:
    with pytest.raises(InvalidEventError, match=said):
        decode_referral_command(raw)
