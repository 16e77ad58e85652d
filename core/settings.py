"""The one typed settings object.

`Settings` is read from the environment (prefix ``BOOCONTROL_``, nested with ``__``) and only at
entry points: the CLI, Prefect tasks and the Streamlit data layer. Domain functions receive plain
values, never a `Settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "boocontrol"


class RetentionSettings(BaseSettings):
    """How long each kind of data is kept (see flows/retention)."""

    raw_perf_hours: int = Field(48, description="Raw host/GPU performance samples")
    rollup_days: int = Field(90, description="5-minute, hourly and daily rollups")
    activity_days: int = Field(90, description="Request activity rows")
    raw_event_days: int = Field(14, description="Raw SSE/poll payloads")
    log_days: int = Field(7, description="Log chunks")
    capture_total_mb: int = Field(512, description="Total budget for stored captures, pruned oldest first")
    batch_rows: int = Field(5000, description="Rows deleted per retention batch")
    capture_row_kb: int = Field(256, description="Per-row cap for stored captures")
    throttle: float = Field(9.0, description="After each delete batch, sleep this many times as long as it took")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOCONTROL_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(
        DEFAULT_DATA_DIR, description="Where the embedded Postgres, spools and exports live"
    )
    database_url: str | None = Field(
        None, description="Postgres URL; unset means the embedded cluster in data_dir"
    )
    fleet_file: Path | None = Field(
        None, description="Provider registry YAML; unset means data_dir/fleet.yaml"
    )
    embedded_pg_port: int = Field(54329, description="Port of the embedded Postgres cluster")
    log_level: str = Field("INFO", description="Python log level")
    connector_batch_rows: int = Field(2000, description="Rows per write batch")
    connector_flush_seconds: float = Field(0.25, description="Max time a row waits before being written")
    connector_buffer_rows: int = Field(200_000, description="In-memory rows before spilling to disk")
    connector_perf_poll_seconds: float = Field(5.0, description="How often /api/performance is polled")
    connector_liveness_seconds: float = Field(15.0, description="How often /wol-health is probed")
    connector_capture_fetch: bool = Field(True, description="Fetch captures as soon as an activity row lands")
    connector_lease_seconds: float = Field(
        15.0, gt=0, description="Connectors sharing a database: a dead connector's providers move to the others "
        "this long after its last heartbeat (heartbeats every fifth of it; a connector that cannot reach Postgres "
        "for half of it stops following)")
    connector_take_over_local_dead: bool = Field(
        True, description="Take the providers of a connector process of this machine that is gone (killed, "
        "crashed) at once instead of after its lease expires")
    bench_unattended_idle_seconds: float = Field(
        600.0, ge=0, description="An unattended (scheduled) benchmark runs only if it gets the host lease at once and "
        "the host has had nothing in flight and no request for this long; otherwise the run is recorded as skipped "
        "with the reason")
    gateway_host: str = Field("127.0.0.1", description="Address the OpenAI-compatible gateway listens on")
    gateway_port: int = Field(8790, description="Port of the OpenAI-compatible gateway (`boocontrol gateway`, `up`)")
    gateway_replica: str | None = Field(
        None, description="This gateway replica's name in gateway_requests; unset means host name:port")
    gateway_connect_timeout_seconds: float = Field(
        3.0, gt=0, description="Gateway: an upstream that does not accept the connection this fast is skipped "
        "(next candidate)")
    gateway_first_byte_timeout_seconds: float = Field(
        120.0, gt=0, description="Gateway: an upstream that sends nothing for this long before its first byte is "
        "skipped (next candidate); the same silence later ends the stream with an error event. Leave room for a "
        "cold model's load")
    gateway_cooldown_seconds: float = Field(
        30.0, ge=0, description="Gateway: a target that failed (connect error, 5xx, 429, no first byte) gets no "
        "request for this long (after a 429: only its Retry-After, 1 s without one)")
    gateway_keys: SecretStr | None = Field(
        None, description="Gateway API keys as owner=key pairs separated by commas; hashed at start, never "
        "logged (also: gateway_keys_file)")
    gateway_keys_file: Path | None = Field(
        None, description="Gateway API keys YAML (owner, sha256 of the key, optional limits); unset means "
        "data_dir/secrets/gateway-keys.yaml when it exists")
    gateway_require_key: bool = Field(
        False, description="Gateway: refuse requests without a known key (401); otherwise they are attributed "
        "to X-Boo-Source or the User-Agent")
    gateway_key_concurrency: int = Field(
        16, ge=0, description="Gateway: requests in flight per key (per replica; 0 = unlimited); over it: 429 "
        "with Retry-After")
    gateway_key_rate_per_minute: float = Field(
        0.0, ge=0, description="Gateway: requests per minute per key (per replica; 0 = unlimited); over it: 429 "
        "with Retry-After")
    gateway_policies_file: Path | None = Field(
        None, description="Routing policies YAML for auto:* models (reloaded when it changes); unset means "
        "data_dir/gateway-policies.yaml when it exists, else the built-in policies")
    gateway_facts_refresh_seconds: float = Field(
        5.0, gt=0, description="Gateway: how often the measured fleet facts and the model catalog are re-read")
    gateway_slo_ttft_ms: float = Field(
        2000.0, gt=0, description="Consumers view: a request meets its SLO when its time to first byte is at most "
        "this (and its time per output token at most gateway_slo_tpot_ms)")
    gateway_slo_tpot_ms: float = Field(
        100.0, gt=0, description="Consumers view: the time-per-output-token target of the SLO (a non-streamed "
        "request meets the SLO within TTFT target + tokens x this)")
    retention: RetentionSettings = Field(default_factory=RetentionSettings)  # type: ignore[arg-type]

    @field_validator("database_url")
    @classmethod
    def _normalise_dsn(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        for prefix in ("postgres://", "postgresql://"):
            if v.startswith(prefix):
                v = "postgresql+psycopg://" + v[len(prefix) :]
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        example = "like postgresql://user@host:5432/dbname"
        try:  # the value itself is never echoed: it may hold a password
            url = make_url(v)
        except ArgumentError:
            raise ValueError(f"not a URL; give a Postgres URL {example}") from None
        except ValueError:  # e.g. a port that is not a number
            raise ValueError(f"cannot be parsed (is the port a number?); give a Postgres URL {example}") from None
        if url.drivername != "postgresql+psycopg":
            raise ValueError(f"{url.drivername!r} is not Postgres; give a Postgres URL {example}")
        return v

    @property
    def fleet_path(self) -> Path:
        return self.fleet_file or (self.data_dir / "fleet.yaml")

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def gateway_keys_path(self) -> Path:
        return self.gateway_keys_file or (self.data_dir / "secrets" / "gateway-keys.yaml")

    @property
    def gateway_policies_path(self) -> Path:
        return self.gateway_policies_file or (self.data_dir / "gateway-policies.yaml")

    @property
    def secrets_dir(self) -> Path:
        """SSH keys (named by the registry's ``ssh.key``) and ``known_hosts``; never logged, never stored."""
        return self.data_dir / "secrets"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.embedded_pg_port}/boocontrol"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
