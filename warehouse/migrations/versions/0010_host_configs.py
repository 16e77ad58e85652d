"""operations: effective host configs seen, version by version (see warehouse/schema_ops.py)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = postgresql.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "host_config_versions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("parsed", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("seen_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_host_config_versions"),
        sa.UniqueConstraint("provider_id", "source", "sha256", name="uq_host_config_versions_key"),
        sa.CheckConstraint("source IN ('mcp', 'ssh')", name="ck_host_config_versions_source"),
    )
    op.create_table(
        "host_config_changes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("previous_sha256", sa.Text(), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_host_config_changes"),
    )
    op.create_index("ix_host_config_changes_provider_at", "host_config_changes", ["provider_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_host_config_changes_provider_at", table_name="host_config_changes")
    op.drop_table("host_config_changes")
    op.drop_table("host_config_versions")
