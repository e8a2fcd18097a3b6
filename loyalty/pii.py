"""Customers' personal data, kept at the edge: normalization, keyed hashes, redacted orders.

The API replaces every raw personal value in an order webhook (emails, phones, names, address
lines, browser IPs) with a keyed hash before producing it, so Kafka, flow state and MongoDB hold
none; the raw values go to Core's encrypted `customers` table only. Fraud checks compare the
hashes: equal normalized values give equal hashes within one merchant, and without the key a
hash reveals nothing (HMAC-SHA256; a plain hash of an email is easily reversed by guessing).

Each merchant hashes under its own key (derived from LOYALNEST_SECRETS_KEY and the merchant
id), so the same person at two merchants is not linkable through the hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

HASH_PREFIX = "h1:"  # the scheme's version: HMAC-SHA256, hex
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_SPACES = re.compile(r"\s+")
_NOT_DIGITS = re.compile(r"[^0-9]", re.ASCII)


class Kind(Enum):
    """What a hash is of; part of the hashed text, so an email and a name never collide."""

    EMAIL = "email"
    PHONE = "phone"
    NAME = "name"
    ADDRESS = "address"  # one whole address (street lines, city, zip, country)
    TEXT = "text"  # any other personal value, hashed only to remove it (address lines)
    IP = "ip"


MAX_EMAIL = 254  # RFC 5321's limit on a forward path
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def is_email(text: str) -> bool:
    """Plausibly an address: one @, something before it, a dotted domain, no spaces. Whether
    it is deliverable is the merchant's business; this only refuses what cannot be one."""
    return len(text) <= MAX_EMAIL and _EMAIL.fullmatch(text) is not None


def normalize_email(email: str) -> str:
    """Lower-case, `+tag` removed, and for Gmail the dots of the local part removed (Gmail
    delivers `j.o.e+x@googlemail.com` to `joe@gmail.com`, so they are one person)."""
    text = unicodedata.normalize("NFKC", email).strip().lower()
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def normalize_text(text: str) -> str:
    """Case-folded, compatibility-normalized, spaces collapsed: `  ANNA  Müller` and
    `anna müller` are one name."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalize_phone(phone: str) -> str:
    """Digits only (a leading `+` and separators dropped)."""
    return _NOT_DIGITS.sub("", unicodedata.normalize("NFKC", phone))


def normalize_name(first: str | None, last: str | None) -> str:
    return normalize_text(f"{first or ''} {last or ''}")


def normalize_address(address: dict[str, Any]) -> str:
    """One line from the parts that locate a household; name, company and phone left out."""
    parts = [
        address.get("address1"),
        address.get("address2"),
        address.get("city"),
        _compact(address.get("zip")),
        address.get("country_code") or address.get("country"),
    ]
    return "|".join(normalize_text(p) if isinstance(p, str) else "" for p in parts)


def merchant_key(secrets_key: str, merchant_id: str) -> bytes:
    """The merchant's hashing key, derived from the deployment's secrets key."""
    return hmac.new(secrets_key.encode(), f"pii:{merchant_id}".encode(), hashlib.sha256).digest()


def keyed_hash(key: bytes, kind: Kind, normalized: str) -> str:
    digest = hmac.new(key, f"{kind.value}:{normalized}".encode(), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest


def is_hash(value: object) -> bool:
    return isinstance(value, str) and value.startswith(HASH_PREFIX) and len(value) == 67


@dataclass(frozen=True)
class Hasher:
    """One merchant's hashes of normalized values."""

    key: bytes

    def email(self, email: str) -> str:
        return keyed_hash(self.key, Kind.EMAIL, normalize_email(email))

    def phone(self, phone: str) -> str:
        return keyed_hash(self.key, Kind.PHONE, normalize_phone(phone))

    def name(self, first: str | None, last: str | None) -> str:
        return keyed_hash(self.key, Kind.NAME, normalize_name(first, last))

    def address(self, address: dict[str, Any]) -> str:
        return keyed_hash(self.key, Kind.ADDRESS, normalize_address(address))

    def text(self, text: str) -> str:
        return keyed_hash(self.key, Kind.TEXT, normalize_text(text))

    def ip(self, ip: str) -> str:
        return keyed_hash(self.key, Kind.IP, ip.strip().lower())


def _compact(value: object) -> object:
    return value.replace(" ", "") if isinstance(value, str) else value


# --------------------------------------------------------------------- redacting an order

