"""API tokens: what they carry, and every way a bad one is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from loyalnest import tokens

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
NOW = datetime.now(UTC)


def issue(scopes: set[str], *, now: datetime = NOW, secret: str = SECRET) -> str:
    return tokens.issue(secret, "m-1", "demo.myshopify.com", scopes, now=now, ttl=timedelta(days=1))


def test_a_token_carries_merchant_shop_and_scopes() -> None:
    principal = tokens.verify(SECRET, issue({tokens.SCOPE_VIEW, tokens.SCOPE_REDEEM}))

    assert principal.merchant_id == "m-1"
    assert principal.shop == "demo.myshopify.com"
    assert principal.scopes == {tokens.SCOPE_VIEW, tokens.SCOPE_REDEEM}


def test_unknown_scopes_are_refused_at_issue() -> None:
    with pytest.raises(ValueError, match="unknown scopes: admin"):
        issue({"admin"})


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        issue({tokens.SCOPE_VIEW}, secret="another-secret-that-is-long-enough-for-hs256"),
        issue({tokens.SCOPE_VIEW}, now=datetime.now(UTC) - timedelta(days=3)),
        jwt.encode({"sub": "m-1", "iat": 0, "exp": 2**40}, SECRET, algorithm="HS256"),
        jwt.encode({"iss": "loyalnest", "sub": "m"}, SECRET * 2, algorithm="HS512"),
    ],
    ids=["empty", "garbage", "wrong-key", "expired", "no-issuer", "wrong-algorithm"],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(tokens.TokenError):
        tokens.verify(SECRET, token)


def test_a_token_can_grant_manual_adjustments() -> None:
    principal = tokens.verify(SECRET, issue({tokens.SCOPE_ADJUST}))

    assert tokens.SCOPE_ADJUST == "merchant:points:adjust"
    assert principal.scopes == {tokens.SCOPE_ADJUST}
