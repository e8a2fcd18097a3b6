"""Deterministic identities: the same input always gives the same UUID.

Shopify ids are merchant-scoped integers. UUIDv5 over the shop domain lets every component
(flows, API, Core's tables) derive the same internal ids without a lookup, and lets a replayed
event produce the very id its first delivery did, which is what makes sinks idempotent.
"""

from __future__ import annotations

import hashlib
import uuid
from functools import lru_cache
from json.encoder import encode_basestring_ascii

NAMESPACE = uuid.UUID("6f1b8a6e-3c1d-5b7e-9a42-1c0de5a10a17")
_NAMESPACE_BYTES = NAMESPACE.bytes


def uuid5_text(name: str) -> str:
    """`str(uuid.uuid5(NAMESPACE, name))`, without building the UUID object on the way: the
    flows derive ids as text for every record they write, and the object and its `str` were
    two thirds of the cost."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])  # noqa: S324 - UUIDv5 is SHA-1 by definition
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The flow derives these for every record it writes, a few times per command for the same
# merchant and customer: remembering the latest ones saves a SHA-1 and a UUID each time.
@lru_cache(maxsize=1024)
def merchant_id(shop_domain: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"shop:{normalize_shop(shop_domain)}")


@lru_cache(maxsize=1024)
def merchant_key(shop_domain: str) -> str:
    """The merchant id as text, as records and keys carry it."""
    return str(merchant_id(shop_domain))


def customer_id(merchant: uuid.UUID | str, shopify_customer_id: int) -> uuid.UUID:
    """Derived from the merchant id (itself derived from the shop), so a redemption, which
    knows only the merchant, and an order, which knows the shop, name the same customer."""
    return uuid.UUID(customer_key(merchant, shopify_customer_id))


@lru_cache(maxsize=1024)
def customer_key(merchant: uuid.UUID | str, shopify_customer_id: int) -> str:
    """The customer id as text, as records carry it."""
    return uuid5_text(f"customer:{merchant}:{shopify_customer_id}")


def email_customer_id(merchant: uuid.UUID | str, email_hash: str) -> uuid.UUID:
    """A customer Core created from an email alone, before any Shopify id is known."""
    return uuid.uuid5(NAMESPACE, f"customer-email:{merchant}:{email_hash}")


def event_id(*parts: object) -> uuid.UUID:
    """An id for an event defined by its business key, e.g. (shop, order id, "earn")."""
    return uuid.UUID(event_key(*parts))


def event_key(*parts: object) -> str:
    """The event id as text, as records carry it."""
    # The parts as a JSON list of strings (what `json.dumps` writes, built without it) keep
    # them apart: ("a:b", "c") and ("a", "b:c") must not collide.
    listed = ", ".join([encode_basestring_ascii(str(p)) for p in parts])
    return uuid5_text(f"event:[{listed}]")


def normalize_shop(shop_domain: str) -> str:
    return shop_domain.strip().lower()


def redemption_id(merchant: uuid.UUID | str, idempotency_key: str) -> uuid.UUID:
    """The same Idempotency-Key from the same merchant always names the same redemption."""
    return uuid.uuid5(NAMESPACE, f"redemption:{merchant}:{idempotency_key}")


def adjustment_id(merchant: uuid.UUID | str, idempotency_key: str) -> uuid.UUID:
    """The same Idempotency-Key from the same merchant always names the same adjustment; its
    own namespace, so a key a merchant used for a redemption names a different adjustment."""
    return uuid.uuid5(NAMESPACE, f"adjustment:{merchant}:{idempotency_key}")
