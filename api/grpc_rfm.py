"""gRPC `rfm.v1.RFMService/GetSegmentCounts` and `core.v1.CoreService`: `GetCustomerRFM` (the
same reads as `GET /v1/segments` and `GET /v1/customers/{id}/rfm`, api/rfm.py), and Core's
customers, `CreateCustomer` and `GetCustomer` (connectors/customer_records.py)."""

from __future__ import annotations

from dataclasses import replace

import grpc

from api import grpc_calls as rpc
from api.context import ApiContext
from api.rfm import read_customer_rfm, segment_counts
from loyalnest.tokens import (
    SCOPE_ANALYTICS,
    SCOPE_CUSTOMERS_MANAGE,
    SCOPE_CUSTOMERS_PII,
    SCOPE_CUSTOMERS_VIEW,
)
from loyalnest_grpc.core.v1 import core_pb2, core_pb2_grpc
from loyalnest_grpc.rfm.v1 import rfm_pb2, rfm_pb2_grpc
from loyalty import fields, ids
from loyalty.pii import Hasher, is_email, merchant_key
from loyalty.times import iso_z

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

    async def CreateCustomer(  # noqa: N802 - the name is the RPC's
        self, request: core_pb2.CreateCustomerRequest, context: grpc.aio.ServicerContext
    ) -> core_pb2.CreateCustomerResponse:
        async def create(metadata: dict[str, object]) -> core_pb2.CreateCustomerResponse:
            principal = rpc.caller(self._ctx, metadata, SCOPE_CUSTOMERS_MANAGE)
            if not rpc.own_merchant(request.merchant_id, principal):
                raise rpc.RpcError(grpc.StatusCode.NOT_FOUND, "merchant not found")
            email = request.email.strip()
            if not is_email(email):
                raise rpc.RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT, "email must be an email address"
                )
            key = merchant_key(self._ctx.secrets.secrets_key, principal.merchant_id)
            row = await self._ctx.customers.create_by_email(
                principal.merchant_id, email, Hasher(key).email(email)
            )
            # Announced on every call (a creation's event id is one per customer), so an
            # announcement lost after the row was stored is made good by asking again.
            await self._ctx.customer_events.announce([replace(row, created=True)])
            return core_pb2.CreateCustomerResponse(customer_id=row.customer_id, created=row.created)

        return await rpc.answer(context, create)

    async def GetCustomer(  # noqa: N802 - the name is the RPC's
        self, request: core_pb2.GetCustomerRequest, context: grpc.aio.ServicerContext
    ) -> core_pb2.GetCustomerResponse:
        async def read(metadata: dict[str, object]) -> core_pb2.GetCustomerResponse:
            principal = rpc.caller(self._ctx, metadata, SCOPE_CUSTOMERS_VIEW)
            customer_id = core_customer_id(principal.merchant_id, request.customer_id)
            found = None
            if rpc.own_merchant(request.merchant_id, principal):
                with_email = SCOPE_CUSTOMERS_PII in principal.scopes
                found = await self._ctx.customers.get(
                    principal.merchant_id, customer_id, with_email
                )
            if found is None:
                raise rpc.RpcError(grpc.StatusCode.NOT_FOUND, "customer not found")
            return core_pb2.GetCustomerResponse(
                customer_id=found.customer_id,
                shopify_customer_id=found.shopify_id,
                email=found.email,
                email_hash=found.email_hash or "",
                name_hash=found.name_hash or "",
                address_hash=found.address_hash or "",
                created_at=iso_z(found.created_at),
                updated_at=iso_z(found.updated_at),
            )

        return await rpc.answer(context, read)


def core_customer_id(merchant_id: str, asked: str) -> str:
    """Core's UUID for a customer named by it, or by their Shopify id."""
    if fields.UUID_TEXT.fullmatch(asked):
        return asked
    shopify_id = fields.parse_id(asked)
    if shopify_id is None:
        raise rpc.RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "customer_id must be a customer UUID or a Shopify customer id",
        )
    return ids.customer_key(merchant_id, shopify_id)


def add_rfm_services(ctx: ApiContext, server: grpc.aio.Server) -> None:
    rfm_pb2_grpc.add_RFMServiceServicer_to_server(RfmService(ctx), server)  # type: ignore[no-untyped-call]
    core_pb2_grpc.add_CoreServiceServicer_to_server(CoreService(ctx), server)  # type: ignore[no-untyped-call]
