"""evals: suites, items, runs, answers, sandbox outcomes, judgments, scores (see warehouse/schema_evals.py)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_suites",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("meta", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_suites")),
        sa.UniqueConstraint("name", "version", name="uq_eval_suites_name_version"),
    )
    op.create_table(
        "eval_items",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("suite_id", sa.BigInteger(), nullable=False),
        sa.Column("item_key", sa.Text(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["suite_id"],
            ["eval_suites.id"],
            name=op.f("fk_eval_items_suite_id_eval_suites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_items")),
        sa.UniqueConstraint("suite_id", "item_key", name="uq_eval_items_suite_key"),
    )
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_uid", sa.Text(), nullable=False),
        sa.Column("suite_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("config_key", sa.Text(), nullable=False),
        sa.Column("model_file", sa.Text(), nullable=True),
        sa.Column("server_version", sa.Text(), nullable=True),
        sa.Column("harness_version", sa.Text(), nullable=False),
        sa.Column("sampling", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("samples_per_item", sa.Integer(), nullable=False),
        sa.Column("judge", sa.Text(), nullable=True),
        sa.Column("item_keys", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.Column("params", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("host_kind", sa.Text(), nullable=True),
        sa.Column("server_props", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.Column("parallel", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("started_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("resumed_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("resumes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("finished_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("extra", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["suite_id"], ["eval_suites.id"], name=op.f("fk_eval_runs_suite_id_eval_suites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_runs")),
        sa.UniqueConstraint("run_uid", name=op.f("uq_eval_runs_run_uid")),
    )
    op.create_index("ix_eval_runs_config_key", "eval_runs", ["config_key"], unique=False)
    op.create_index(
        "ix_eval_runs_provider_model_time",
        "eval_runs",
        ["provider_id", "model_id", "started_at"],
        unique=False,
    )
    op.create_table(
        "eval_answers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("sample_idx", sa.SmallInteger(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("timings", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("answered_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.Column("scored_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["eval_items.id"], name=op.f("fk_eval_answers_item_id_eval_items")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["eval_runs.id"], name=op.f("fk_eval_answers_run_id_eval_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_answers")),
        sa.UniqueConstraint("run_id", "item_id", "sample_idx", name="uq_eval_answers_run_item_sample"),
    )
    op.create_table(
        "eval_scores",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("suite_name", sa.Text(), nullable=False),
        sa.Column("suite_version", sa.Text(), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("model_file", sa.Text(), nullable=True),
        sa.Column("server_version", sa.Text(), nullable=True),
        sa.Column("harness_version", sa.Text(), nullable=False),
        sa.Column("sampling", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("judge", sa.Text(), nullable=True),
        sa.Column(
            "computed_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("stale_reason", sa.Text(), nullable=True),
        sa.Column("stale_since", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["eval_runs.id"], name=op.f("fk_eval_scores_run_id_eval_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_scores")),
        sa.UniqueConstraint("run_id", "metric", name="uq_eval_scores_run_metric"),
    )
    op.create_index(
        "ix_eval_scores_provider_model",
        "eval_scores",
        ["provider_id", "model_id", "suite_name"],
        unique=False,
    )
    op.create_table(
        "eval_judgments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("answer_id", sa.BigInteger(), nullable=False),
        sa.Column("other_answer_id", sa.BigInteger(), nullable=True),
        sa.Column("swapped", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("judge_provider_id", sa.Text(), nullable=False),
        sa.Column("judge_model_id", sa.Text(), nullable=False),
        sa.Column("judge_model_file", sa.Text(), nullable=True),
        sa.Column("prompt_version", sa.Text(), nullable=False),
        sa.Column("sampling", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("parsed", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("self_judged", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "judged_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["eval_answers.id"],
            name=op.f("fk_eval_judgments_answer_id_eval_answers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["other_answer_id"],
            ["eval_answers.id"],
            name=op.f("fk_eval_judgments_other_answer_id_eval_answers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_judgments")),
    )
    op.create_table(
        "eval_sandbox_outcomes",
        sa.Column("answer_id", sa.BigInteger(), nullable=False),
        sa.Column("backend", sa.Text(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("signal", sa.Integer(), nullable=True),
        sa.Column("timed_out", sa.Boolean(), nullable=False),
        sa.Column("killed_reason", sa.Text(), nullable=True),
        sa.Column("stdout", sa.Text(), nullable=False),
        sa.Column("stderr", sa.Text(), nullable=False),
        sa.Column("stdout_truncated", sa.Boolean(), nullable=False),
        sa.Column("stderr_truncated", sa.Boolean(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["eval_answers.id"],
            name=op.f("fk_eval_sandbox_outcomes_answer_id_eval_answers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("answer_id", name=op.f("pk_eval_sandbox_outcomes")),
    )


def downgrade() -> None:
    op.drop_table("eval_sandbox_outcomes")
    op.drop_table("eval_judgments")
    op.drop_index("ix_eval_scores_provider_model", table_name="eval_scores")
    op.drop_table("eval_scores")
    op.drop_table("eval_answers")
    op.drop_index("ix_eval_runs_provider_model_time", table_name="eval_runs")
    op.drop_index("ix_eval_runs_config_key", table_name="eval_runs")
    op.drop_table("eval_runs")
    op.drop_table("eval_items")
    op.drop_table("eval_suites")
