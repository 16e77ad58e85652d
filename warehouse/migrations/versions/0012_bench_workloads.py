"""benchmarks: capacity searches under SLOs (see warehouse/schema_bench.py)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = postgresql.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bench_capacity_searches",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("percentile", sa.SmallInteger(), nullable=False),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("tpot_ms", sa.Double(), nullable=True),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("max_points", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("capacity", sa.Double(), nullable=True),
        sa.Column("reached", sa.Boolean(), nullable=True),
        sa.Column("limited_by", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("points", postgresql.JSONB(astext_type=Text()), server_default="[]", nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("started_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bench_capacity_model", "bench_capacity_searches", ["provider_id", "model_id"])


def downgrade() -> None:
    op.drop_index("ix_bench_capacity_model", table_name="bench_capacity_searches")
    op.drop_table("bench_capacity_searches")
