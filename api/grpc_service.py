"""gRPC `points.v1.PointsService` and the standard health service, on API_GRPC_PORT."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from api.balances import read_balance
from api.context import ApiContext
from api.grpc_calls import RpcError, answer, caller, customer_arg, own_merchant
from api.grpc_referrals import REFERRAL_SERVICE, add_referral_services
from api.grpc_rfm import RFM_SERVICES, add_rfm_services
from api.grpc_tiers import TIERS_SERVICE, add_tier_services
from api.request_limits import DEFAULT_LIMIT
from api.request_values import BadValueError, requested_locale
from loyalnest.tokens import SCOPE_VIEW
from loyalnest_grpc.points.v1 import points_pb2, points_pb2_grpc
from loyalty.i18n import describe

SERVICE = "points.v1.PointsService"


class PointsService(points_pb2_grpc.PointsServiceServicer):
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def GetPointsBalance(  # noqa: N802 - the name is the RPC's
        self, request: points_pb2.GetPointsBalanceRequest, context: grpc.aio.ServicerContext
    ) -> points_pb2.GetPointsBalanceResponse:
        return await answer(context, lambda metadata: self._balance(request, metadata))

    async def _balance(
        self, request: points_pb2.GetPointsBalanceRequest, metadata: dict[str, object]
    ) -> points_pb2.GetPointsBalanceResponse:
        principal = caller(self._ctx, metadata, SCOPE_VIEW)
        customer = customer_arg(request.customer_id)
        try:  # proto3: an empty string is "not set", i.e. the merchant's default
            asked = requested_locale(request.locale or None, self._ctx.locales)
        except BadValueError as exc:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        view = None
        if own_merchant(request.merchant_id, principal):
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


async def create_server(
    ctx: ApiContext, host: str, port: int, shared: bool = False
) -> grpc.aio.Server:
    """`shared`: other API workers listen on the same port (SO_REUSEPORT); otherwise a port
    another process holds is an error, not silently shared."""
    options = [
        # Requests are a few short strings: the same 64 KiB bound as REST bodies (not 4 MB).
        ("grpc.max_receive_message_length", DEFAULT_LIMIT),
        ("grpc.so_reuseport", 1 if shared else 0),
    ]
    server = grpc.aio.server(options=options)
    points_pb2_grpc.add_PointsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        PointsService(ctx), server
    )
    add_rfm_services(ctx, server)
    add_referral_services(ctx, server)
    add_tier_services(ctx, server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ("", SERVICE, *RFM_SERVICES, REFERRAL_SERVICE, TIERS_SERVICE):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"{host}:{port}")
    return server
