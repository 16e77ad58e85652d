"""gateway: one row per request served by the gateway (see warehouse/schema_gateway.py)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_requests",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("request_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("started_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("replica", sa.Text(), nullable=False),
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("consumer_source", sa.Text(), nullable=False),
        sa.Column("requested_model", sa.Text(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.Text(), nullable=True),
        sa.Column("model_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "fallbacks", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("total_ms", sa.Double(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_gateway_requests_request_id")),
    )
    op.create_index("ix_gateway_requests_started_at", "gateway_requests", ["started_at"], unique=False)
    op.create_index(
        "ix_gateway_requests_consumer", "gateway_requests", ["consumer", "started_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_gateway_requests_consumer", table_name="gateway_requests")
    op.drop_index("ix_gateway_requests_started_at", table_name="gateway_requests")
    op.drop_table("gateway_requests")
