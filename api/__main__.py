"""`python -m api`: REST (uvicorn) and gRPC in one process and one event loop (uvloop: its
C event loop spends less CPU per request than asyncio's, with the HTTP parser in C as well)."""

from __future__ import annotations

import gc
import sys

import uvicorn
import uvloop

from api.app import create_app
from api.context import ApiContext
from api.grpc_service import create_server
from api.http_protocol import BoundedHeadProtocol
from loyalnest import logs
from loyalnest.app_secrets import Secrets, SecretsError, load_secrets
from loyalnest.settings import Settings


async def serve(settings: Settings, secrets: Secrets) -> None:
    ctx = await ApiContext.open(settings, secrets)
    grpc_server = await create_server(ctx, settings.api_host, settings.api_grpc_port)
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, ctx),
            host=settings.api_host,
            port=settings.api_http_port,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through our JSON handler (loyalnest.logs)
            access_log=False,
            http=BoundedHeadProtocol,  # httptools, with a bound on a head still arriving
        )
    )
    await grpc_server.start()
    # What exists now (modules, clients, the app) lives as long as the process. Frozen, it is
    # left out of every later garbage collection: otherwise each full collection walks ~90k
    # startup objects, ~50 ms with every request on hold, every ~2,000 requests under load.
    gc.collect()
    gc.freeze()
    try:
        await http.serve()  # returns on SIGINT/SIGTERM (uvicorn installs the handlers)
    finally:
        await grpc_server.stop(grace=5)
        await ctx.close()


def main() -> int:
    settings = Settings()
    logs.configure_job(settings)
    try:
        secrets = load_secrets(settings)
    except SecretsError as exc:
        print(f"python -m api: {exc}", file=sys.stderr)
        return 2
    uvloop.run(serve(settings, secrets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
