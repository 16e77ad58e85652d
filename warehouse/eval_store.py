"""Reads and writes of the eval engine (engines/evals). Plain rows in, ids and rows out; SQLAlchemy Core with
bound parameters only. Every function takes an open ``Connection``; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, cast, delete, desc, func, insert, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from warehouse.schema_evals import (
    eval_answers,
    eval_items,
    eval_judge_calibrations,
    eval_judgments,
    eval_runs,
    eval_sandbox_outcomes,
    eval_scores,
    eval_suites,
)

UNFINISHED = ("running", "cancelled", "failed")


class UnknownEvalRun(LookupError):
    pass


def ensure_suite(
    conn: Connection, name: str, version: str, kind: str, items: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any] | None = None,
) -> tuple[int, dict[str, int]]:
    """The suite row of (name, version) and its items (``key``, ``idx``, ``category``, ``payload``), created
    if missing; returns (suite id, {item key: item id}) for ``items``."""
    conn.execute(
        pg_insert(eval_suites)
        .values(name=name, version=version, kind=kind, n_items=len(items), meta=dict(meta or {}))
        .on_conflict_do_nothing(constraint="uq_eval_suites_name_version")
    )
    suite_id = int(
        conn.execute(
            select(eval_suites.c.id).where(eval_suites.c.name == name, eval_suites.c.version == version)
        ).scalar_one()
    )
    if items:
        conn.execute(
            pg_insert(eval_items)
            .values([{"suite_id": suite_id, "item_key": i["key"], "idx": i["idx"], "category": i.get("category"),
                      "payload": dict(i["payload"])} for i in items])
            .on_conflict_do_nothing(constraint="uq_eval_items_suite_key")
        )  # fmt: skip
    keys = [str(i["key"]) for i in items]
    rows = conn.execute(
        select(eval_items.c.item_key, eval_items.c.id).where(
            eval_items.c.suite_id == suite_id, eval_items.c.item_key.in_(keys)
        )
    ).all()
    return suite_id, {str(k): int(v) for k, v in rows}


def find_resumable(conn: Connection, config_key: str) -> dict[str, Any] | None:
    """The newest unfinished run (``running``, ``cancelled``, ``failed``) with this config key, if any."""
    row = conn.execute(
        select(eval_runs)
        .where(eval_runs.c.config_key == config_key, eval_runs.c.status.in_(UNFINISHED))
        .order_by(desc(eval_runs.c.id))
        .limit(1)
    ).mappings().first()
    return dict(row) if row else None


def get_run(conn: Connection, run_id: int) -> dict[str, Any]:
    row = conn.execute(select(eval_runs).where(eval_runs.c.id == run_id)).mappings().first()
    if row is None:
        raise UnknownEvalRun(f"no eval run #{run_id}")
    return dict(row)


def insert_run(conn: Connection, row: Mapping[str, Any]) -> int:
    return int(conn.execute(insert(eval_runs).values(**row).returning(eval_runs.c.id)).scalar_one())


def update_run(conn: Connection, run_id: int, fields: Mapping[str, Any]) -> None:
    conn.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(**fields))


def finish_run(conn: Connection, run_id: int, fields: Mapping[str, Any], extra: Mapping[str, Any]) -> None:
    """Close the run (status, times, reason) and merge ``extra`` into its ``extra`` object."""
    merged = func.coalesce(eval_runs.c.extra, cast({}, JSONB)).op("||")(cast(dict(extra), JSONB))
    conn.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(**fields, extra=merged))


def merge_extra(conn: Connection, run_id: int, extra: Mapping[str, Any]) -> None:
    finish_run(conn, run_id, {}, extra)


def drop_answers(conn: Connection, answer_ids: Sequence[int]) -> None:
    """Forget answers (failed requests, asked again by the resumed run); their sandbox rows go with them."""
    if answer_ids:
        conn.execute(delete(eval_answers).where(eval_answers.c.id.in_(list(answer_ids))))


def mark_resumed(conn: Connection, run_id: int, at: datetime, fields: Mapping[str, Any]) -> None:
    conn.execute(
        update(eval_runs)
        .where(eval_runs.c.id == run_id)
        .values(status="running", resumed_at=at, resumes=eval_runs.c.resumes + 1, finished_at=None,
                stop_reason=None, error=None, **fields)
    )  # fmt: skip


def stored_answers(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """Every stored answer of the run: ids, item, sample, text, error and its verdict (``scored_at`` NULL: not
    scored yet)."""
    rows = conn.execute(
        select(
            eval_answers.c.id, eval_answers.c.item_id, eval_answers.c.sample_idx, eval_answers.c.text,
            eval_answers.c.error, eval_answers.c.passed, eval_answers.c.score, eval_answers.c.detail,
            eval_answers.c.scored_at,
        ).where(eval_answers.c.run_id == run_id)
    ).mappings().all()  # fmt: skip
    return [dict(r) for r in rows]


def insert_answer(conn: Connection, row: Mapping[str, Any]) -> int | None:
    """Store one answer; None when that (run, item, sample) already has one (a replay)."""
    rid = conn.execute(
        pg_insert(eval_answers)
        .values(**row)
        .on_conflict_do_nothing(constraint="uq_eval_answers_run_item_sample")
        .returning(eval_answers.c.id)
    ).scalar()
    return None if rid is None else int(rid)


def record_verdict(
    conn: Connection, answer_id: int, passed: bool, score: float, detail: Mapping[str, Any] | None,
    sandbox: Mapping[str, Any] | None = None,
) -> None:
    """The answer's verdict, and the sandbox outcome it came from (replacing an earlier one)."""
    conn.execute(
        update(eval_answers)
        .where(eval_answers.c.id == answer_id)
        .values(passed=passed, score=score, detail=dict(detail) if detail is not None else None,
                scored_at=func.now())
    )  # fmt: skip
    if sandbox is not None:
        stmt = pg_insert(eval_sandbox_outcomes).values(answer_id=answer_id, **sandbox)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[eval_sandbox_outcomes.c.answer_id],
                set_={k: stmt.excluded[k] for k in sandbox},
            )
        )


