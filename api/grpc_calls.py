"""What every gRPC call of the API shares: the caller's token, the customer argument, the
merchant check, and how failures become statuses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from api.auth import AuthError, Refusal, authenticate
from api.context import ApiContext
from api.errors import unavailable_message, unavailable_store
from loyalnest.tokens import Principal
from loyalty.fields import parse_id

T = TypeVar("T")


class RpcError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def rpc_error(exc: AuthError) -> RpcError:
    if exc.refusal is Refusal.UNAUTHENTICATED:
        return RpcError(grpc.StatusCode.UNAUTHENTICATED, exc.message)
    # gRPC's detail has always read "token lacks <scope>" (REST: "token lacks scope <scope>");
    # kept as it was, as a client may match on it.
    return RpcError(grpc.StatusCode.PERMISSION_DENIED, f"token lacks {exc.scope}")


async def answer(
    context: grpc.aio.ServicerContext, call: Callable[[dict[str, object]], Awaitable[T]]
) -> T:
    """Run one RPC: its RpcError, or a store that is away, becomes the call's status."""
    try:
        return await call(dict(context.invocation_metadata() or ()))
    except RpcError as exc:
        await context.abort(exc.code, exc.message)
        raise  # abort() raises; this only tells the type checker
    except Exception as exc:
        store = unavailable_store(exc)
        if store is None:
            raise
        await context.abort(grpc.StatusCode.UNAVAILABLE, unavailable_message(store))
        raise


def caller(ctx: ApiContext, metadata: dict[str, object], scope: str) -> Principal:
    """The caller named by the `authorization` metadata, if it may use `scope`."""
    raw = metadata.get("authorization")
    try:
        return authenticate(ctx.jwt_secret, raw if isinstance(raw, str) else None, scope)
    except AuthError as exc:
        raise rpc_error(exc) from exc


def customer_arg(text: str) -> int:
    customer = parse_id(text)
    if customer is None:
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT, "customer_id must be a Shopify customer id"
        )
    return customer


def own_merchant(asked: str, principal: Principal) -> bool:
    """Whether a request's merchant_id (empty: the token's) is the caller's. Another
    merchant's data is "not found", never "forbidden"."""
    return asked in ("", principal.merchant_id)
