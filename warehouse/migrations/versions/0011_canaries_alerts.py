"""operations: canary probes, alert state and history (see warehouse/schema_alerts.py)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = postgresql.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "canary_cycles",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=False),
        sa.Column("hosts", sa.Integer(), nullable=False),
        sa.Column("probed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("unmatched", sa.Integer(), nullable=False),
        sa.Column("skipped", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canary_cycles")),
    )
    op.create_table(
        "canary_probes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.BigInteger(), nullable=True),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("total_ms", sa.Double(), nullable=True),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("activity_upstream_id", sa.BigInteger(), nullable=True),
        sa.Column("activity_finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canary_probes")),
    )
    op.create_index("ix_canary_probes_model_time", "canary_probes", ["provider_id", "model_id", "sent_at"])
    op.create_index("ix_canary_probes_activity", "canary_probes", ["provider_id", "activity_upstream_id"],
                    postgresql_where=sa.text("activity_upstream_id IS NOT NULL"))
    op.create_table(
        "alert_states",
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("flapping", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("flips", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evaluated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("rule", "subject", name=op.f("pk_alert_states")),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("delivery", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("recorded_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index("ix_alert_events_at", "alert_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_alert_events_at", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_table("alert_states")
    op.drop_index("ix_canary_probes_activity", table_name="canary_probes")
    op.drop_index("ix_canary_probes_model_time", table_name="canary_probes")
    op.drop_table("canary_probes")
    op.drop_table("canary_cycles")
