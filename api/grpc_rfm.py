"""gRPC `rfm.v1.RFMService/GetSegmentCounts` and `core.v1.CoreService/GetCustomerRFM`: the
same reads as `GET /v1/segments` and `GET /v1/customers/{id}/rfm` (api/rfm.py)."""

from __future__ import annotations

import grpc

from api import grpc_calls as rpc
from api.context import ApiContext
from api.rfm import read_customer_rfm, segment_counts
from loyalnest.tokens import SCOPE_ANALYTICS
from loyalnest_grpc.core.v1 import core_pb2, core_pb2_grpc
from loyalnest_grpc.rfm.v1 import rfm_pb2, rfm_pb2_grpc

RFM_SERVICES = ("rfm.v1.RFMService", "core.v1.CoreService")


class RfmService(rfm_pb2_grpc.RFMServiceServicer):
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def GetSegmentCounts(  # noqa: N802 - the name is the RPC's
        self, request: rfm_pb2.GetSegmentCountsRequest, context: grpc.aio.ServicerContext
    ) -> rfm_pb2.GetSegmentCountsResponse:
        async def counts(metadata: dict[str, object]) -> rfm_pb2.GetSegmentCountsResponse:
            principal = rpc.caller(self._ctx, metadata, SCOPE_ANALYTICS)
            if not rpc.own_merchant(request.merchant_id, principal):
                raise rpc.RpcError(grpc.StatusCode.NOT_FOUND, "merchant not found")
            found = await segment_counts(self._ctx, principal.merchant_id)
            return rfm_pb2.GetSegmentCountsResponse(
                merchant_id=found["merchant_id"],
                as_of=found["as_of"] or "",
                total=found["total"],
                segments=found["segments"],
            )

        return await rpc.answer(context, counts)


class CoreService(core_pb2_grpc.CoreServiceServicer):
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def GetCustomerRFM(  # noqa: N802 - the name is the RPC's
        self, request: core_pb2.GetCustomerRFMRequest, context: grpc.aio.ServicerContext
    ) -> core_pb2.GetCustomerRFMResponse:
        async def scores(metadata: dict[str, object]) -> core_pb2.GetCustomerRFMResponse:
            principal = rpc.caller(self._ctx, metadata, SCOPE_ANALYTICS)
            customer = rpc.customer_arg(request.customer_id)
            found = None
            if rpc.own_merchant(request.merchant_id, principal):
                found = await read_customer_rfm(self._ctx, principal.merchant_id, customer)
            if found is None:
                raise rpc.RpcError(grpc.StatusCode.NOT_FOUND, "customer not found")
            return core_pb2.GetCustomerRFMResponse(
                customer_id=str(customer),
                recency=found["recency_days"],
                frequency=found["frequency"],
                monetary=found["monetary"],
                r=found["r"],
                f=found["f"],
                m=found["m"],
                segment=found["segment"],
                as_of=found["as_of"],
            )

        return await rpc.answer(context, scores)


def add_rfm_services(ctx: ApiContext, server: grpc.aio.Server) -> None:
    rfm_pb2_grpc.add_RFMServiceServicer_to_server(RfmService(ctx), server)  # type: ignore[no-untyped-call]
    core_pb2_grpc.add_CoreServiceServicer_to_server(CoreService(ctx), server)  # type: ignore[no-untyped-call]
