"""Deterministic identities: the same input always gives the same UUID.

Shopify ids are merchant-scoped integers. UUIDv5 over the shop domain lets every component
(flows, API, Core's tables) derive the same internal ids without a lookup, and lets a replayed
event produce the very id its first delivery did, which is what makes sinks idempotent.
"""

from __future__ import annotations

import json
import uuid
from functools import lru_cache

NAMESPACE = uuid.UUID("6f1b8a6e-3c1d-5b7e-9a42-1c0de5a10a17")


# The flow derives these for every record it writes, a few times per command for the same
# merchant and customer: remembering the latest ones saves a SHA-1 and a UUID each time.
@lru_cache(maxsize=1024)
def merchant_id(shop_domain: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"shop:{normalize_shop(shop_domain)}")


@lru_cache(maxsize=1024)
def merchant_key(shop_domain: str) -> str:
    """The merchant id as text, as records and keys carry it."""
    return str(merchant_id(shop_domain))


@lru_cache(maxsize=1024)
def customer_id(merchant: uuid.UUID | str, shopify_customer_id: int) -> uuid.UUID:
    """Derived from the merchant id (itself derived from the shop), so a redemption, which
    knows only the merchant, and an order, which knows the shop, name the same customer."""
    return uuid.uuid5(NAMESPACE, f"customer:{merchant}:{shopify_customer_id}")


def email_customer_id(merchant: uuid.UUID | str, email_hash: str) -> uuid.UUID:
    """A customer Core created from an email alone, before any Shopify id is known."""
    return uuid.uuid5(NAMESPACE, f"customer-email:{merchant}:{email_hash}")


def event_id(*parts: object) -> uuid.UUID:
    """An id for an event defined by its business key, e.g. (shop, order id, "earn")."""
    # JSON keeps the parts apart: ("a:b", "c") and ("a", "b:c") must not collide.
    return uuid.uuid5(NAMESPACE, "event:" + json.dumps([str(p) for p in parts]))


def normalize_shop(shop_domain: str) -> str:
    return shop_domain.strip().lower()


def redemption_id(merchant: uuid.UUID | str, idempotency_key: str) -> uuid.UUID:
    """The same Idempotency-Key from the same merchant always names the same redemption."""
    return uuid.uuid5(NAMESPACE, f"redemption:{merchant}:{idempotency_key}")


def adjustment_id(merchant: uuid.UUID | str, idempotency_key: str) -> uuid.UUID:
    """The same Idempotency-Key from the same merchant always names the same adjustment; its
    own namespace, so a key a merchant used for a redemption names a different adjustment."""
    return uuid.uuid5(NAMESPACE, f"adjustment:{merchant}:{idempotency_key}")
