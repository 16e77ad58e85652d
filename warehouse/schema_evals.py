"""Eval tables (engines/evals): suites, items, runs, answers, sandbox outcomes, judgments, scores.

Storage design
--------------
* ``eval_suites``: one row per (suite name, content version). The version is a hash of the items and of the
  prompt template (`engines.evals.suites`), so a changed question set is a new version, never an edit.
* ``eval_items``: the suite's items as they were asked (prompt, tests or checks in ``payload``).
* ``eval_runs``: one row per run, inserted before the first request. It carries everything a score depends
  on: provider/model, the model file (llama-server ``/props`` ``model_path``, when the provider has one),
  the server version (llama-server ``build_info`` / llama-swap version), the harness version (our scoring
  code), the sampling parameters, samples per item and the judge (NULL without one). ``config_key`` hashes
  what must be equal for a killed run to be continued (`eval run` resumes the newest unfinished run with
  the same key). A row left in ``running`` means the process died: the next run continues it.
* ``eval_answers``: one row per (run, item, sample), written as soon as the answer arrives (text, tokens,
  timings), then updated with its verdict (``passed``/``score``/``detail``) once scored. A resumed run asks
  only for the (item, sample) pairs that have no row.
* ``eval_sandbox_outcomes``: what the sandbox said about one answer's code (exit, signal, kill reason,
  capped stdout/stderr).
* ``eval_judgments``: a judge's raw text and parsed verdict for one answer (or a pair, with the order it saw
  them in); an unparseable judgment has ``parsed = false`` and no score.
* ``eval_scores``: one row per (run, metric). It repeats the identity it was computed under, so a score
  stays readable on its own; ``stale_reason`` is set (`warehouse.eval_store.mark_stale`) when the model
  file, server version, harness version, suite version, sampling or judge it was computed under is no
  longer current.
* ``eval_judge_calibrations``: one row per calibration of a judge against human pairwise labels
  (`engines.evals.calibration`): counts, non-tie agreement and whether it was marked ``trusted`` (>= 80 %).
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
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

from warehouse.schema import metadata

TS = TIMESTAMP(timezone=True)

eval_suites = Table(
    "eval_suites",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("meta", JSONB),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    UniqueConstraint("name", "version", name="uq_eval_suites_name_version"),
)

eval_items = Table(
    "eval_items",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("suite_id", BigInteger, ForeignKey("eval_suites.id", ondelete="CASCADE"), nullable=False),
    Column("item_key", Text, nullable=False),
    Column("idx", Integer, nullable=False),
    Column("category", Text),
    Column("payload", JSONB, nullable=False),
    UniqueConstraint("suite_id", "item_key", name="uq_eval_items_suite_key"),
)

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("run_uid", Text, nullable=False, unique=True),
    Column("suite_id", BigInteger, ForeignKey("eval_suites.id"), nullable=False),
    Column("provider_id", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("config_key", Text, nullable=False),
    Column("model_file", Text),
    Column("server_version", Text),
    Column("harness_version", Text, nullable=False),
    Column("sampling", JSONB, nullable=False),
    Column("samples_per_item", Integer, nullable=False),
    Column("judge", Text),
    Column("item_keys", JSONB),
    Column("params", JSONB, nullable=False),
    Column("host_kind", Text),
    Column("server_props", JSONB),
    Column("parallel", Integer),
    Column("requested_by", Text),
    Column("started_at", TS, nullable=False),
    Column("resumed_at", TS),
    Column("resumes", Integer, nullable=False, server_default="0"),
    Column("finished_at", TS),
    Column("stop_reason", Text),
    Column("error", Text),
    Column("extra", JSONB),
)
Index("ix_eval_runs_provider_model_time", eval_runs.c.provider_id, eval_runs.c.model_id, eval_runs.c.started_at)
Index("ix_eval_runs_config_key", eval_runs.c.config_key)

eval_answers = Table(
    "eval_answers",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("item_id", BigInteger, ForeignKey("eval_items.id"), nullable=False),
    Column("sample_idx", SmallInteger, nullable=False),
    Column("seed", BigInteger),
    Column("text", Text),
    Column("finish_reason", Text),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("latency_ms", Double),
    Column("timings", JSONB),
    Column("error", Text),
    Column("answered_at", TS, nullable=False),
    Column("passed", Boolean),
    Column("score", Double),
    Column("detail", JSONB),
    Column("scored_at", TS),
    UniqueConstraint("run_id", "item_id", "sample_idx", name="uq_eval_answers_run_item_sample"),
)

eval_sandbox_outcomes = Table(
    "eval_sandbox_outcomes",
    metadata,
    Column("answer_id", BigInteger, ForeignKey("eval_answers.id", ondelete="CASCADE"), primary_key=True),
    Column("backend", Text, nullable=False),
    Column("exit_code", Integer),
    Column("signal", Integer),
    Column("timed_out", Boolean, nullable=False),
    Column("killed_reason", Text),
    Column("stdout", Text, nullable=False),
    Column("stderr", Text, nullable=False),
    Column("stdout_truncated", Boolean, nullable=False),
    Column("stderr_truncated", Boolean, nullable=False),
    Column("duration_s", Double, nullable=False),
)

eval_judgments = Table(
    "eval_judgments",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("answer_id", BigInteger, ForeignKey("eval_answers.id", ondelete="CASCADE"), nullable=False),
    Column("other_answer_id", BigInteger, ForeignKey("eval_answers.id", ondelete="CASCADE")),
    Column("swapped", Boolean, nullable=False, server_default="false"),
    Column("judge_provider_id", Text, nullable=False),
    Column("judge_model_id", Text, nullable=False),
    Column("judge_model_file", Text),
    Column("prompt_version", Text, nullable=False),
    Column("sampling", JSONB, nullable=False),
    Column("raw", Text),
    Column("parsed", Boolean, nullable=False),
    Column("verdict", Text),
    Column("score", Double),
    Column("self_judged", Boolean, nullable=False, server_default="false"),
    Column("judged_at", TS, nullable=False, server_default=func.now()),
)

eval_scores = Table(
    "eval_scores",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("metric", Text, nullable=False),
    Column("value", Double, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("suite_name", Text, nullable=False),
    Column("suite_version", Text, nullable=False),
    Column("provider_id", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("model_file", Text),
    Column("server_version", Text),
    Column("harness_version", Text, nullable=False),
    Column("sampling", JSONB, nullable=False),
    Column("judge", Text),
    Column("computed_at", TS, nullable=False, server_default=func.now()),
    Column("stale_reason", Text),
    Column("stale_since", TS),
    UniqueConstraint("run_id", "metric", name="uq_eval_scores_run_metric"),
)
Index("ix_eval_scores_provider_model", eval_scores.c.provider_id, eval_scores.c.model_id, eval_scores.c.suite_name)

eval_judge_calibrations = Table(
    "eval_judge_calibrations",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("judge_provider_id", Text, nullable=False),
    Column("judge_model_id", Text, nullable=False),
    Column("judge", Text, nullable=False),  # provider/model@prompt-version
    Column("prompt_version", Text, nullable=False),
    Column("sampling", JSONB, nullable=False),
    Column("labels_source", Text, nullable=False),
    Column("labels_sha256", Text, nullable=False),
    Column("pairs", Integer, nullable=False),
    Column("parsed", Integer, nullable=False),
    Column("non_tie", Integer, nullable=False),
    Column("agreed", Integer, nullable=False),
    Column("agreement", Double),
    Column("agreement_with_ties", Double),
    Column("inconsistent", Integer, nullable=False),
    Column("threshold", Double, nullable=False),
    Column("trusted", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("computed_at", TS, nullable=False, server_default=func.now()),
)
Index("ix_eval_judge_calibrations_judge", eval_judge_calibrations.c.judge_provider_id,
      eval_judge_calibrations.c.judge_model_id, eval_judge_calibrations.c.computed_at)  # fmt: skip
