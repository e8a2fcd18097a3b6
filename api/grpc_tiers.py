"""gRPC `campaign.v1.TiersService/GetCustomerTier`: the same read as
`GET /v1/customers/{customer_id}/tier` (api/tiers.py)."""

from __future__ import annotations

from typing import Any

import grpc

from api import grpc_calls as rpc
from api.context import ApiContext
from api.tiers import customer_tier, now
from loyalnest.tokens import SCOPE_VIEW
from loyalnest_grpc.campaign.v1 import tiers_pb2, tiers_pb2_grpc
from loyalty import fields

TIERS_SERVICE = "campaign.v1.TiersService"


class TiersService(tiers_pb2_grpc.TiersServiceServicer):
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def GetCustomerTier(  # noqa: N802 - the name is the RPC's
        self, request: tiers_pb2.GetCustomerTierRequest, context: grpc.aio.ServicerContext
    ) -> tiers_pb2.GetCustomerTierResponse:
        async def tier(metadata: dict[str, object]) -> tiers_pb2.GetCustomerTierResponse:
            principal = rpc.caller(self._ctx, metadata, SCOPE_VIEW)
            customer = fields.parse_id(str(request.customer_id))
            if customer is None:
                raise rpc.RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT, "customer_id must be a Shopify customer id"
                )
            if not rpc.own_merchant(request.merchant_id, principal):
                raise rpc.RpcError(grpc.StatusCode.NOT_FOUND, "customer not found")
            found = await customer_tier(self._ctx, principal.merchant_id, customer, now())
            return tier_message(found)

        return await rpc.answer(context, tier)


def tier_message(document: dict[str, Any]) -> tiers_pb2.GetCustomerTierResponse:
    """The message for the REST document: absent values are empty strings, numbers text."""
    text = {key: "" if value is None else str(value) for key, value in document.items()}
    return tiers_pb2.GetCustomerTierResponse(
        customer_id=document["customer_id"],
        **{k: v for k, v in text.items() if k != "customer_id"},
    )


def add_tier_services(ctx: ApiContext, server: grpc.aio.Server) -> None:
    tiers_pb2_grpc.add_TiersServiceServicer_to_server(  # type: ignore[no-untyped-call]
        TiersService(ctx), server
    )
