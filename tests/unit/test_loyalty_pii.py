"""Personal data at the edge: normalization, keyed hashes, and a redacted order holding no raw
personal value while keeping everything else."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from loyalty.pii import (
    ADDRESS_HASH,
    NAME_HASH,
    Hasher,
    is_hash,
    merchant_key,
    normalize_address,
    normalize_email,
    normalize_name,
    normalize_phone,
    redact_order,
)

KEY = "a-deployment-secrets-key"
SHOP_A = Hasher(merchant_key(KEY, "merchant-a"))
SHOP_B = Hasher(merchant_key(KEY, "merchant-b"))


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  John.Doe+promo@GMail.com ", "johndoe@gmail.com"),
        ("j.o.e+x+y@googlemail.com", "joe@gmail.com"),
        ("Jane.Doe+news@Example.COM", "jane.doe@example.com"),
        ("\uff4a\uff41\uff4e\uff45@example.com", "jane@example.com"),  # full-width letters (NFKC)
        ("not-an-email", "not-an-email"),
        ("+only@example.com", "@example.com"),
    ],
)
def test_emails_normalize_as_mail_providers_deliver_them(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


def test_names_phones_and_addresses_normalize_to_one_form() -> None:
    assert (
        normalize_name("  ANNA ", "Müller\t") == normalize_name("anna", "MÜLLER") == "anna müller"
    )
    assert normalize_phone("+1 (555) 010-9999") == normalize_phone("15550109999")
    one = {"address1": "1 Main  St", "city": "Springfield", "zip": "AB1 2CD", "country_code": "GB"}
    same = {"address1": "1 MAIN ST", "city": "springfield", "zip": "ab12cd", "country": "gb"}
    assert normalize_address(one) == normalize_address(same)
    assert normalize_address(one) != normalize_address({**one, "address2": "Flat 2"})


def test_a_hash_is_keyed_per_merchant_and_per_kind() -> None:
    email = SHOP_A.email("joe@gmail.com")

    assert email == SHOP_A.email("J.O.E+promo@googlemail.com")  # one person, one hash
    assert email != SHOP_B.email("joe@gmail.com")  # not linkable across merchants
    assert SHOP_A.text("joe") != SHOP_A.name("joe", None) != SHOP_A.ip("joe")
    assert is_hash(email)
    assert not is_hash("joe@gmail.com")


def order() -> dict[str, Any]:
    address = {
        "first_name": "Anna",
        "last_name": "Müller",
        "name": "Anna Müller",
        "address1": "1 Main St",
        "address2": "Flat 2",
        "company": "Müller GmbH",
        "city": "Springfield",
        "zip": "AB1 2CD",
        "country_code": "GB",
        "phone": "+44 20 7946 0000",
        "latitude": 51.5,
        "longitude": -0.12,
    }
    return {
        "id": 42,
        "email": "Anna.Mueller+shop@gmail.com",
        "contact_email": "anna.mueller@gmail.com",
        "phone": "+44 7700 900000",
        "browser_ip": "203.0.113.7",
        "client_details": {"browser_ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
        "subtotal_price": "10.00",
        "discount_codes": [{"code": "FRIEND-ABC", "amount": "1.00"}],
        "customer": {
            "id": 7,
            "email": "anna.mueller@gmail.com",
            "phone": "+44 7700 900000",
            "first_name": "Anna",
            "last_name": "Müller",
            "default_address": dict(address),
        },
        "billing_address": dict(address),
        "shipping_address": {**address, "address1": "2 Side Rd"},
    }


RAW = (
    "anna",
    "müller",
    "mueller",
    "main st",
    "side rd",
    "flat 2",
    "gmbh",
    "springfield",
    "7946",
    "900000",
    "203.0.113",
    "51.5",
)


def test_a_redacted_order_holds_no_raw_personal_value() -> None:
    text = json.dumps(redact_order(order(), SHOP_A), ensure_ascii=False).lower()

    assert [raw for raw in RAW if raw in text] == []


def test_redaction_keeps_the_rest_and_adds_the_hashes_fraud_checks_compare() -> None:
    body = order()
    redacted = redact_order(body, SHOP_A)

    assert body == order()  # the input is not changed
    assert (redacted["id"], redacted["subtotal_price"]) == (42, "10.00")
    assert redacted["discount_codes"] == body["discount_codes"]
    assert redacted["client_details"]["user_agent"] == "Mozilla/5.0"
    assert redacted["email"] == redacted["contact_email"] == redacted["customer"]["email"]
    assert redacted["customer"][NAME_HASH] == SHOP_A.name("anna", "MÜLLER")
    billing, shipping = redacted["billing_address"], redacted["shipping_address"]
    assert billing[ADDRESS_HASH] == redacted["customer"]["default_address"][ADDRESS_HASH]
    assert billing[ADDRESS_HASH] != shipping[ADDRESS_HASH]
    assert redacted["browser_ip"] == redacted["client_details"]["browser_ip"]


def test_redacting_twice_changes_nothing_and_absent_values_stay_absent() -> None:
    once = redact_order(order(), SHOP_A)

    assert redact_order(copy.deepcopy(once), SHOP_A) == once
    guest = redact_order({"id": 1, "email": None, "customer": None}, SHOP_A)
    assert guest == {"id": 1, "email": None, "customer": None}
