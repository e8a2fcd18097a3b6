"""API bearer tokens: HS256 JWTs naming a merchant and what it may do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

ISSUER = "loyalnest"
ALGORITHM = "HS256"
SCOPE_VIEW = "merchant:points:view"
SCOPE_REDEEM = "merchant:points:redeem"
SCOPE_ADJUST = "merchant:points:adjust"  # manual adjustments: add or deduct points
SCOPE_ANALYTICS = "merchant:analytics:view"  # RFM segment counts and customers' scores
SCOPE_REFERRALS_MANAGE = "merchant:referrals:manage"  # create advocates' referral codes
SCOPE_REFERRALS_VIEW = "merchant:referrals:view"  # read codes and referrals
SCOPE_CUSTOMERS_MANAGE = "merchant:customers:manage"  # create customers (CreateCustomer)
SCOPE_CUSTOMERS_VIEW = "merchant:customers:view"  # read customers, without raw personal data
SCOPE_CUSTOMERS_PII = "merchant:customers:pii"  # ...and with it: a customer's raw email
SCOPE_TIERS_MANAGE = "merchant:tiers:manage"  # set VIP tiers and preview a change
SCOPES = frozenset(
    {
        SCOPE_VIEW,
        SCOPE_REDEEM,
        SCOPE_ADJUST,
        SCOPE_ANALYTICS,
        SCOPE_REFERRALS_MANAGE,
        SCOPE_REFERRALS_VIEW,
        SCOPE_CUSTOMERS_MANAGE,
        SCOPE_CUSTOMERS_VIEW,
        SCOPE_CUSTOMERS_PII,
        SCOPE_TIERS_MANAGE,
    }
)


class TokenError(ValueError):
    """The token is missing, malformed, expired, or not signed by us."""


@dataclass(frozen=True)
class Principal:
    merchant_id: str
    shop: str
    scopes: frozenset[str]
    expires_at: float = float("inf")  # the token's `exp` (Unix time)


def issue(
    secret: str, merchant_id: str, shop: str, scopes: set[str], *, now: datetime, ttl: timedelta
) -> str:
    unknown = scopes - SCOPES
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    claims = {
        "iss": ISSUER,
        "sub": merchant_id,
        "shop": shop,
        "scope": " ".join(sorted(scopes)),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    return Principal(
        merchant_id=str(claims["sub"]),
        shop=str(claims.get("shop", "")),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        expires_at=float(claims["exp"]),
    )
