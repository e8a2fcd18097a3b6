"""One registry of jobs: the supervisor, the app and the harness run what it lists, and a flow's
files (recovery store, dataflow.json) land under the data directory, never in the repository."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from loyalnest import registry, supervisor
from loyalnest.app import flow_metrics
from loyalnest.registry import Kind, RegisteredJob
from loyalnest.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", flow_api_port=4000)


def test_job_names_and_flow_ports_are_unique() -> None:
    names = [job.name for job in registry.JOBS]
    offsets = [job.port_offset for job in registry.flows()]

    assert len(set(names)) == len(names)
    assert len(set(offsets)) == len(offsets)
    assert all(offset is not None for offset in offsets)


@pytest.mark.parametrize("job", registry.flows(), ids=lambda job: job.name)
def test_every_flow_target_names_a_flow_factory(job: RegisteredJob) -> None:
    module, _, call = job.target.partition(":")
    factory = call.removesuffix("()")

    assert call == f"{factory}()"
    assert callable(getattr(importlib.import_module(module), factory))


def test_the_registered_flows_are_points_order_archive_rfm_customers_referrals_and_tiers(
    settings: Settings,
) -> None:
    assert [(job.name, job.target, job.port(settings)) for job in registry.flows()] == [
        ("points", "flows.points:flow()", 4000),
        ("order-archive", "flows.order_archive:flow()", 4001),
        ("rfm", "flows.rfm:flow()", 4002),
        ("customers", "flows.customers:flow()", 4003),
        ("referrals", "flows.referrals:flow()", 4004),
        ("tiers", "flows.tiers:flow()", 4005),
    ]


def test_default_jobs_are_the_api_and_every_registered_job(settings: Settings) -> None:
    jobs = supervisor.default_jobs(settings)

    assert [job.name for job in jobs] == ["api", *(job.name for job in registry.JOBS)]


def test_a_flow_job_keeps_its_files_under_the_data_directory(settings: Settings) -> None:
    data = settings.data_dir.resolve()
    job = supervisor.registered_job(settings, registry.registered("order-archive"))

    assert job.argv[:4] == [sys.executable, "-m", "bytewax.run", "flows.order_archive:flow()"]
    assert job.recovery == data / "recovery" / "order-archive"
    assert job.argv[job.argv.index("-r") + 1] == str(job.recovery)
    assert job.files == data / "flows" / "order-archive"
    assert job.env == {
        "BYTEWAX_DATAFLOW_API_ENABLED": "true",
        "BYTEWAX_DATAFLOW_API_PORT": "4001",
        "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(data / "flows" / "order-archive"),
        **supervisor.flow_allocator_env(settings),
    }
    assert job.health_url == "http://127.0.0.1:4001/metrics"


def test_adding_a_job_is_one_registry_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = (
        registry.flow("tiers", "flows.tiers:flow()", 2),
        RegisteredJob("clock", Kind.MODULE, "loyalnest.clock"),
    )
    monkeypatch.setattr(registry, "JOBS", registry.JOBS + extra)
    monkeypatch.setattr(supervisor, "JOBS", registry.JOBS)

    tiers, clock = supervisor.default_jobs(settings)[-2:]

    assert tiers.argv[3] == "flows.tiers:flow()"
    assert tiers.health_url == "http://127.0.0.1:4002/metrics"
    assert clock.argv == [sys.executable, "-m", "loyalnest.clock"]
    assert (clock.health_url, clock.recovery, clock.files) == (None, None, None)
    assert flow_metrics(settings)[-1] == "http://127.0.0.1:4002/metrics (tiers)"


def test_an_unknown_job_name_is_refused() -> None:
    with pytest.raises(KeyError, match="no job 'nope'"):
        registry.registered("nope")


def test_the_supervisor_creates_a_job_s_files_directory_before_starting_it(
    tmp_path: Path,
) -> None:
    files = tmp_path / "data" / "flows" / "probe"
    check = "import os, sys; sys.exit(0 if os.path.isdir(sys.argv[1]) else 3)"
    job = supervisor.Job("probe", [sys.executable, "-c", check, str(files)], files=files)
    runner = supervisor.Supervisor([job], tmp_path / "logs")

    runner._start(job)

    (proc,) = runner._procs["probe"]
    assert proc.wait(30) == 0
