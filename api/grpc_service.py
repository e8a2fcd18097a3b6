"""gRPC `points.v1.PointsService` and the standard health service, on API_GRPC_PORT."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from api.auth import AuthError, Refusal, authenticate
from api.balances import read_balance
from api.context import ApiContext
from api.errors import unavailable_message, unavailable_store
from api.request_limits import DEFAULT_LIMIT
from api.request_values import BadValueError, requested_locale
from loyalnest.tokens import SCOPE_VIEW
from loyalnest_grpc.points.v1 import points_pb2, points_pb2_grpc
from loyalty.fields import parse_id
from loyalty.i18n import describe

SERVICE = "points.v1.PointsService"


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


class PointsService(points_pb2_grpc.PointsServiceServicer):
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def GetPointsBalance(  # noqa: N802 - the name is the RPC's
        self, request: points_pb2.GetPointsBalanceRequest, context: grpc.aio.ServicerContext
    ) -> points_pb2.GetPointsBalanceResponse:
        try:
            return await self._balance(request, dict(context.invocation_metadata() or ()))
        except RpcError as exc:
            await context.abort(exc.code, exc.message)
            raise  # abort() raises; this only tells the type checker
        except Exception as exc:
            store = unavailable_store(exc)
            if store is None:
                raise
            await context.abort(grpc.StatusCode.UNAVAILABLE, unavailable_message(store))
            raise

    async def _balance(
        self, request: points_pb2.GetPointsBalanceRequest, metadata: dict[str, object]
    ) -> points_pb2.GetPointsBalanceResponse:
        raw = metadata.get("authorization")
        try:
            principal = authenticate(
                self._ctx.jwt_secret, raw if isinstance(raw, str) else None, SCOPE_VIEW
            )
        except AuthError as exc:
            raise rpc_error(exc) from exc
        customer = parse_id(request.customer_id)
        if customer is None:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, "customer_id must be a Shopify customer id"
            )
        try:  # proto3: an empty string is "not set", i.e. the merchant's default
            asked = requested_locale(request.locale or None, self._ctx.locales)
        except BadValueError as exc:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        # Another merchant's customer is "not found", never "forbidden".
        view = None
        if request.merchant_id in ("", principal.merchant_id):
            view = await read_balance(self._ctx, principal.merchant_id, customer)
        if view is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, "customer not found")
        locale = asked or await self._ctx.merchant_locale(principal.shop)
        b = view.stored
        return points_pb2.GetPointsBalanceResponse(
            balance=b.balance,
            description=describe(
                self._ctx.translations, "points.balance", locale, balance=b.balance
            ),
            pending=b.pending,
            lifetime_earned=b.lifetime_earned,
            next_expiry=_next_expiry(b.next_expiry),
        )


def _next_expiry(expiry: tuple[int, datetime] | None) -> points_pb2.NextExpiry | None:
    """None leaves the message field unset: proto3 callers see `HasField("next_expiry")` false."""
    if expiry is None:
        return None
    points, at = expiry
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return points_pb2.NextExpiry(points=points, at=stamp)


async def create_server(ctx: ApiContext, host: str, port: int) -> grpc.aio.Server:
    # Requests are a few short strings: the same 64 KiB bound as REST bodies (not gRPC's 4 MB).
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", DEFAULT_LIMIT)])
    points_pb2_grpc.add_PointsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        PointsService(ctx), server
    )
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ("", SERVICE):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"{host}:{port}")
    return server
