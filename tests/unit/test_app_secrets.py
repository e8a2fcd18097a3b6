"""JWT_SECRET and LOYALNEST_SECRETS_KEY: refused when unfit, generated once, precedence."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalnest import app
from loyalnest.app_secrets import (
    JWT_SECRET,
    MIN_LENGTH,
    PUBLISHED_VALUES,
    SECRETS_KEY,
    Secrets,
    SecretsError,
    ensure_secrets_file,
    load_secrets,
    read_secrets_file,
    secrets_path,
    weakness,
)
from loyalnest.settings import Settings

GOOD_JWT = "j" * MIN_LENGTH
GOOD_KEY = "k" * MIN_LENGTH


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir of this test's own, and no secret from the developer's environment."""
    monkeypatch.delenv(JWT_SECRET, raising=False)
    monkeypatch.delenv(SECRETS_KEY, raising=False)
    directory = tmp_path / "data"
    monkeypatch.setenv("LOYALNEST_DATA_DIR", str(directory))
    return directory


def settings(env_file: Path | None = None) -> Settings:
    return Settings(_env_file=env_file)


def write_secrets_file(data_dir: Path, jwt_secret: str, secrets_key: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    secrets_path(data_dir).write_text(f"{JWT_SECRET}={jwt_secret}\n{SECRETS_KEY}={secrets_key}\n")


def refusal(monkeypatch: pytest.MonkeyPatch, jwt_secret: str, secrets_key: str) -> str:
    monkeypatch.setenv(JWT_SECRET, jwt_secret)
    monkeypatch.setenv(SECRETS_KEY, secrets_key)
    with pytest.raises(SecretsError) as refused:
        load_secrets(settings())
    return str(refused.value)


# --- refusing unfit values ---------------------------------------------------------------


@pytest.mark.usefixtures("data_dir")
def test_good_values_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JWT_SECRET, GOOD_JWT)
    monkeypatch.setenv(SECRETS_KEY, GOOD_KEY)

    assert load_secrets(settings()) == Secrets(jwt_secret=GOOD_JWT, secrets_key=GOOD_KEY)


def test_nothing_set_anywhere_names_both_variables_and_the_fix(data_dir: Path) -> None:
    with pytest.raises(SecretsError) as refused:
        load_secrets(settings())

    message = str(refused.value)
    assert f"{JWT_SECRET} is not set" in message
    assert f"{SECRETS_KEY} is not set" in message
    assert "make up" in message
    assert str(secrets_path(data_dir)) in message


@pytest.mark.usefixtures("data_dir")
def test_one_unset_secret_is_refused_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JWT_SECRET, GOOD_JWT)

    with pytest.raises(SecretsError) as refused:
        load_secrets(settings())

    assert f"{SECRETS_KEY} is not set" in str(refused.value)
    assert JWT_SECRET not in str(refused.value).split("Fix:")[0]


@pytest.mark.usefixtures("data_dir")
def test_a_value_shorter_than_the_minimum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, "j" * (MIN_LENGTH - 1), GOOD_KEY)

    assert f"{JWT_SECRET} is shorter than {MIN_LENGTH} characters" in message


@pytest.mark.usefixtures("data_dir")
@pytest.mark.parametrize("published", sorted(PUBLISHED_VALUES))
def test_every_published_value_is_refused_for_either_secret(
    monkeypatch: pytest.MonkeyPatch, published: str
) -> None:
    assert f"{JWT_SECRET} is a published default" in refusal(monkeypatch, published, GOOD_KEY)
    assert f"{SECRETS_KEY} is a published default" in refusal(monkeypatch, GOOD_JWT, published)


def test_the_old_defaults_are_among_the_published_values() -> None:
    assert "dev-only-jwt-secret-change-me-in-production" in PUBLISHED_VALUES
    assert "dev-only-secrets-key-change-me" in PUBLISHED_VALUES


def test_the_values_stay_out_of_repr() -> None:
    assert GOOD_JWT not in repr(Secrets(GOOD_JWT, GOOD_KEY))
    assert GOOD_KEY not in repr(Secrets(GOOD_JWT, GOOD_KEY))


# --- the generated file --------------------------------------------------------------------


