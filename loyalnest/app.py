"""`make run`, `make up`, `make down`, `make status`: the whole system on one machine.

`run` stays in the foreground and stops what it started on Ctrl-C; `up` leaves everything
running in the background and returns once it is healthy; `down` stops what `up` started.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from loyalnest import registry
from loyalnest.app_secrets import (
    Secrets,
    SecretsError,
    ensure_secrets_file,
    load_secrets,
    secrets_path,
)
from loyalnest.bootstrap.__main__ import bootstrap
from loyalnest.demo import (
    instructions,
    register_demo_merchant,
    segment_counts,
    send_sample_webhooks,
)
from loyalnest.localstack.process import StackError, spawn, stop_pid, tail, wait_until
from loyalnest.localstack.service import StackPaths
from loyalnest.localstack.stack import start_all
from loyalnest.localstack.stack import status as stack_status
from loyalnest.settings import Settings
from loyalnest.supervisor import Job, Supervisor, default_jobs, healthy, init_recovery

JOBS_TIMEOUT = 90.0
SAMPLE_ORDERS = 20


def ensure_secrets(settings: Settings) -> Secrets:
    """The secrets the API and the CLI will read: random ones generated into the data dir on
    first use (the environment and .env still win); refused here, before anything starts."""
    if ensure_secrets_file(settings.data_dir):
        print(f"✓ generated random secrets into {secrets_path(settings.data_dir)}", flush=True)
    return load_secrets(settings)


def prepare(settings: Settings) -> list[Job]:
    """Secrets checked, servers up, topics/schemas/indexes/migrations in place, recovery
    stores created."""
    ensure_secrets(settings)
    start_all(settings)
    bootstrap(settings)
    jobs = default_jobs(settings)
    for job in jobs:
        init_recovery(settings, job)
    return jobs


def wait_for_jobs(settings: Settings, jobs: list[Job]) -> None:
    for job in jobs:
        if not wait_until(lambda job=job: healthy(job), timeout=JOBS_TIMEOUT):  # type: ignore[misc]
            log = settings.data_dir.resolve() / "logs" / f"{job.name}.log"
            raise StackError(
                f"job {job.name} not healthy after {JOBS_TIMEOUT:.0f}s; "
                f"last lines of {log}:\n{tail(log)}"
            )
        print(f"✓ {job.name:<9} {job.health_url or 'started (no health check)'}", flush=True)


def flow_metrics(settings: Settings) -> list[str]:
    """One line per registered flow: where its metrics are."""
    return [
        f"http://127.0.0.1:{flow.port(settings)}/metrics ({flow.name})" for flow in registry.flows()
    ]


def print_endpoints(settings: Settings) -> None:
    metrics = "\n".join(
        f"  {'Flow metrics' if n == 0 else '':<19}{line}"
        for n, line in enumerate(flow_metrics(settings))
    )
    print(
        f"""
LoyalNest is running.
  API (REST)         http://{settings.api_host}:{settings.api_http_port}
  API (gRPC)         {settings.api_host}:{settings.api_grpc_port}
  Kafka              {settings.kafka_bootstrap_servers}
  Schema registry    {settings.schema_registry_url}
  MongoDB            {settings.mongo_url}  (database {settings.mongo_database})
  PostgreSQL         {settings.postgres_url.split("@")[-1]}
  Redis              {settings.redis_url}
{metrics}
  Clock job          ticks due customers and clock.ticks every {settings.clock_interval_seconds} s
  Logs               {settings.data_dir.resolve() / "logs"}
""",
        flush=True,
    )


def run(settings: Settings) -> int:
    """Foreground: start everything, feed sample orders, stop it all on Ctrl-C."""
    secrets = ensure_secrets(settings)
    started = start_all(settings)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    bootstrap(settings)
    jobs = default_jobs(settings)
    for job in jobs:
        init_recovery(settings, job)
    supervisor = Supervisor(
        jobs, settings.data_dir.resolve() / "logs", reload=lambda: default_jobs(settings)
    )
    # `loyalnest flows scale` finds this process as the supervisor and sends it SIGHUP.
    pid_file = StackPaths(settings.data_dir.resolve()).pid("supervisor")
    pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGHUP, lambda *_: supervisor.request_reload())
    worker = threading.Thread(target=supervisor.run, name="supervisor")
    worker.start()
    try:
        wait_for_jobs(settings, jobs)
        token = register_demo_merchant(settings, secrets)
        customers = send_sample_webhooks(settings, SAMPLE_ORDERS)
        print(f"✓ sent {SAMPLE_ORDERS} signed sample webhooks to the API")
        print(f"✓ {segment_counts(settings, token, len(customers))}", flush=True)
        print_endpoints(settings)
        print(instructions(settings, token, customers[0]))
        print("Press Ctrl-C to stop.", flush=True)
        stopping.wait()
    finally:
        print("\nStopping…", flush=True)
        supervisor.stop()
        worker.join()
        pid_file.unlink(missing_ok=True)
        for service in reversed(started):
            service.stop()
            print(f"stopped {service.name}")
    return 0


def up(settings: Settings) -> int:
    """Background: servers and the supervisor, returning once all jobs are healthy."""
    jobs = prepare(settings)
    paths = StackPaths(settings.data_dir.resolve())
    pid_file = paths.pid("supervisor")
    if not wait_until(lambda: all(healthy(job) for job in jobs), timeout=0):
        stop_pid(pid_file)
        spawn(
            [sys.executable, "-m", "loyalnest.supervisor"],
            log=paths.log("supervisor"),
            pid_file=pid_file,
        )
    wait_for_jobs(settings, jobs)
    print_endpoints(settings)
    return 0


def down(settings: Settings) -> int:
    paths = StackPaths(settings.data_dir.resolve())
    stopped = stop_pid(paths.pid("supervisor"), timeout=40)
    print(f"supervisor {'stopped' if stopped else 'not running'}")
    from loyalnest.localstack.stack import down as stack_down

    return stack_down(settings)


def status(settings: Settings) -> int:
    code = stack_status(settings)
    for job in default_jobs(settings):
        if job.health_url is None:
            print(f"{job.name:<9} {'?':<5} no health check (see its log)")
            continue
        state = "up" if healthy(job) else "down"
        print(f"{job.name:<9} {state:<5} {job.health_url or '(no health check)'}")
        code |= 0 if state == "up" else 1
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loyalnest.app")
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    args = parser.parse_args(argv)
    # Our own progress at INFO; libraries (HTTP clients of the registry, ...) only when it matters.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("loyalnest").setLevel(logging.INFO)
    command = {"run": run, "up": up, "down": down, "status": status}[args.command]
    try:
        return command(Settings())
    except StackError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    except SecretsError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
