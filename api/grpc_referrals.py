"""gRPC `referrals.v1.ReferralsService/GetReferralStatus`: the same read as
`GET /v1/referrals/{referral_id}` (api/referrals.py), cache first."""

from __future__ import annotations

import json
from typing import Any

import grpc

from api import grpc_calls as rpc
from api.context import ApiContext
from api.referrals import read_referral
from loyalnest.tokens import SCOPE_REFERRALS_VIEW
from loyalnest_grpc.referrals.v1 import referrals_pb2, referrals_pb2_grpc
from loyalty import fields

REFERRAL_SERVICE = "referrals.v1.ReferralsService"


class ReferralsService(referrals_pb2_grpc.ReferralsServiceServicer):
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def GetReferralStatus(  # noqa: N802 - the name is the RPC's
        self, request: referrals_pb2.GetReferralStatusRequest, context: grpc.aio.ServicerContext
    ) -> referrals_pb2.GetReferralStatusResponse:
        async def status(metadata: dict[str, object]) -> referrals_pb2.GetReferralStatusResponse:
            principal = rpc.caller(self._ctx, metadata, SCOPE_REFERRALS_VIEW)
            if not fields.UUID_TEXT.fullmatch(request.referral_id):
                raise rpc.RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "referral_id must be a UUID (lower-case, with hyphens)",
                )
            found = None
            if rpc.own_merchant(request.merchant_id, principal):
                found = await read_referral(self._ctx, principal.merchant_id, request.referral_id)
            if found is None:
                raise rpc.RpcError(grpc.StatusCode.NOT_FOUND, "referral not found")
            return status_message(json.loads(found))

        return await rpc.answer(context, status)


def status_message(document: dict[str, Any]) -> referrals_pb2.GetReferralStatusResponse:
    """The message for a referral's document (connectors/referral_records.ReferralRow)."""
    rewards = document["rewards"]
    advocate = document["advocate"]
    return referrals_pb2.GetReferralStatusResponse(
        referral_id=document["referral_id"],
        status=document["status"],
        reason=document["reason"] or "",
        code=document["code"],
        friend_customer_id=document["friend"]["customer_id"],
        advocate_customer_id=None if advocate is None else advocate["customer_id"],
        order_id=document["order_id"],
        advocate_points=rewards["advocate_points"],
        friend_points=rewards["friend_points"],
        pending_until=rewards["pending_until"] or "",
        reversed=rewards["reversed"],
        decided_at=document["decided_at"],
    )


def add_referral_services(ctx: ApiContext, server: grpc.aio.Server) -> None:
    referrals_pb2_grpc.add_ReferralsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        ReferralsService(ctx), server
    )
