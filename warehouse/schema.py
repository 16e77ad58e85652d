"""Warehouse schema: SQLAlchemy Core tables, the source of truth for Alembic migrations.

Storage design
--------------
* Every host-scoped row carries ``provider_id``. Time columns are ``timestamptz`` in UTC (``*_at``).
* **Boots.** llama-swap has no instance id; ``/api/hardware.captured_at`` changes only when the process
  restarts, so ``instance_boots`` holds one row per (provider, boot marker).
* **Activity epochs.** Activity ids are only stable while the instance's activity store lives: with the
  default in-memory store they restart at 1 on every process restart, with ``store.path`` they keep
  counting. An *epoch* names one id sequence; it is the boot marker of the boot where the sequence
  started (a text key the connector derives without asking the database, so it can buffer through a
  Postgres outage). Activity rows are keyed by (provider_id, epoch, upstream_id), so a re-fetch is a
  no-op (ON CONFLICT DO NOTHING) and a restart that resets ids starts a new epoch instead of
  overwriting history.
* **Gaps.** When rows existed upstream but could not be recovered (ring overflow while the connector
  was away, an in-memory store lost on restart), a ``gaps`` row records exactly which ids/time range.
* **Raw events.** Every SSE message and polled payload also lands in ``raw_events`` (jsonb) with a
  client-generated UUID, so replays after a Postgres outage are idempotent and typed tables can be
  rebuilt from what was observed.
* Deduplication is always a UNIQUE/PRIMARY KEY constraint used with ON CONFLICT, never an application
  check.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, UUID

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

TS = TIMESTAMP(timezone=True)


providers = Table(
    "providers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("label", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("labels", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
)

instance_boots = Table(
    "instance_boots",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("boot_marker", Text, primary_key=True),
    Column("version", Text),
    Column("commit", Text),
    Column("build_date", Text),
    Column("hardware", JSONB),
    Column("first_seen_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
)

activity_epochs = Table(
    "activity_epochs",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("epoch", Text, primary_key=True),
    Column("started_at", TS, nullable=False),
    Column("reason", Text, nullable=False),
)

config_reloads = Table(
    "config_reloads",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("boot_marker", Text, primary_key=True),
    Column("detected_at", TS, primary_key=True),
    Column("evidence", Text, nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("model_id", Text, primary_key=True),
    Column("name", Text),
    Column("description", Text),
    Column("kind", Text, nullable=False, server_default=text("'model'")),
    Column("unlisted", Boolean, nullable=False, server_default=text("false")),
    Column("aliases", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("capabilities", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("context_length", Integer),
    Column("meta", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("state", Text),
    Column("first_seen_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
)

model_transitions = Table(
    "model_transitions",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), nullable=False),
    Column("model_id", Text, nullable=False),
    Column("observed_at", TS, nullable=False),
    Column("boot_marker", Text),
    Column("from_state", Text),
    Column("to_state", Text, nullable=False),
    Column("source", Text, nullable=False),
    UniqueConstraint("provider_id", "model_id", "observed_at", "to_state", name="uq_model_transitions_key"),
)
Index("ix_model_transitions_time", model_transitions.c.provider_id, model_transitions.c.observed_at)

activity = Table(
    "activity",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("epoch", Text, primary_key=True),
    Column("upstream_id", BigInteger, primary_key=True),
    Column("finished_at", TS, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("req_path", Text, nullable=False),
    Column("resp_content_type", Text, nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cache_tokens", Integer, nullable=False),
    Column("draft_tokens", Integer, nullable=False),
    Column("draft_acc_tokens", Integer, nullable=False),
    Column("prompt_per_second", Double, nullable=False),
    Column("tokens_per_second", Double, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("has_capture", Boolean, nullable=False),
    Column("error_msg", Text),
    Column("metadata", JSONB),
    Column("ingested_at", TS, nullable=False, server_default=func.now()),
)
Index("ix_activity_time", activity.c.finished_at)
Index("ix_activity_provider_model_time", activity.c.provider_id, activity.c.model_id, activity.c.finished_at)

perf_samples = Table(
    "perf_samples",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("sampled_at", TS, primary_key=True),
    Column("raw_ts", Text, nullable=False),
    Column("cpu_util_pct", Double, nullable=False),
    Column("cpu_util_per_core", ARRAY(Double), nullable=False),
    Column("mem_total_mb", Double, nullable=False),
    Column("mem_used_mb", Double, nullable=False),
    Column("mem_free_mb", Double, nullable=False),
    Column("swap_total_mb", Double, nullable=False),
    Column("swap_used_mb", Double, nullable=False),
    Column("load_avg_1", Double, nullable=False),
    Column("load_avg_5", Double, nullable=False),
    Column("load_avg_15", Double, nullable=False),
    Column("net_io", JSONB),
)
Index("ix_perf_samples_time", perf_samples.c.sampled_at)

gpu_samples = Table(
    "gpu_samples",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("gpu_key", Text, primary_key=True),
    Column("sampled_at", TS, primary_key=True),
    Column("raw_ts", Text, nullable=False),
    Column("gpu_index", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("temp_c", Double, nullable=False),
    Column("vram_temp_c", Double, nullable=False),
    Column("util_pct", Double, nullable=False),
    Column("mem_util_pct", Double, nullable=False),
    Column("mem_used_mb", Double, nullable=False),
    Column("mem_total_mb", Double, nullable=False),
    Column("fan_pct", Double, nullable=False),
    Column("power_w", Double, nullable=False),
)
Index("ix_gpu_samples_time", gpu_samples.c.sampled_at)

inflight_snapshots = Table(
    "inflight_snapshots",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("observed_at", TS, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("requests", JSONB, nullable=False),
)

logs = Table(
    "logs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), nullable=False),
    Column("source", Text, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("text", Text, nullable=False),
    Column("event_uid", UUID(as_uuid=True), nullable=False, unique=True),
)
Index("ix_logs_provider_time", logs.c.provider_id, logs.c.received_at)

captures = Table(
    "captures",
    metadata,
    Column("provider_id", Text, primary_key=True),
    Column("epoch", Text, primary_key=True),
    Column("upstream_id", BigInteger, primary_key=True),
    Column("req_path", Text),
    Column("req_headers", JSONB),
    Column("resp_headers", JSONB),
    Column("req_body", LargeBinary),
    Column("resp_body", LargeBinary),
    Column("size_bytes", Integer, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Column("fetched_at", TS, nullable=False),
)

gaps = Table(
    "gaps",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), nullable=False),
    Column("stream", Text, nullable=False),
    Column("epoch", Text),
    Column("from_id", BigInteger),
    Column("to_id", BigInteger),
    Column("from_at", TS),
    Column("to_at", TS),
    Column("detected_at", TS, nullable=False),
    Column("reason", Text, nullable=False),
    UniqueConstraint(
        "provider_id",
        "stream",
        "epoch",
        "from_id",
        "from_at",
        name="uq_gaps_key",
        postgresql_nulls_not_distinct=True,
    ),
)

connector_health = Table(
    "connector_health",
    metadata,
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column("status", Text, nullable=False),
    Column("version", Text),
    Column("boot_marker", Text),
    Column("connected_since", TS),
    Column("last_event_at", TS),
    Column("last_error", Text),
    Column("last_error_at", TS),
    Column("updated_at", TS, nullable=False),
)

raw_events = Table(
    "raw_events",
    metadata,
    Column("event_uid", UUID(as_uuid=True), primary_key=True),
    Column("provider_id", Text, ForeignKey("providers.id", ondelete="CASCADE"), nullable=False),
    Column("boot_marker", Text),
    Column("received_at", TS, nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
)
Index("ix_raw_events_time", raw_events.c.received_at)
Index("ix_raw_events_provider_time", raw_events.c.provider_id, raw_events.c.received_at)

favorites = Table(
    "favorites",
    metadata,
    Column("provider_id", Text, primary_key=True),
    Column("model_id", Text, primary_key=True),
    Column("created_at", TS, nullable=False, server_default=func.now()),
)

actions = Table(
    "actions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("provider_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("requested_by", Text),
    Column("requested_at", TS, nullable=False),
    Column("started_at", TS),
    Column("finished_at", TS),
    Column("status", Text, nullable=False),
    Column("result", JSONB),
    Column("error", Text),
)
Index("ix_actions_provider_status", actions.c.provider_id, actions.c.status, actions.c.id)


# Tables of later capabilities live in their own modules on the same MetaData; import them last.
from warehouse import (  # noqa: E402,F401
    schema_alerts,
    schema_bench,
    schema_evals,
    schema_fleet,
    schema_gateway,
    schema_ops,
    schema_rollups,
)
