"""One API process: REST (uvicorn) and gRPC in one event loop, until SIGINT or SIGTERM."""

from __future__ import annotations

import gc
import signal
import socket

import uvicorn

from api.app import create_app
from api.context import ApiContext
from api.grpc_service import create_server
from api.http_protocol import BoundedHeadProtocol
from api.workers import shared_socket
from loyalnest.app_secrets import Secrets
from loyalnest.settings import Settings


async def serve(settings: Settings, secrets: Secrets, shared: bool) -> None:
    """Serve until SIGINT/SIGTERM; `shared`: the ports are shared with other workers."""
    ctx = await ApiContext.open(settings, secrets)
    host = settings.api_host
    grpc_server = await create_server(ctx, host, settings.api_grpc_port, shared)
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, ctx),
            host=host,
            port=settings.api_http_port,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through our JSON handler (loyalnest.logs)
            access_log=False,
            http=BoundedHeadProtocol,  # httptools, with a bound on a head still arriving
        )
    )
    sockets: list[socket.socket] | None = None
    if shared:
        sockets = [shared_socket(host, settings.api_http_port)]
    await grpc_server.start()
    # What exists now (modules, clients, the app) lives as long as the process. Frozen, it is
    # left out of every later garbage collection: otherwise each full collection walks ~90k
    # startup objects, ~50 ms with every request on hold, every ~2,000 requests under load.
    gc.collect()
    gc.freeze()
    # uvicorn puts back the handlers it found when it stops, then raises the signal that
    # stopped it again: with the default ones that kills the process before the clients below
    # are closed (and a supervisor sees a worker killed). Its own handler, found there, just
    # notes the stop once more, and a signal before it starts serving stops it as soon as
    # it has.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, http.handle_exit)
    try:
        await http.serve(sockets)  # returns on SIGINT/SIGTERM
    finally:
        await grpc_server.stop(grace=5)
        await ctx.close()