# Fields of an address object that are personal, and how each is hashed.
_ADDRESS_FIELDS: dict[str, Callable[[Hasher, str], str]] = {
    "first_name": Hasher.text,
    "last_name": Hasher.text,
    "name": Hasher.text,
    "address1": Hasher.text,
    "address2": Hasher.text,
    "city": Hasher.text,
    "zip": Hasher.text,
    "company": Hasher.text,
    "phone": Hasher.phone,
}
ADDRESS_OBJECTS = ("billing_address", "shipping_address")
# What a redacted order adds: the whole-record hashes fraud checks compare.
NAME_HASH = "name_hash"
ADDRESS_HASH = "address_hash"


def redact_order(body: dict[str, Any], hasher: Hasher) -> dict[str, Any]:
    """A copy of an order webhook body with every personal value replaced by its keyed hash,
    plus `customer.name_hash` and each address's `address_hash` for the fraud checks.

    Values that are not text (null, absent) are left as they are; coordinates are dropped, as
    a hash of a float is no use to anyone. The input is not changed.
    """
    out = dict(body)
    for field in ("email", "contact_email"):
        _replace(out, field, hasher.email)
    _replace(out, "phone", hasher.phone)
    _replace(out, "browser_ip", hasher.ip)
    details = out.get("client_details")
    if isinstance(details, dict):
        out["client_details"] = dict(details)
        _replace(out["client_details"], "browser_ip", hasher.ip)
    customer = out.get("customer")
    if isinstance(customer, dict):
        out["customer"] = _redact_customer(customer, hasher)
    for name in ADDRESS_OBJECTS:
        address = out.get(name)
        if isinstance(address, dict):
            out[name] = _redact_address(address, hasher)
    return out


def _redact_customer(customer: dict[str, Any], hasher: Hasher) -> dict[str, Any]:
    out = dict(customer)
    first, last = _raw(out.get("first_name")), _raw(out.get("last_name"))
    if first is not None or last is not None:
        out[NAME_HASH] = hasher.name(first, last)
    _replace(out, "email", hasher.email)
    _replace(out, "phone", hasher.phone)
    _replace(out, "first_name", hasher.text)
    _replace(out, "last_name", hasher.text)
    default = out.get("default_address")
    if isinstance(default, dict):
        out["default_address"] = _redact_address(default, hasher)
    return out


def _redact_address(address: dict[str, Any], hasher: Hasher) -> dict[str, Any]:
    out = dict(address)
    if any(_raw(address.get(part)) for part in ("address1", "address2", "city", "zip")):
        out[ADDRESS_HASH] = hasher.address(address)
    for field, hash_of in _ADDRESS_FIELDS.items():
        value = _raw(out.get(field))
        if value:
            out[field] = hash_of(hasher, value)
    for field in ("latitude", "longitude"):
        out.pop(field, None)
    return out


def _replace(record: dict[str, Any], field: str, hash_of: Callable[[str], str]) -> None:
    value = _raw(record.get(field))
    if value:
        record[field] = hash_of(value)


def _raw(value: object) -> str | None:
    """A personal value not hashed yet (a body redacted twice keeps its first hashes)."""
    return value if isinstance(value, str) and not is_hash(value) else None


# ------------------------------------------------------------ what the customers table keeps


@dataclass(frozen=True)
class PersonalData:
    """What an order says about its customer, for Core's `customers` row: the raw email (to be
    stored encrypted) and the hashes the fraud checks and lookups use."""

    customer: int
    email: str | None
    email_hash: str | None
    name_hash: str | None
    address_hash: str | None


def personal_data(body: dict[str, Any], hasher: Hasher) -> PersonalData | None:
    """The customer's personal data in a raw (not yet redacted) order body; None for a guest
    checkout or a customer without a usable id."""
    customer = body.get("customer")
    if not isinstance(customer, dict):
        return None
    customer_id = customer.get("id")
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        return None
    email = _raw(customer.get("email")) or _raw(body.get("email")) or None
    first, last = _raw(customer.get("first_name")), _raw(customer.get("last_name"))
    address = customer.get("default_address")
    has_address = isinstance(address, dict) and any(
        _raw(address.get(part)) for part in ("address1", "address2", "city", "zip")
    )
    return PersonalData(
        customer=customer_id,
        email=email,
        email_hash=hasher.email(email) if email else None,
        name_hash=hasher.name(first, last) if first or last else None,
        address_hash=hasher.address(address) if has_address and isinstance(address, dict) else None,
    )
