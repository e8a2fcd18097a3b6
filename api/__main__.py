"""`python -m api`: REST (uvicorn) and gRPC in one process and one event loop (uvloop: its
C event loop spends less CPU per request than asyncio's, with the HTTP parser in C as well).

With API_WORKERS > 1 this process only supervises: it starts that many `python -m api
--worker` processes, which share both ports through SO_REUSEPORT (api/workers.py). It imports
nothing that makes metrics: each worker's go to files in a directory made for them."""

from __future__ import annotations

import sys

import uvloop

from api.workers import WORKER_FLAG, supervise
from loyalnest import logs
from loyalnest.app_secrets import SecretsError, load_secrets
from loyalnest.settings import Settings


def main(argv: list[str]) -> int:
    settings = Settings()
    logs.configure_job(settings)
    try:
        secrets = load_secrets(settings)
    except SecretsError as exc:
        print(f"python -m api: {exc}", file=sys.stderr)
        return 2
    worker = WORKER_FLAG in argv
    if not worker and settings.api_workers > 1:
        return supervise(settings)
    from api.serve import serve  # here: a supervisor must not make metrics of its own

    uvloop.run(serve(settings, secrets, shared=worker))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
