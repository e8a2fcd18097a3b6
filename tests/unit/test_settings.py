"""Settings: read from the environment, and every variable documented with its default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from loyalnest.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else field.upper()


def documented(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", path.read_text(), re.M))


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_in_env_example_with_its_default(field: str) -> None:
    example = documented(ROOT / ".env.example")
    default = Settings.model_fields[field].default
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if isinstance(default, dict):  # given as JSON
        assert json.loads(example[env_name(field)]) == default
        return
    # A setting without a default (the two secrets) is listed empty, which reads as unset.
    assert example[env_name(field)] == ("" if default is None else str(default))


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_in_the_readme_table(field: str) -> None:
    assert f"| `{env_name(field)}` |" in (ROOT / "README.md").read_text()


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_HTTP_PORT", "9999")
    monkeypatch.setenv("LOYALNEST_DATA_DIR", "/srv/loyalnest")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2")

    settings = Settings(_env_file=None)

    assert settings.api_http_port == 9999
    assert settings.data_dir == Path("/srv/loyalnest")
    assert settings.kafka_brokers == ["a:1", "b:2"]


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValueError, match="kafka_topic_partitions"):
        Settings(_env_file=None)


def test_a_balance_write_hold_as_long_as_the_cache_lifetime_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cache entry the flow refreshed must outlive the hold, or a read after it expires could
    # fall back to a store document older than the hold.
    monkeypatch.setenv("BALANCE_CACHE_SECONDS", "2")
    monkeypatch.setenv("BALANCE_WRITE_HOLD_SECONDS", "2")
    with pytest.raises(ValueError, match="must be below BALANCE_CACHE_SECONDS"):
        Settings(_env_file=None)
    monkeypatch.setenv("BALANCE_WRITE_HOLD_SECONDS", "1.5")
    assert Settings(_env_file=None).balance_write_hold_seconds == 1.5
