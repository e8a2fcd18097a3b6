"""Bearer tokens on REST requests: 401 without a valid one, 403 without the scope."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from loyalnest.tokens import Principal, TokenError, verify


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(secret: str, authorization: str | None, scope: str) -> Principal:
    """The caller, if its token is valid and grants `scope`; else an HTTP error."""
    token = bearer(authorization)
    if token is None:
        raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    try:
        principal = verify(secret, token)
    except TokenError as exc:
        raise HTTPException(401, f"invalid token: {exc}", {"WWW-Authenticate": "Bearer"}) from exc
    if scope not in principal.scopes:
        raise HTTPException(403, f"token lacks scope {scope}")
    return principal


def require(request: Request, scope: str) -> Principal:
    secret: str = request.app.state.ctx.jwt_secret
    return authenticate(secret, request.headers.get("authorization"), scope)
