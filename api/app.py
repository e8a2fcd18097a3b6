"""The Starlette application: routes, and the shared context opened at startup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.adjustments import create_adjustment, get_adjustment
from api.balances import get_balance, get_transactions
from api.context import ApiContext
from api.errors import UNAVAILABLE, internal_error, store_unavailable
from api.health import health, metrics, ready
from api.openapi import OPENAPI_PATH, openapi
from api.redemptions import create_redemption, get_redemption
from api.referrals import (
    create_referral_code,
    get_advocate_referrals,
    get_referral,
    get_referral_code,
)
from api.request_limits import RequestLimits
from api.request_metrics import RequestMetrics
from api.request_values import BadValueError
from api.rfm import get_customer_rfm, get_segments
from api.tiers import (
    get_customer_tier,
    get_tier_counts,
    get_tiers,
    preview_tiers,
    put_tiers,
)
from api.webhooks import shopify_webhook
from loyalnest.app_secrets import load_secrets
from loyalnest.settings import Settings

ROUTES = [
    Route("/webhooks/shopify", shopify_webhook, methods=["POST"]),
    Route("/v1/redemptions", create_redemption, methods=["POST"]),
    Route("/v1/redemptions/{redemption_id}", get_redemption, methods=["GET"]),
    Route("/v1/customers/{customer_id}/balance", get_balance, methods=["GET"]),
    Route("/v1/customers/{customer_id}/transactions", get_transactions, methods=["GET"]),
    Route("/v1/customers/{customer_id}/adjustments", create_adjustment, methods=["POST"]),
    Route("/v1/adjustments/{adjustment_id}", get_adjustment, methods=["GET"]),
    Route("/v1/segments", get_segments, methods=["GET"]),
    Route("/v1/customers/{customer_id}/rfm", get_customer_rfm, methods=["GET"]),
    Route("/v1/referrals/codes", create_referral_code, methods=["POST"]),
    Route("/v1/referrals/codes/{code}", get_referral_code, methods=["GET"]),
    Route("/v1/referrals/{referral_id}", get_referral, methods=["GET"]),
    Route("/v1/customers/{customer_id}/referrals", get_advocate_referrals, methods=["GET"]),
    Route("/v1/tiers", get_tiers, methods=["GET"]),
    Route("/v1/tiers", put_tiers, methods=["PUT"]),
    Route("/v1/tiers/counts", get_tier_counts, methods=["GET"]),
    Route("/v1/tiers/preview", preview_tiers, methods=["POST"]),
    Route("/v1/customers/{customer_id}/tier", get_customer_tier, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route(OPENAPI_PATH, openapi, methods=["GET"]),
]


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def bad_value(_request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


EXCEPTION_HANDLERS = {
    HTTPException: http_error,
    BadValueError: bad_value,
    **dict.fromkeys(UNAVAILABLE, store_unavailable),
    Exception: internal_error,  # Starlette's own 500 would be plain text
}


def create_app(settings: Settings, context: ApiContext | None = None) -> Starlette:
    """The app; pass `context` to share one with the gRPC server (it is then not closed here)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.ctx = context or await ApiContext.open(settings, load_secrets(settings))
        try:
            yield
        finally:
            if context is None:
                await app.state.ctx.close()

    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=[Middleware(RequestMetrics), Middleware(RequestLimits)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
