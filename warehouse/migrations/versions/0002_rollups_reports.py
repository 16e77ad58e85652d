"""rollups_reports: 5-minute/hourly/daily rollups and rendered fleet digests

Revision ID: 0002
Revises: 0001

Hand-written from Alembic's autogenerate draft; frozen here (it does not import warehouse.schema) so later
schema edits cannot change what this revision does.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = postgresql.TIMESTAMP(timezone=True)
HOST_GRAINS = ("5m", "1h")
ACTIVITY_GRAINS = ("5m", "1h", "1d")


def _host_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("bucket_start", TS, nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("cpu_util_pct_mean", sa.Double(), nullable=True),
        sa.Column("cpu_util_pct_max", sa.Double(), nullable=True),
        sa.Column("mem_used_mb_mean", sa.Double(), nullable=True),
        sa.Column("mem_used_mb_max", sa.Double(), nullable=True),
        sa.Column("mem_total_mb", sa.Double(), nullable=True),
        sa.Column("load_avg_1_mean", sa.Double(), nullable=True),
        sa.Column("load_avg_1_max", sa.Double(), nullable=True),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("gpu_energy_j", sa.Double(), nullable=False),
    ]


def _gpu_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("gpu_key", sa.Text(), nullable=False),
        sa.Column("bucket_start", TS, nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("temp_c_mean", sa.Double(), nullable=False),
        sa.Column("temp_c_max", sa.Double(), nullable=False),
        sa.Column("vram_used_mb_mean", sa.Double(), nullable=False),
        sa.Column("vram_used_mb_max", sa.Double(), nullable=False),
        sa.Column("vram_total_mb", sa.Double(), nullable=False),
        sa.Column("util_pct_mean", sa.Double(), nullable=False),
        sa.Column("util_pct_max", sa.Double(), nullable=False),
        sa.Column("power_w_mean", sa.Double(), nullable=False),
        sa.Column("power_w_max", sa.Double(), nullable=False),
        sa.Column("energy_j", sa.Double(), nullable=False),
        sa.Column("covered_s", sa.Double(), nullable=False),
    ]


def _activity_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("bucket_start", TS, nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_tokens", sa.BigInteger(), nullable=False),
        sa.Column("request_ms", sa.BigInteger(), nullable=False),
        sa.Column("busy_ms", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tps_samples", sa.Integer(), nullable=False),
        sa.Column("prompt_tps_p50", sa.Double(), nullable=True),
        sa.Column("prompt_tps_p95", sa.Double(), nullable=True),
        sa.Column("prompt_tps_p99", sa.Double(), nullable=True),
        sa.Column("gen_tps_samples", sa.Integer(), nullable=False),
        sa.Column("gen_tps_p50", sa.Double(), nullable=True),
        sa.Column("gen_tps_p95", sa.Double(), nullable=True),
        sa.Column("gen_tps_p99", sa.Double(), nullable=True),
        sa.Column("swaps", sa.Integer(), nullable=False),
        sa.Column("loads_timed", sa.Integer(), nullable=False),
        sa.Column("load_ms_sum", sa.BigInteger(), nullable=False),
        sa.Column("load_ms_max", sa.BigInteger(), nullable=True),
    ]


def upgrade() -> None:
    for grain in HOST_GRAINS:
        name = f"rollup_host_{grain}"
        op.create_table(
            name,
            *_host_columns(),
            sa.PrimaryKeyConstraint("provider_id", "bucket_start", name=op.f(f"pk_{name}")),
        )
        op.create_index(f"ix_{name}_bucket", name, ["bucket_start"], unique=False)
    for grain in HOST_GRAINS:
        name = f"rollup_gpu_{grain}"
        op.create_table(
            name,
            *_gpu_columns(),
            sa.PrimaryKeyConstraint("provider_id", "gpu_key", "bucket_start", name=op.f(f"pk_{name}")),
        )
        op.create_index(f"ix_{name}_bucket", name, ["bucket_start"], unique=False)
    for grain in ACTIVITY_GRAINS:
        name = f"rollup_activity_{grain}"
        op.create_table(
            name,
            *_activity_columns(),
            sa.PrimaryKeyConstraint("provider_id", "model_id", "bucket_start", name=op.f(f"pk_{name}")),
        )
        op.create_index(f"ix_{name}_bucket", name, ["bucket_start"], unique=False)
    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("period_end", TS, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("generated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("figures", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("kind", "period_start", name="uq_reports_kind_period"),
    )
    op.create_index("ix_reports_period", "reports", ["period_start"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_reports_period", table_name="reports")
    op.drop_table("reports")
    names = (
        [f"rollup_activity_{g}" for g in ACTIVITY_GRAINS]
        + [f"rollup_gpu_{g}" for g in HOST_GRAINS]
        + [f"rollup_host_{g}" for g in HOST_GRAINS]
    )
    for name in names:
        op.drop_index(f"ix_{name}_bucket", table_name=name)
        op.drop_table(name)
