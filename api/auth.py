"""Bearer tokens, for REST and gRPC alike: one check, two mappings of its refusals.

`authenticate` returns the caller or raises AuthError: UNAUTHENTICATED without a valid token
(REST 401, gRPC UNAUTHENTICATED), FORBIDDEN when the token lacks the scope (REST 403, gRPC
PERMISSION_DENIED).
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict

from starlette.exceptions import HTTPException
from starlette.requests import Request

from loyalnest.tokens import Principal, TokenError, verify


class Refusal(enum.Enum):
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"


class AuthError(Exception):
    """Why a caller is refused, and in what words."""

    def __init__(self, refusal: Refusal, message: str, scope: str | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message
        self.scope = scope  # the one missing, when FORBIDDEN


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# Tokens whose signature was checked, with their callers: a client sends the same token with
# every request, and checking it again was about a tenth of a cheap request's CPU. Only valid
# tokens are kept, each until it expires (checked on every use); the least recently used
# leave first.
VERIFIED_TOKENS = 10_000
_verified: OrderedDict[tuple[str, str], Principal] = OrderedDict()


def verified(secret: str, token: str, now: float | None = None) -> Principal:
    """The token's caller (TokenError if the token is not valid now)."""
    key = (secret, token)
    known = _verified.pop(key, None)
    if known is not None and (time.time() if now is None else now) < known.expires_at:
        _verified[key] = known  # the most recently used, last
        return known
    principal = verify(secret, token)
    _verified[key] = principal
    if len(_verified) > VERIFIED_TOKENS:
        _verified.popitem(last=False)
    return principal


def authenticate(secret: str, authorization: str | None, scope: str) -> Principal:
    """The caller, if its token (the `Authorization` value) is valid and grants `scope`."""
    token = bearer(authorization)
    if token is None:
        raise AuthError(Refusal.UNAUTHENTICATED, "missing bearer token")
    try:
        principal = verified(secret, token)
    except TokenError as exc:
        raise AuthError(Refusal.UNAUTHENTICATED, f"invalid token: {exc}") from exc
    if scope not in principal.scopes:
        raise AuthError(Refusal.FORBIDDEN, f"token lacks scope {scope}", scope)
    return principal


def http_error(exc: AuthError) -> HTTPException:
    if exc.refusal is Refusal.UNAUTHENTICATED:
        return HTTPException(401, exc.message, {"WWW-Authenticate": "Bearer"})
    return HTTPException(403, exc.message)


def require(request: Request, scope: str) -> Principal:
    """`authenticate` for a REST request: refusals are 401 / 403."""
    secret: str = request.app.state.ctx.jwt_secret
    try:
        return authenticate(secret, request.headers.get("authorization"), scope)
    except AuthError as exc:
        raise http_error(exc) from exc
