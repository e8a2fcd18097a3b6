"""One bearer-token check for REST and gRPC; each maps its two refusals to its own codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from api import auth
from api.auth import AuthError, Refusal, authenticate, http_error
from api.grpc_calls import rpc_error
from loyalnest import tokens

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def bearer(*scopes: str, secret: str = SECRET) -> str:
    token = tokens.issue(
        secret, "m-1", "a.myshopify.com", set(scopes), now=datetime.now(UTC), ttl=timedelta(hours=1)
    )
    return f"Bearer {token}"


def refusal(authorization: str | None, scope: str = tokens.SCOPE_VIEW) -> AuthError:
    with pytest.raises(AuthError) as refused:
        authenticate(SECRET, authorization, scope)
    return refused.value


def test_a_valid_token_with_the_scope_is_the_caller() -> None:
    principal = authenticate(SECRET, bearer(tokens.SCOPE_VIEW), tokens.SCOPE_VIEW)

    assert (principal.merchant_id, principal.shop) == ("m-1", "a.myshopify.com")


@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "Basic abc", "token-alone"])
def test_no_bearer_token_is_unauthenticated(authorization: str | None) -> None:
    refused = refusal(authorization)

    assert (refused.refusal, refused.message) == (Refusal.UNAUTHENTICATED, "missing bearer token")


def test_a_token_we_did_not_sign_is_unauthenticated() -> None:
    refused = refusal(bearer(tokens.SCOPE_VIEW, secret="x" * 40))

    assert refused.refusal is Refusal.UNAUTHENTICATED
    assert refused.message.startswith("invalid token: ")


def test_a_token_without_the_scope_is_forbidden() -> None:
    refused = refusal(bearer(tokens.SCOPE_REDEEM), tokens.SCOPE_VIEW)

    assert refused.refusal is Refusal.FORBIDDEN
    assert refused.message == f"token lacks scope {tokens.SCOPE_VIEW}"
    assert refused.scope == tokens.SCOPE_VIEW


def test_rest_answers_401_with_a_challenge_and_403() -> None:
    unauthenticated = http_error(refusal(None))
    forbidden = http_error(refusal(bearer(tokens.SCOPE_REDEEM)))

    assert (unauthenticated.status_code, unauthenticated.detail) == (401, "missing bearer token")
    assert unauthenticated.headers == {"WWW-Authenticate": "Bearer"}
    assert (forbidden.status_code, forbidden.detail) == (
        403,
        f"token lacks scope {tokens.SCOPE_VIEW}",
    )


def test_grpc_answers_unauthenticated_and_permission_denied() -> None:
    unauthenticated = rpc_error(refusal(None))
    forbidden = rpc_error(refusal(bearer(tokens.SCOPE_REDEEM)))

    assert unauthenticated.code == grpc.StatusCode.UNAUTHENTICATED
    assert unauthenticated.message == "missing bearer token"
    assert forbidden.code == grpc.StatusCode.PERMISSION_DENIED
    assert forbidden.message == f"token lacks {tokens.SCOPE_VIEW}"


def test_a_token_is_checked_once_until_it_expires_then_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC).timestamp()
    caller = tokens.Principal("m-1", "s.myshopify.com", frozenset({tokens.SCOPE_VIEW}), now + 300)
    checked: list[str] = []

    def checking(secret: str, text: str) -> tokens.Principal:
        checked.append(text)
        if len(checked) > 1:  # as jwt.decode says once `exp` has passed
            raise tokens.TokenError("Signature has expired")
        return caller

    monkeypatch.setattr(auth, "verify", checking)

    assert auth.verified(SECRET, "t-1", now) == caller
    assert auth.verified(SECRET, "t-1", now + 299) == caller
    assert checked == ["t-1"]  # the second use was not checked again
    with pytest.raises(tokens.TokenError, match="expired"):
        auth.verified(SECRET, "t-1", now + 300)  # at `exp`: checked again, and refused
    assert checked == ["t-1", "t-1"]
