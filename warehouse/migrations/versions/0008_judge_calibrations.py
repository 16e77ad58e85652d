"""evals: judge calibrations against human pairwise labels (see warehouse/schema_evals.py)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_judge_calibrations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("judge_provider_id", sa.Text(), nullable=False),
        sa.Column("judge_model_id", sa.Text(), nullable=False),
        sa.Column("judge", sa.Text(), nullable=False),
        sa.Column("prompt_version", sa.Text(), nullable=False),
        sa.Column("sampling", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("labels_source", sa.Text(), nullable=False),
        sa.Column("labels_sha256", sa.Text(), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("parsed", sa.Integer(), nullable=False),
        sa.Column("non_tie", sa.Integer(), nullable=False),
        sa.Column("agreed", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.Double(), nullable=True),
        sa.Column("agreement_with_ties", sa.Double(), nullable=True),
        sa.Column("inconsistent", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "computed_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_judge_calibrations")),
    )
    op.create_index(
        "ix_eval_judge_calibrations_judge",
        "eval_judge_calibrations",
        ["judge_provider_id", "judge_model_id", "computed_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_eval_judge_calibrations_judge", table_name="eval_judge_calibrations")
    op.drop_table("eval_judge_calibrations")