def write_scores(conn: Connection, run_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or replace the run's scores (one row per metric)."""
    for r in rows:
        stmt = pg_insert(eval_scores).values(run_id=run_id, **r)
        conn.execute(
            stmt.on_conflict_do_update(
                constraint="uq_eval_scores_run_metric",
                set_={**{k: stmt.excluded[k] for k in r}, "computed_at": func.now(), "stale_reason": None,
                      "stale_since": None},
            )
        )  # fmt: skip


def fresh_scores(conn: Connection, provider_id: str, model_id: str) -> list[dict[str, Any]]:
    """The provider/model's scores not marked stale, with the identity each was computed under."""
    rows = conn.execute(
        select(eval_scores).where(
            eval_scores.c.provider_id == provider_id,
            eval_scores.c.model_id == model_id,
            eval_scores.c.stale_reason.is_(None),
        ).order_by(eval_scores.c.id)
    ).mappings().all()
    return [dict(r) for r in rows]


def set_stale(conn: Connection, marks: Sequence[tuple[int, str]]) -> int:
    """Mark scores stale: [(score id, reason)]; returns how many were marked (already-stale ones are kept)."""
    n = 0
    for score_id, reason in marks:
        n += conn.execute(
            update(eval_scores)
            .where(eval_scores.c.id == score_id, eval_scores.c.stale_reason.is_(None))
            .values(stale_reason=reason, stale_since=func.now())
        ).rowcount
    return n


def scores(
    conn: Connection, provider_id: str | None = None, model_id: str | None = None, suite: str | None = None,
    include_stale: bool = True,
) -> list[dict[str, Any]]:
    conds = []
    if provider_id is not None:
        conds.append(eval_scores.c.provider_id == provider_id)
    if model_id is not None:
        conds.append(eval_scores.c.model_id == model_id)
    if suite is not None:
        conds.append(eval_scores.c.suite_name == suite)
    if not include_stale:
        conds.append(eval_scores.c.stale_reason.is_(None))
    q = select(eval_scores).order_by(eval_scores.c.run_id, eval_scores.c.metric)
    if conds:
        q = q.where(and_(*conds))
    return [dict(r) for r in conn.execute(q).mappings().all()]


def list_runs(conn: Connection, provider_id: str | None = None, model_id: str | None = None,
              limit: int = 50) -> list[dict[str, Any]]:
    answered = (
        select(func.count()).select_from(eval_answers).where(eval_answers.c.run_id == eval_runs.c.id)
        .scalar_subquery()
    )
    q = (
        select(eval_runs.c.id, eval_runs.c.provider_id, eval_runs.c.model_id, eval_runs.c.status,
               eval_runs.c.started_at, eval_runs.c.finished_at, eval_runs.c.samples_per_item,
               eval_runs.c.item_keys, eval_runs.c.resumes, eval_runs.c.stop_reason, eval_suites.c.name.label("suite"),
               eval_suites.c.version.label("suite_version"), answered.label("answers"))
        .join(eval_suites, eval_suites.c.id == eval_runs.c.suite_id)
        .order_by(desc(eval_runs.c.id))
        .limit(limit)
    )  # fmt: skip
    if provider_id is not None:
        q = q.where(eval_runs.c.provider_id == provider_id)
    if model_id is not None:
        q = q.where(eval_runs.c.model_id == model_id)
    return [dict(r) for r in conn.execute(q).mappings().all()]


def run_items(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """Per answer of the run: item key, category, sample, verdict, tokens, error and sandbox exit."""
    q = (
        select(eval_items.c.item_key, eval_items.c.category, eval_answers.c.sample_idx, eval_answers.c.passed,
               eval_answers.c.score, eval_answers.c.completion_tokens, eval_answers.c.latency_ms,
               eval_answers.c.error, eval_answers.c.detail, eval_sandbox_outcomes.c.exit_code,
               eval_sandbox_outcomes.c.killed_reason)
        .select_from(eval_answers.join(eval_items, eval_items.c.id == eval_answers.c.item_id)
                     .outerjoin(eval_sandbox_outcomes, eval_sandbox_outcomes.c.answer_id == eval_answers.c.id))
        .where(eval_answers.c.run_id == run_id)
        .order_by(eval_items.c.idx, eval_answers.c.sample_idx)
    )  # fmt: skip
    return [dict(r) for r in conn.execute(q).mappings().all()]


def record_judged(
    conn: Connection, answer_id: int, score: float | None, detail: Mapping[str, Any],
    judgments: Sequence[Mapping[str, Any]],
) -> None:
    """A judged answer: its judgments (replacing earlier ones of this answer) and its score (NULL when no
    judgment parsed: an unparseable judgment is never a score)."""
    conn.execute(delete(eval_judgments).where(eval_judgments.c.answer_id == answer_id,
                                              eval_judgments.c.other_answer_id.is_(None)))  # fmt: skip
    if judgments:
        conn.execute(insert(eval_judgments), [dict(j) for j in judgments])
    conn.execute(
        update(eval_answers)
        .where(eval_answers.c.id == answer_id)
        .values(passed=None, score=score, detail=dict(detail), scored_at=func.now())
    )


def run_judgments(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """The run's judgments with the item each judged answer belongs to."""
    rows = conn.execute(
        select(eval_answers.c.item_id, eval_answers.c.sample_idx, eval_judgments)
        .join(eval_answers, eval_answers.c.id == eval_judgments.c.answer_id)
        .where(eval_answers.c.run_id == run_id)
        .order_by(eval_judgments.c.id)
    ).mappings().all()
    return [dict(r) for r in rows]


def insert_calibration(conn: Connection, row: Mapping[str, Any]) -> int:
    """Store one judge calibration (`engines.evals.calibration`); returns its id."""
    return int(conn.execute(insert(eval_judge_calibrations).values(**row).returning(eval_judge_calibrations.c.id))
               .scalar_one())  # fmt: skip


def latest_calibration(conn: Connection, provider_id: str, model_id: str) -> dict[str, Any] | None:
    """The newest calibration of a judge model (None: never calibrated)."""
    row = conn.execute(
        select(eval_judge_calibrations)
        .where(eval_judge_calibrations.c.judge_provider_id == provider_id,
               eval_judge_calibrations.c.judge_model_id == model_id)
        .order_by(desc(eval_judge_calibrations.c.computed_at), desc(eval_judge_calibrations.c.id))
        .limit(1)
    ).mappings().first()  # fmt: skip
    return dict(row) if row is not None else None


def chat_answers(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """The run's first-sample answers with their item (key, category, payload) — what pairwise judging compares."""
    q = (
        select(eval_answers.c.id, eval_answers.c.text, eval_items.c.item_key, eval_items.c.category,
               eval_items.c.payload)
        .join(eval_items, eval_items.c.id == eval_answers.c.item_id)
        .where(eval_answers.c.run_id == run_id, eval_answers.c.sample_idx == 0, eval_answers.c.error.is_(None))
        .order_by(eval_items.c.idx)
    )  # fmt: skip
    return [dict(r) for r in conn.execute(q).mappings().all()]


def pair_judgments(conn: Connection, answer_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Pairwise judgments (``other_answer_id`` set) whose first answer is one of ``answer_ids``."""
    q = (
        select(eval_judgments)
        .where(eval_judgments.c.other_answer_id.is_not(None), eval_judgments.c.answer_id.in_(list(answer_ids)))
        .order_by(eval_judgments.c.id)
    )
    return [dict(r) for r in conn.execute(q).mappings().all()]


def insert_judgments(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(insert(eval_judgments), [dict(r) for r in rows])