def test_the_file_is_generated_with_random_values_readable_only_by_the_owner(
    data_dir: Path,
) -> None:
    assert ensure_secrets_file(data_dir)

    path = secrets_path(data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = read_secrets_file(data_dir)
    assert len(values[JWT_SECRET]) >= MIN_LENGTH
    assert len(values[SECRETS_KEY]) >= MIN_LENGTH
    assert values[JWT_SECRET] != values[SECRETS_KEY]
    assert [p.name for p in data_dir.iterdir()] == [path.name]  # no temporary file left behind


def test_each_data_dir_gets_its_own_values(tmp_path: Path) -> None:
    ensure_secrets_file(tmp_path / "one")
    ensure_secrets_file(tmp_path / "two")

    assert read_secrets_file(tmp_path / "one") != read_secrets_file(tmp_path / "two")


def test_the_file_is_generated_once_and_never_overwritten(data_dir: Path) -> None:
    ensure_secrets_file(data_dir)
    first = secrets_path(data_dir).read_text()

    assert not ensure_secrets_file(data_dir)
    assert secrets_path(data_dir).read_text() == first


def test_a_file_written_by_someone_else_is_kept_as_it_is(data_dir: Path) -> None:
    write_secrets_file(data_dir, GOOD_JWT, GOOD_KEY)

    assert not ensure_secrets_file(data_dir)
    assert read_secrets_file(data_dir) == {JWT_SECRET: GOOD_JWT, SECRETS_KEY: GOOD_KEY}


# --- precedence: environment, .env, then the data dir's file ----------------------------


def test_unset_secrets_come_from_the_generated_file(data_dir: Path) -> None:
    ensure_secrets_file(data_dir)
    stored = read_secrets_file(data_dir)

    loaded = load_secrets(settings())

    assert loaded == Secrets(jwt_secret=stored[JWT_SECRET], secrets_key=stored[SECRETS_KEY])


def test_the_environment_beats_the_file(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_secrets_file(data_dir, "f" * MIN_LENGTH, "g" * MIN_LENGTH)
    monkeypatch.setenv(JWT_SECRET, GOOD_JWT)

    assert load_secrets(settings()) == Secrets(jwt_secret=GOOD_JWT, secrets_key="g" * MIN_LENGTH)


def test_dotenv_beats_the_file(data_dir: Path, tmp_path: Path) -> None:
    write_secrets_file(data_dir, "f" * MIN_LENGTH, "g" * MIN_LENGTH)
    env_file = tmp_path / ".env"
    env_file.write_text(f"{SECRETS_KEY}={GOOD_KEY}\n")

    loaded = load_secrets(settings(env_file))

    assert loaded == Secrets(jwt_secret="f" * MIN_LENGTH, secrets_key=GOOD_KEY)


def test_empty_values_as_in_env_example_fall_back_to_the_file(
    data_dir: Path, tmp_path: Path
) -> None:
    write_secrets_file(data_dir, GOOD_JWT, GOOD_KEY)
    env_file = tmp_path / ".env"
    env_file.write_text(f"{JWT_SECRET}=\n{SECRETS_KEY}=\n")

    assert load_secrets(settings(env_file)) == Secrets(GOOD_JWT, GOOD_KEY)


def test_an_unfit_value_in_the_environment_is_refused_even_with_a_good_file(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secrets_file(data_dir, GOOD_JWT, GOOD_KEY)
    monkeypatch.setenv(JWT_SECRET, "dev-only-jwt-secret-change-me-in-production")

    with pytest.raises(SecretsError, match=f"{JWT_SECRET} is a published default"):
        load_secrets(settings())


def test_unfit_values_in_the_file_are_refused(data_dir: Path) -> None:
    write_secrets_file(data_dir, "short", GOOD_KEY)

    with pytest.raises(SecretsError, match=f"{JWT_SECRET} is shorter"):
        load_secrets(settings())


# --- make run / make up, and the harness ---------------------------------------------------


class ServersStartedError(Exception):
    pass


def no_servers(_settings: Settings) -> list[object]:
    raise ServersStartedError


@pytest.fixture
def keep_log_levels() -> Iterator[None]:
    """`app.main` sets the loyalnest logger's level for the process; put it back."""
    logger = logging.getLogger("loyalnest")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.mark.usefixtures("keep_log_levels")
@pytest.mark.parametrize("command", ["run", "up"])
def test_make_run_and_up_generate_the_file_then_use_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setattr(app, "start_all", no_servers)

    with pytest.raises(ServersStartedError):  # got past the secrets, to starting the servers
        app.main([command])

    stored = read_secrets_file(data_dir)
    assert load_secrets(settings()) == Secrets(stored[JWT_SECRET], stored[SECRETS_KEY])


@pytest.mark.usefixtures("keep_log_levels")
@pytest.mark.parametrize("command", ["run", "up"])
def test_make_run_and_up_refuse_a_published_value_before_starting_anything(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    monkeypatch.setattr(app, "start_all", no_servers)
    monkeypatch.setenv(JWT_SECRET, "dev-only-jwt-secret-change-me-in-production")

    assert app.main([command]) == 2

    assert f"{JWT_SECRET} is a published default" in capsys.readouterr().err
    assert secrets_path(data_dir).exists()  # generated all the same, for LOYALNEST_SECRETS_KEY


def harness_secrets() -> str:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from loyalnest.harness import shops; print(shops.JWT_SECRET, shops.SECRETS_KEY)",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_the_harness_makes_up_fit_secrets_in_every_process() -> None:
    first, second = harness_secrets(), harness_secrets()

    assert first != second
    jwt_secret, secrets_key = first.split()
    assert weakness(JWT_SECRET, jwt_secret) is None
    assert weakness(SECRETS_KEY, secrets_key) is None
