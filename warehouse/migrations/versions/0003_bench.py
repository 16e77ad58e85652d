"""bench: runs, sweep points, per-request rows, baselines (see warehouse/schema_bench.py)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bench_runs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_uid", sa.Text(), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("workload_key", sa.Text(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("host_kind", sa.Text(), nullable=True),
        sa.Column("llama_swap_version", sa.Text(), nullable=True),
        sa.Column("llama_swap_commit", sa.Text(), nullable=True),
        sa.Column("version_info", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("model_entry", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("server_props", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("hardware", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("loaded_before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("started_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("finished_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("foreign_requests", sa.Integer(), nullable=True),
        sa.Column("energy_j", sa.Double(), nullable=True),
        sa.Column("j_per_token", sa.Double(), nullable=True),
        sa.Column("idle_w", sa.Double(), nullable=True),
        sa.Column("extra", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bench_runs")),
        sa.UniqueConstraint("run_uid", name=op.f("uq_bench_runs_run_uid")),
    )
    op.create_index(
        "ix_bench_runs_provider_model_time",
        "bench_runs",
        ["provider_id", "model_id", "started_at"],
        unique=False,
    )
    op.create_table(
        "bench_baselines",
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["bench_runs.id"],
            name=op.f("fk_bench_baselines_run_id_bench_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("provider_id", "model_id", "run_id", name=op.f("pk_bench_baselines")),
    )
    op.create_table(
        "bench_points",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.SmallInteger(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("level", sa.Double(), nullable=False),
        sa.Column("arrival", sa.Text(), nullable=True),
        sa.Column("started_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("finished_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("request_throughput", sa.Double(), nullable=False),
        sa.Column("output_throughput", sa.Double(), nullable=False),
        sa.Column("total_token_throughput", sa.Double(), nullable=False),
        sa.Column("prompt_throughput", sa.Double(), nullable=False),
        sa.Column("goodput", sa.Double(), nullable=False),
        sa.Column("goodput_ratio", sa.Double(), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("peak_concurrency", sa.Integer(), nullable=False),
        sa.Column("mean_concurrency", sa.Double(), nullable=False),
        sa.Column("ttft_p50_ms", sa.Double(), nullable=True),
        sa.Column("ttft_p90_ms", sa.Double(), nullable=True),
        sa.Column("ttft_p95_ms", sa.Double(), nullable=True),
        sa.Column("ttft_p99_ms", sa.Double(), nullable=True),
        sa.Column("ttft_mean_ms", sa.Double(), nullable=True),
        sa.Column("tpot_p50_ms", sa.Double(), nullable=True),
        sa.Column("tpot_p90_ms", sa.Double(), nullable=True),
        sa.Column("tpot_p95_ms", sa.Double(), nullable=True),
        sa.Column("tpot_p99_ms", sa.Double(), nullable=True),
        sa.Column("tpot_mean_ms", sa.Double(), nullable=True),
        sa.Column("itl_p50_ms", sa.Double(), nullable=True),
        sa.Column("itl_p90_ms", sa.Double(), nullable=True),
        sa.Column("itl_p95_ms", sa.Double(), nullable=True),
        sa.Column("itl_p99_ms", sa.Double(), nullable=True),
        sa.Column("itl_mean_ms", sa.Double(), nullable=True),
        sa.Column("e2e_p50_ms", sa.Double(), nullable=True),
        sa.Column("e2e_p90_ms", sa.Double(), nullable=True),
        sa.Column("e2e_p95_ms", sa.Double(), nullable=True),
        sa.Column("e2e_p99_ms", sa.Double(), nullable=True),
        sa.Column("e2e_mean_ms", sa.Double(), nullable=True),
        sa.Column("decode_tps_mean", sa.Double(), nullable=True),
        sa.Column("server_predicted_per_s_mean", sa.Double(), nullable=True),
        sa.Column("schedule_lag_p90_ms", sa.Double(), nullable=True),
        sa.Column("saturated", sa.Boolean(), nullable=False),
        sa.Column("saturation_reason", sa.Text(), nullable=True),
        sa.Column("energy_j", sa.Double(), nullable=True),
        sa.Column("j_per_token", sa.Double(), nullable=True),
        sa.Column("energy_samples", sa.Integer(), nullable=True),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["bench_runs.id"], name=op.f("fk_bench_points_run_id_bench_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bench_points")),
        sa.UniqueConstraint("run_id", "idx", name="uq_bench_points_run_idx"),
    )
    op.create_table(
        "bench_requests",
        sa.Column("point_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("send_offset_ms", sa.Double(), nullable=False),
        sa.Column("scheduled_offset_ms", sa.Double(), nullable=True),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("e2e_ms", sa.Double(), nullable=True),
        sa.Column("tpot_ms", sa.Double(), nullable=True),
        sa.Column("decode_tps", sa.Double(), nullable=True),
        sa.Column("chunk_ms", postgresql.ARRAY(sa.Double()), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.Text(), nullable=True),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("retries", sa.SmallInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("target_input_tokens", sa.Integer(), nullable=True),
        sa.Column("target_output_tokens", sa.Integer(), nullable=True),
        sa.Column("usage", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("timings", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["point_id"],
            ["bench_points.id"],
            name=op.f("fk_bench_requests_point_id_bench_points"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["bench_runs.id"],
            name=op.f("fk_bench_requests_run_id_bench_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("point_id", "seq", name=op.f("pk_bench_requests")),
    )
    op.create_index("ix_bench_requests_run", "bench_requests", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bench_requests_run", table_name="bench_requests")
    op.drop_table("bench_requests")
    op.drop_table("bench_points")
    op.drop_table("bench_baselines")
    op.drop_index("ix_bench_runs_provider_model_time", table_name="bench_runs")
    op.drop_table("bench_runs")
