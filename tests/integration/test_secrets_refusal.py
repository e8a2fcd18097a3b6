"""`python -m api` and the `loyalnest` CLI, as real processes, refuse to run with unsafe secrets.

Each child runs in an empty directory (no `.env`) with a data dir of its own (no developer's
`.data/secrets.env`) and only the secrets the test gives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from connectors.merchants import merchant_by_shop
from loyalnest.app_secrets import (
    JWT_SECRET,
    SECRETS_KEY,
    ensure_secrets_file,
    read_secrets_file,
)
from loyalnest.harness.deployment import fresh_postgres
from loyalnest.settings import Settings
from loyalnest.tokens import verify

PUBLISHED_JWT_SECRET = "dev-only-jwt-secret-change-me-in-production"
GOOD_KEY = "a-long-random-enough-key-for-this-test-0123456789"
CLI = Path(sys.executable).parent / "loyalnest"
TIMEOUT = 60


def run_child(
    argv: list[str], workdir: Path, postgres_url: str | None = None, **secrets: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in (JWT_SECRET, SECRETS_KEY)}
    environ["LOYALNEST_DATA_DIR"] = str(workdir / "data")
    if postgres_url is not None:
        environ["POSTGRES_URL"] = postgres_url
    return subprocess.run(
        argv,
        cwd=workdir,
        env={**environ, **secrets},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def postgres_url(settings: Settings) -> Iterator[str]:
    with fresh_postgres(settings, "test") as url:
        yield url


def test_the_api_refuses_the_published_jwt_secret(tmp_path: Path) -> None:
    result = run_child(
        [sys.executable, "-m", "api"],
        tmp_path,
        **{JWT_SECRET: PUBLISHED_JWT_SECRET, SECRETS_KEY: GOOD_KEY},
    )

    assert result.returncode != 0
    assert f"{JWT_SECRET} is a published default" in result.stderr
    assert "make up" in result.stderr


def test_the_api_refuses_to_start_without_any_secret(tmp_path: Path) -> None:
    result = run_child([sys.executable, "-m", "api"], tmp_path)

    assert result.returncode != 0
    assert f"{JWT_SECRET} is not set" in result.stderr
    assert f"{SECRETS_KEY} is not set" in result.stderr


def test_the_cli_refuses_the_published_jwt_secret(tmp_path: Path) -> None:
    result = run_child(
        [str(CLI), "token", "--shop", "x"],
        tmp_path,
        **{JWT_SECRET: PUBLISHED_JWT_SECRET, SECRETS_KEY: GOOD_KEY},
    )

    assert result.returncode == 2
    assert f"{JWT_SECRET} is a published default" in result.stderr


def test_the_cli_refuses_to_start_without_any_secret(tmp_path: Path) -> None:
    result = run_child([sys.executable, "-m", "loyalnest.cli", "token", "--shop", "x"], tmp_path)

    assert result.returncode == 2
    assert f"{JWT_SECRET} is not set" in result.stderr
    assert f"{SECRETS_KEY} is not set" in result.stderr


def test_the_cli_with_good_secrets_gets_past_the_check(tmp_path: Path, postgres_url: str) -> None:
    """The control for the refusals above: the same command, asked for a shop that does not
    exist, reaches PostgreSQL and says so."""
    good_jwt = "b" * 48
    result = run_child(
        [str(CLI), "token", "--shop", "x"],
        tmp_path,
        postgres_url,
        **{JWT_SECRET: good_jwt, SECRETS_KEY: GOOD_KEY},
    )

    assert result.returncode == 1
    assert "unknown shop 'x'" in result.stderr
    assert "refusing" not in result.stderr


def test_the_cli_uses_the_data_dirs_generated_secrets(tmp_path: Path, postgres_url: str) -> None:
    """No secret in the environment: both come from `<data_dir>/secrets.env`, as under
    `make run`/`make up`."""
    ensure_secrets_file(tmp_path / "data")
    stored = read_secrets_file(tmp_path / "data")
    shop = "generated-secrets.myshopify.com"

    add = run_child(
        [str(CLI), "merchants", "add", "--shop", shop, "--webhook-secret", "s"],
        tmp_path,
        postgres_url,
    )
    token = run_child([str(CLI), "token", "--shop", shop], tmp_path, postgres_url)

    assert add.returncode == 0, add.stderr
    assert token.returncode == 0, token.stderr
    assert verify(stored[JWT_SECRET], json.loads(token.stdout)["token"]).shop == shop
    with psycopg.connect(postgres_url) as conn:
        merchant = merchant_by_shop(conn, stored[SECRETS_KEY], shop)
    assert merchant is not None
    assert merchant.secret == "s"
