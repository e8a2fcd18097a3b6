"""`/health` (the process is up), `/ready` (its dependencies answer), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import ApiContext
from api.prometheus import metrics_text

CHECK_TIMEOUT = 2.0


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _postgres(ctx: ApiContext) -> None:
    async with ctx.pool.connection(timeout=CHECK_TIMEOUT) as conn:
        await conn.execute("SELECT 1")


async def _kafka(ctx: ApiContext) -> None:
    await asyncio.to_thread(ctx.producer.list_topics, CHECK_TIMEOUT)


async def _mongo(ctx: ApiContext) -> None:
    await ctx.db.command("ping")
    if not ctx.translations_loaded:  # until then descriptions are the built-in ones only
        raise RuntimeError("translations not loaded yet")


async def _redis(ctx: ApiContext) -> None:
    await ctx.redis.ping()


async def ready(request: Request) -> JSONResponse:
    ctx: ApiContext = request.app.state.ctx
    checks = {"kafka": _kafka, "mongo": _mongo, "redis": _redis, "postgres": _postgres}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(ctx), CHECK_TIMEOUT + 1)
            results[name] = "ok"
        except Exception as exc:  # any failure makes the dependency not ready
            results[name] = f"error: {type(exc).__name__}: {exc}"[:200]
    ok = all(v == "ok" for v in results.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": results},
        status_code=200 if ok else 503,
    )


async def metrics(_request: Request) -> Response:
    body, content_type = metrics_text()
    return Response(body, media_type=content_type)
