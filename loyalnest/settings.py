"""The one settings object, read from the environment (and an optional `.env` file).

Only entry points (`main()`, `create_app()`, CLI commands) read it; everything else takes
plain arguments, so tests can build any component without touching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob LoyalNest has; the README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Prepended to every topic name: several deployments (or test runs) can share a cluster.
    kafka_topic_prefix: str = ""
    kafka_topic_partitions: int = Field(default=4, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_database: str = "loyalnest"
    postgres_url: str = "postgresql://loyalnest:loyalnest@127.0.0.1:5432/loyalnest"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "loyalnest:"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    api_host: str = "127.0.0.1"
    api_http_port: int = 8080
    api_grpc_port: int = 50059
    # API processes serving both ports (SO_REUSEPORT spreads connections over them); more than
    # one adds CPU cores to the API, and /metrics then sums all of them (README, "Scaling").
    api_workers: int = Field(default=1, ge=1, le=64)
    # Signs API tokens (HS256). No default, as a published one signs tokens for anyone: read
    # it through loyalnest.app_secrets.load_secrets (which falls back to <data_dir>/secrets.env).
    jwt_secret: SecretStr | None = None
    jwt_ttl_days: int = Field(default=30, ge=1)
    # Encrypts webhook secrets at rest (pgcrypto). No default either; read as jwt_secret.
    secrets_key: SecretStr | None = Field(default=None, validation_alias="LOYALNEST_SECRETS_KEY")
    webhook_rate_limit: int = Field(default=40, ge=1)
    # Lifetime of every balance cache entry, so a failed cache update is stale at most this long.
    balance_cache_seconds: int = Field(default=5, ge=1)
    # How long the points flow's store sink may hold a balance document back, writing only its
    # newest version when the time is up: a customer's burst of commands (an earn, then the
    # tier entry bonus it brings) costs the store one balance write. Below
    # balance_cache_seconds, so that a cache entry the flow refreshed outlives the hold and a
    # read never falls back to a document older than the hold.
    balance_write_hold_seconds: float = Field(default=2.0, ge=0)
    # Lifetime of every referral cache entry (the referrals flow refreshes an entry on every
    # change; this bounds how stale one whose refresh failed may be).
    referral_cache_seconds: int = Field(default=60, ge=1)
    # Shops, known or unknown, the API keeps in memory (least recently used ones leave first).
    merchant_cache_entries: int = Field(default=10_000, ge=1)
    # How long the API serves a merchant's RFM picture (segment counts, scales) from memory.
    rfm_picture_seconds: float = Field(default=1.0, ge=0)
    # How long the API serves a merchant's tier configurations from memory. A new version takes
    # effect 10 seconds after it is saved, so up to 5 seconds here never shows a stale one.
    tier_config_seconds: float = Field(default=1.0, ge=0, le=5)
    flow_api_port: int = Field(default=3030, validation_alias="FLOW_API_PORT")
    # Processes per flow (a Bytewax cluster, one worker each), and per-flow overrides as JSON,
    # e.g. {"points": 2}. `loyalnest flows scale FLOW N` overrides both. At most the flow's
    # input topic partitions and FLOW_RECOVERY_PARTITIONS (README, "Scaling").
    flow_processes: int = Field(default=1, ge=1, le=64, validation_alias="FLOW_PROCESSES")
    flow_processes_by_flow: dict[str, int] = Field(
        default={}, validation_alias="FLOW_PROCESSES_BY_FLOW"
    )
    # Each flow's CPU niceness (-20 to 19, lower runs first), as JSON; a flow not named keeps 0.
    # The tiers flow's commands come back to the points flow, whose balance-write hold merges
    # a bonus with its earn only if the bonus comes within the hold: on shared cores the tiers
    # flow must not wait behind the bulk of the pipeline. Lowering niceness takes privilege
    # (root or CAP_SYS_NICE); without it the flow logs a warning and runs at 0.
    flow_nice_by_flow: dict[str, Annotated[int, Field(ge=-20, le=19)]] = Field(
        default={"tiers": -5}, validation_alias="FLOW_NICE_BY_FLOW"
    )
    # Process k of the flow at port offset o talks to its peers on FLOW_CLUSTER_PORT + 100·o + k.
    flow_cluster_port: int = Field(default=2101, validation_alias="FLOW_CLUSTER_PORT")
    flow_recovery_partitions: int = Field(
        default=4, ge=1, validation_alias="FLOW_RECOVERY_PARTITIONS"
    )
    flow_snapshot_seconds: int = Field(default=5, ge=1, validation_alias="FLOW_SNAPSHOT_SECONDS")
    # The flows' malloc (loyalnest/allocator.py): jemalloc holds far less memory per customer.
    flow_allocator: Literal["jemalloc", "system"] = Field(
        default="jemalloc", validation_alias="FLOW_ALLOCATOR"
    )
    # How often the clock job ticks (loyalnest/clock.py): how long after their due time, at most,
    # expiries and releases show in balances (while the flow keeps up; the ledger dates them at
    # their due time whatever the delay).
    clock_interval_seconds: int = Field(default=60, ge=1)
    # How often the RFM rescoring round runs (loyalnest/rfm_round.py): how long, at most, a
    # customer's announced scores lag their values or their merchant's picture.
    rfm_round_seconds: int = Field(default=5, ge=1)
    # Where a round job (the clock, the RFM rounds) serves /health and /metrics while it runs
    # rounds forever (loyalnest/liveness.py); unset: none. The supervisor sets it per job.
    round_health_port: int | None = Field(default=None, validation_alias="ROUND_HEALTH_PORT")
    data_dir: Path = Field(default=Path(".data"), validation_alias="LOYALNEST_DATA_DIR")
    log_level: str = Field(default="INFO", validation_alias="LOYALNEST_LOG_LEVEL")
    # json: one object per line (for log shippers); text: plain lines for a terminal.
    log_format: Literal["json", "text"] = Field(
        default="json", validation_alias="LOYALNEST_LOG_FORMAT"
    )

    @model_validator(mode="after")
    def _hold_within_cache(self) -> Settings:
        if self.balance_write_hold_seconds >= self.balance_cache_seconds:
            raise ValueError(
                f"BALANCE_WRITE_HOLD_SECONDS ({self.balance_write_hold_seconds}) must be below "
                f"BALANCE_CACHE_SECONDS ({self.balance_cache_seconds})"
            )
        return self

    @field_validator("jwt_secret", "secrets_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # .env.example lists the secrets empty: a .env copied from it must not hide the
        # generated <data_dir>/secrets.env behind empty values.
        return None if value == "" else value

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"

    @property
    def kafka_brokers(self) -> list[str]:
        return [b.strip() for b in self.kafka_bootstrap_servers.split(",") if b.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
