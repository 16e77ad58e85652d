"""Read side of the eval tables (engines/evals) for the Evals page and the weekly digest.

Every function takes a ``Connection`` or an ``Engine`` and returns a typed polars DataFrame (an empty result
has the same columns) or plain dicts; SQL with bound parameters only.

**One number per run and suite** (`HEADLINE`): code → ``pass@1``, instruction following → ``prompt_strict``,
agentic → ``solved@N`` (N = the task's turn limit), utility → ``format_pass``, needle → ``accuracy``, chat →
``judge_score``. Each is a ratio of sums over the run's items, so it comes with a bootstrap 95 % interval over
items (`core.stats.ratio_interval`). An item's share (`unit_scores`): for chat the sum and the count of its
parsed turn ratings (an unparseable judgment counts for nothing, as in ``judge_score``), for needle the
fraction of codes found per answer, otherwise its answers that passed and how many answers it has (with
several samples per item, pass@1 = Σ passed / Σ samples). Only scored answers without a request error count,
as in the engine's metrics, so the estimate equals the stored score.

**Simulated hosts** (the demo fleet, `warehouse.queries.fleet.simulated_providers`) are flagged in every
frame that names a provider (``simulated``): their answers come from a simulator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import text

from core.stats import ratio_interval
from warehouse.queries._frames import UTC_TS, Db, connected, frame
from warehouse.queries.fleet import simulated_providers

HEADLINE: dict[str, str] = {
    "code": "pass@1",
    "instructions": "prompt_strict",
    "agentic": "solved@N",  # the run's turn limit: solved@3
    "utility": "format_pass",
    "needle": "accuracy",
    "chat": "judge_score",
}
"""The leaderboard metric of each suite kind (``eval_suites.kind``)."""

_SOLVED = re.compile(r"^solved@(\d+)$")


def headline_metric(kind: str, metrics: Sequence[str]) -> str | None:
    """The headline among a run's stored metric names (None when the run has none of it)."""
    if kind == "agentic":
        ks = [int(m.group(1)) for x in metrics if (m := _SOLVED.match(x)) and m.group(1) != "1"]
        return f"solved@{max(ks)}" if ks else None
    name = HEADLINE.get(kind)
    return name if name in metrics else None


def model_label(provider_id: str, model_id: str, simulated: bool) -> str:
    return f"{provider_id}/{model_id}" + (" (simulated)" if simulated else "")


# --------------------------------------------------------------------------------------------- runs

RUN_SCHEMA: dict[str, Any] = {
    "run_id": pl.Int64,
    "suite": pl.Utf8,
    "suite_kind": pl.Utf8,
    "suite_version": pl.Utf8,
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "status": pl.Utf8,
    "started_at": UTC_TS,
    "finished_at": UTC_TS,
    "samples_per_item": pl.Int64,
    "judge": pl.Utf8,
    "model_file": pl.Utf8,
    "answers": pl.Int64,
    "stop_reason": pl.Utf8,
    "simulated": pl.Boolean,
    "label": pl.Utf8,
}

_RUNS_SQL = text(
    """
    SELECT r.id AS run_id, s.name AS suite, s.kind AS suite_kind, s.version AS suite_version, r.provider_id,
           r.model_id, r.status, r.started_at, r.finished_at, r.samples_per_item, r.judge,
           regexp_replace(r.model_file, '^.*/', '') AS model_file,
           (SELECT count(*) FROM eval_answers a WHERE a.run_id = r.id) AS answers, r.stop_reason
    FROM eval_runs r JOIN eval_suites s ON s.id = r.suite_id
    WHERE (CAST(:suite AS text) IS NULL OR s.name = :suite)
    ORDER BY r.started_at DESC, r.id DESC
    LIMIT :limit
    """
)


def _with_labels(db: Db, df: pl.DataFrame) -> pl.DataFrame:
    sim = set(simulated_providers(db))
    flags = [p in sim for p in df["provider_id"].to_list()]
    labels = [model_label(p, m, f) for p, m, f in zip(df["provider_id"], df["model_id"], flags, strict=True)]
    return df.with_columns(pl.Series("simulated", flags, pl.Boolean), pl.Series("label", labels, pl.Utf8))


def list_runs(db: Db, suite: str | None = None, limit: int = 500) -> pl.DataFrame:
    """Eval runs, newest first (optionally of one suite name), with the answers stored so far."""
    base = {k: v for k, v in RUN_SCHEMA.items() if k not in ("simulated", "label")}
    with connected(db) as conn:
        df = frame(conn, _RUNS_SQL, {"suite": suite, "limit": limit}, base)
        return _with_labels(conn, df)


def suites(db: Db) -> list[str]:
    """Suite names with at least one completed run, in the engine's order of importance first."""
    order = ("humaneval", "ifeval", "chat", "agentic", "utility", "needle")
    with connected(db) as conn:
        names = [str(r[0]) for r in conn.execute(text(
            "SELECT DISTINCT s.name FROM eval_runs r JOIN eval_suites s ON s.id = r.suite_id "
            "WHERE r.status = 'completed'"))]  # fmt: skip
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


# ------------------------------------------------------------------------------------- item units

UNIT_SCHEMA: dict[str, Any] = {
    "run_id": pl.Int64,
    "item_id": pl.Int64,
    "item_key": pl.Utf8,
    "category": pl.Utf8,
    "idx": pl.Int64,
    "s": pl.Float64,
    "c": pl.Float64,
}

_UNITS_SQL = text(
    """
    WITH jj AS (
        SELECT j.answer_id, sum(j.score) AS s, count(*) AS c
        FROM eval_judgments j JOIN eval_answers a ON a.id = j.answer_id
        WHERE j.other_answer_id IS NULL AND j.parsed AND j.score IS NOT NULL AND a.run_id = ANY(:ids)
        GROUP BY j.answer_id
    )
    SELECT a.run_id, a.item_id, i.item_key, i.category, i.idx,
           sum(CASE WHEN su.kind = 'chat' THEN coalesce(jj.s, 0)
                    WHEN su.kind = 'needle' THEN coalesce(a.score, 0)
                    ELSE CASE WHEN a.passed THEN 1 ELSE 0 END END) AS s,
           sum(CASE WHEN su.kind = 'chat' THEN coalesce(jj.c, 0) ELSE 1 END) AS c
    FROM eval_answers a
    JOIN eval_runs r ON r.id = a.run_id
    JOIN eval_suites su ON su.id = r.suite_id
    JOIN eval_items i ON i.id = a.item_id
    LEFT JOIN jj ON jj.answer_id = a.id
    WHERE a.run_id = ANY(:ids) AND a.error IS NULL AND a.scored_at IS NOT NULL
    GROUP BY a.run_id, a.item_id, i.item_key, i.category, i.idx
    ORDER BY a.run_id, i.idx
    """
)


def unit_scores(db: Db, run_ids: Sequence[int]) -> pl.DataFrame:
    """Per run and item: the item's share of the headline score, ``s`` / ``c`` (see the module docstring)."""
    return frame(db, _UNITS_SQL, {"ids": [int(i) for i in run_ids]}, UNIT_SCHEMA)


def interval(units: pl.DataFrame, n_boot: int = 2000, seed: int = 20261202) -> tuple[float, float, float] | None:
    """(estimate, low, high) of one run's units (bootstrap 95 % over items)."""
    return ratio_interval(units["s"].to_list(), units["c"].to_list(), n_boot=n_boot, seed=seed)


# ------------------------------------------------------------------------------------- leaderboard

LEADER_SCHEMA: dict[str, Any] = {
    "rank": pl.Int64,
    "label": pl.Utf8,
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "simulated": pl.Boolean,
    "run_id": pl.Int64,
    "suite": pl.Utf8,
    "suite_version": pl.Utf8,
    "finished_at": UTC_TS,
    "metric": pl.Utf8,
    "score": pl.Float64,
    "low": pl.Float64,
    "high": pl.Float64,
    "items": pl.Int64,
    "stale": pl.Boolean,
    "stale_reason": pl.Utf8,
    "stale_since": UTC_TS,
    "model_file": pl.Utf8,
    "judge": pl.Utf8,
}

_NEWEST_SQL = text(
    """
    SELECT DISTINCT ON (r.provider_id, r.model_id)
           r.id AS run_id, r.provider_id, r.model_id, s.name AS suite, s.kind, s.version AS suite_version,
           r.finished_at, regexp_replace(r.model_file, '^.*/', '') AS model_file, r.judge
    FROM eval_runs r JOIN eval_suites s ON s.id = r.suite_id
    WHERE s.name = :suite AND r.status = 'completed'
    ORDER BY r.provider_id, r.model_id, r.finished_at DESC NULLS LAST, r.id DESC
    """
)

_SCORES_SQL = text(
    """
    SELECT run_id, metric, value, n_items, stale_reason, stale_since
    FROM eval_scores WHERE run_id = ANY(:ids) ORDER BY run_id, metric
    """
)


def _scores_by_run(conn: Any, run_ids: Sequence[int]) -> dict[int, dict[str, dict[str, Any]]]:
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for r in conn.execute(_SCORES_SQL, {"ids": [int(i) for i in run_ids]}).mappings():
        out.setdefault(int(r["run_id"]), {})[str(r["metric"])] = dict(r)
    return out


def leaderboard(db: Db, suite: str, n_boot: int = 2000, seed: int = 20261202) -> pl.DataFrame:
    """The newest completed run of ``suite`` for every provider/model, best headline score first (ties by
    name), with its bootstrap 95 % interval over items and whether the stored score is stale (and why)."""
    rows: list[dict[str, Any]] = []
    with connected(db) as conn:
        runs = [dict(r) for r in conn.execute(_NEWEST_SQL, {"suite": suite}).mappings()]
        ids = [int(r["run_id"]) for r in runs]
        stored = _scores_by_run(conn, ids)
        units = unit_scores(conn, ids) if ids else pl.DataFrame(schema=UNIT_SCHEMA)
        sim = set(simulated_providers(conn))
    by_run = {int(k[0]): part for k, part in units.partition_by("run_id", as_dict=True).items()} if units.height else {}
    for r in runs:
        rid = int(r["run_id"])
        metrics = stored.get(rid, {})
        name = headline_metric(str(r["kind"]), list(metrics))
        mine = by_run.get(rid, units.clear())
        est = interval(mine, n_boot, seed)
        score_row = metrics.get(name) if name else None
        if est is None and score_row is None:
            continue
        score = float(score_row["value"]) if score_row is not None else (est[0] if est else None)
        simulated = str(r["provider_id"]) in sim
        rows.append({
            "label": model_label(str(r["provider_id"]), str(r["model_id"]), simulated),
            "provider_id": r["provider_id"], "model_id": r["model_id"], "simulated": simulated, "run_id": rid,
            "suite": r["suite"], "suite_version": r["suite_version"], "finished_at": r["finished_at"],
            "metric": name or HEADLINE.get(str(r["kind"]), "score"), "score": score,
            "low": est[1] if est else None, "high": est[2] if est else None,
            "items": int((mine["c"] > 0).sum()),
            "stale": bool(score_row and score_row["stale_reason"]),
            "stale_reason": score_row["stale_reason"] if score_row else None,
            "stale_since": score_row["stale_since"] if score_row else None,
            "model_file": r["model_file"], "judge": r["judge"],
        })  # fmt: skip
    rows.sort(key=lambda x: (-(x["score"] if x["score"] is not None else float("-inf")), x["label"]))
    for i, x in enumerate(rows, 1):
        x["rank"] = i
    return pl.DataFrame(rows, schema=LEADER_SCHEMA, strict=False)


CATEGORY_SCHEMA: dict[str, Any] = {"run_id": pl.Int64, "category": pl.Utf8, "score": pl.Float64, "items": pl.Int64}


def category_scores(db: Db, run_ids: Sequence[int]) -> pl.DataFrame:
    """Per run and item category: the headline score over that category's items (the radar)."""
    units = unit_scores(db, run_ids).filter(pl.col("c") > 0)
    if units.height == 0:
        return pl.DataFrame(schema=CATEGORY_SCHEMA)
    return (
        units.with_columns(pl.col("category").fill_null("(none)"))
        .group_by("run_id", "category")
        .agg((pl.col("s").sum() / pl.col("c").sum()).alias("score"), pl.len().cast(pl.Int64).alias("items"))
        .sort("run_id", "category")
        .select(list(CATEGORY_SCHEMA))
    )


# ---------------------------------------------------------------------------------- quality vs speed

_SPEED_SQL = text(
    """
    SELECT DISTINCT ON (r.provider_id, r.model_id)
           r.provider_id, r.model_id, r.id AS bench_run_id, p.level, p.mode, p.decode_tps_mean
    FROM bench_runs r JOIN bench_points p ON p.run_id = r.id
    WHERE r.status = 'completed' AND p.decode_tps_mean IS NOT NULL
    ORDER BY r.provider_id, r.model_id, r.started_at DESC, r.id DESC, (p.mode <> 'concurrency'), p.level
    """
)

SPEED_SCHEMA: dict[str, Any] = {
    **LEADER_SCHEMA,
    "bench_run_id": pl.Int64,
    "gen_tps": pl.Float64,
    "pareto": pl.Boolean,
}


def pareto_flags(xs: Sequence[float], ys: Sequence[float]) -> list[bool]:
    """Points no other point matches or beats on both (higher is better on both axes)."""
    pts = list(zip(xs, ys, strict=True))
    return [
        not any(ox >= x and oy >= y and (ox > x or oy > y) for ox, oy in pts)
        for x, y in pts
    ]


def quality_vs_speed(db: Db, suite: str, board: pl.DataFrame | None = None) -> pl.DataFrame:
    """The leaderboard of ``suite`` joined with each model's generation speed: the mean per-request decode
    tok/s of the lowest-concurrency point of its newest completed benchmark run (single stream where the
    sweep has it). Models without a benchmark run have ``gen_tps`` null and are never on the Pareto front.
    ``board``: the suite's `leaderboard` when the caller has it already."""
    board = leaderboard(db, suite) if board is None else board
    with connected(db) as conn:
        speed = {(str(r["provider_id"]), str(r["model_id"])): r for r in conn.execute(_SPEED_SQL).mappings()}
    rows = board.to_dicts()
    for r in rows:
        s = speed.get((r["provider_id"], r["model_id"]))
        r["bench_run_id"] = int(s["bench_run_id"]) if s else None
        r["gen_tps"] = float(s["decode_tps_mean"]) if s else None
    have = [r for r in rows if r["gen_tps"] is not None and r["score"] is not None]
    flags = pareto_flags([r["gen_tps"] for r in have], [r["score"] for r in have])
    on = {id(r) for r, f in zip(have, flags, strict=True) if f}
    for r in rows:
        r["pareto"] = id(r) in on
    return pl.DataFrame(rows, schema=SPEED_SCHEMA, strict=False)


# ------------------------------------------------------------------------------------------- needle

NEEDLE_SCHEMA: dict[str, Any] = {
    "run_id": pl.Int64,
    "item_key": pl.Utf8,
    "length_fraction": pl.Float64,
    "target_tokens": pl.Int64,
    "depth": pl.Float64,
    "found": pl.Int64,
    "asked": pl.Int64,
    "accuracy": pl.Float64,
}

_NEEDLE_SQL = text(
    """
    SELECT a.run_id, i.item_key,
           (a.detail->>'length_fraction')::double precision AS length_fraction,
           (a.detail->>'target_tokens')::bigint AS target_tokens,
           (a.detail->>'depth')::double precision AS depth,
           (a.detail->>'found')::bigint AS found, (a.detail->>'asked')::bigint AS asked, a.score AS accuracy
    FROM eval_answers a JOIN eval_items i ON i.id = a.item_id
    WHERE a.run_id = ANY(:ids) AND a.error IS NULL AND a.scored_at IS NOT NULL AND a.detail ? 'asked'
    ORDER BY a.run_id, length_fraction, depth NULLS LAST, i.idx
    """
)


def needle_cells(db: Db, run_ids: Sequence[int]) -> pl.DataFrame:
    """The needle answers of the runs: length (fraction of the window, target tokens), depth (null: the
    multi-needle cell), codes found of asked, accuracy (the mean over samples when a run has several)."""
    raw = frame(db, _NEEDLE_SQL, {"ids": [int(i) for i in run_ids]}, NEEDLE_SCHEMA)
    if raw.height == 0:
        return raw
    return (
        raw.group_by("run_id", "item_key", "length_fraction", "target_tokens", "depth", maintain_order=True)
        .agg(pl.col("found").sum(), pl.col("asked").sum(), pl.col("accuracy").mean())
        .select(list(NEEDLE_SCHEMA))
    )


# ------------------------------------------------------------------------------------ pairwise verdicts

PAIR_SCHEMA: dict[str, Any] = {
    "judgment_id": pl.Int64,
    "answer_id": pl.Int64,
    "other_answer_id": pl.Int64,
    "swapped": pl.Boolean,
    "raw": pl.Utf8,
    "parsed": pl.Boolean,
    "verdict": pl.Utf8,
    "judge": pl.Utf8,
    "prompt_version": pl.Utf8,
    "suite": pl.Utf8,
    "item_key": pl.Utf8,
    "provider_a": pl.Utf8,
    "model_a": pl.Utf8,
    "provider_b": pl.Utf8,
    "model_b": pl.Utf8,
}

_PAIR_SQL = text(
    """
    SELECT j.id AS judgment_id, j.answer_id, j.other_answer_id, j.swapped, j.raw, j.parsed, j.verdict,
           j.judge_provider_id || '/' || j.judge_model_id AS judge, j.prompt_version, s.name AS suite, i.item_key,
           ra.provider_id AS provider_a, ra.model_id AS model_a, rb.provider_id AS provider_b, rb.model_id AS model_b
    FROM eval_judgments j
    JOIN eval_answers a ON a.id = j.answer_id
    JOIN eval_answers b ON b.id = j.other_answer_id
    JOIN eval_runs ra ON ra.id = a.run_id
    JOIN eval_runs rb ON rb.id = b.run_id
    JOIN eval_suites s ON s.id = ra.suite_id
    JOIN eval_items i ON i.id = a.item_id
    WHERE j.other_answer_id IS NOT NULL
    ORDER BY j.id
    """
)


def pair_verdicts(db: Db) -> pl.DataFrame:
    """Every stored pairwise verdict (`engines.evals.pairwise`) with the two models it compared."""
    return frame(db, _PAIR_SQL, {}, PAIR_SCHEMA)


# -------------------------------------------------------------------------------------- drill-down

ITEM_SCHEMA: dict[str, Any] = {
    "answer_id": pl.Int64,
    "item_key": pl.Utf8,
    "category": pl.Utf8,
    "sample_idx": pl.Int64,
    "passed": pl.Boolean,
    "score": pl.Float64,
    "error": pl.Utf8,
    "completion_tokens": pl.Int64,
    "latency_ms": pl.Float64,
    "exit_code": pl.Int64,
    "killed_reason": pl.Utf8,
    "judgments": pl.Int64,
    "unparsed": pl.Int64,
}

_ITEMS_SQL = text(
    """
    SELECT a.id AS answer_id, i.item_key, i.category, a.sample_idx, a.passed, a.score, a.error,
           a.completion_tokens, a.latency_ms, o.exit_code, o.killed_reason,
           (SELECT count(*) FROM eval_judgments j WHERE j.answer_id = a.id AND j.other_answer_id IS NULL)
               AS judgments,
           (SELECT count(*) FROM eval_judgments j
             WHERE j.answer_id = a.id AND j.other_answer_id IS NULL AND NOT j.parsed) AS unparsed
    FROM eval_answers a JOIN eval_items i ON i.id = a.item_id
    LEFT JOIN eval_sandbox_outcomes o ON o.answer_id = a.id
    WHERE a.run_id = :run_id
    ORDER BY i.idx, a.sample_idx
    """
)


def run_items(db: Db, run_id: int) -> pl.DataFrame:
    """Every answer of one run: item, verdict, sandbox exit, judgments (and how many did not parse)."""
    return frame(db, _ITEMS_SQL, {"run_id": int(run_id)}, ITEM_SCHEMA)


_ANSWER_SQL = text(
    """
    SELECT a.id AS answer_id, a.run_id, a.sample_idx, a.seed, a.text, a.finish_reason, a.prompt_tokens,
           a.completion_tokens, a.latency_ms, a.error, a.passed, a.score, a.detail, a.answered_at, a.scored_at,
           i.item_key, i.category, i.payload, r.provider_id, r.model_id, s.name AS suite
    FROM eval_answers a JOIN eval_items i ON i.id = a.item_id
    JOIN eval_runs r ON r.id = a.run_id JOIN eval_suites s ON s.id = r.suite_id
    WHERE a.id = :id
    """
)

_JUDGMENTS_SQL = text(
    """
    SELECT j.id, j.judge_provider_id || '/' || j.judge_model_id AS judge, j.prompt_version, j.raw, j.parsed,
           j.verdict, j.score, j.self_judged, j.swapped, j.other_answer_id, j.judged_at
    FROM eval_judgments j WHERE j.answer_id = :id ORDER BY j.id
    """
)

_SANDBOX_SQL = text("SELECT * FROM eval_sandbox_outcomes WHERE answer_id = :id")


def answer_detail(db: Db, answer_id: int) -> dict[str, Any] | None:
    """One answer whole: the item's prompt (``payload``), the answer text, the verdict ``detail``, its
    judgments (raw judge text, parsed flag, verdict, score) and its sandbox outcome (exit, stdout, stderr)."""
    with connected(db) as conn:
        row = conn.execute(_ANSWER_SQL, {"id": int(answer_id)}).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["judgments"] = [dict(j) for j in conn.execute(_JUDGMENTS_SQL, {"id": int(answer_id)}).mappings()]
        box = conn.execute(_SANDBOX_SQL, {"id": int(answer_id)}).mappings().first()
        out["sandbox"] = dict(box) if box is not None else None
    return out


# ------------------------------------------------------------------------------------ run vs run

COMPARE_SCHEMA: dict[str, Any] = {
    "item_key": pl.Utf8,
    "category": pl.Utf8,
    "sample_idx": pl.Int64,
    "passed_a": pl.Boolean,
    "passed_b": pl.Boolean,
    "score_a": pl.Float64,
    "score_b": pl.Float64,
    "delta": pl.Float64,
    "change": pl.Utf8,
    "answer_a": pl.Int64,
    "answer_b": pl.Int64,
}

_COMPARE_SQL = text(
    """
    WITH a AS (
        SELECT i.item_key, i.category, i.idx, x.sample_idx, x.passed, x.score, x.error, x.id
        FROM eval_answers x JOIN eval_items i ON i.id = x.item_id WHERE x.run_id = :a
    ), b AS (
        SELECT i.item_key, i.category, i.idx, x.sample_idx, x.passed, x.score, x.error, x.id
        FROM eval_answers x JOIN eval_items i ON i.id = x.item_id WHERE x.run_id = :b
    )
    SELECT coalesce(a.item_key, b.item_key) AS item_key, coalesce(a.category, b.category) AS category,
           coalesce(a.sample_idx, b.sample_idx) AS sample_idx,
           CASE WHEN a.error IS NULL THEN a.passed END AS passed_a,
           CASE WHEN b.error IS NULL THEN b.passed END AS passed_b,
           CASE WHEN a.error IS NULL THEN a.score END AS score_a,
           CASE WHEN b.error IS NULL THEN b.score END AS score_b,
           a.id AS answer_a, b.id AS answer_b, a.error AS error_a, b.error AS error_b,
           coalesce(a.idx, b.idx) AS idx
    FROM a FULL OUTER JOIN b ON a.item_key = b.item_key AND a.sample_idx = b.sample_idx
    ORDER BY coalesce(a.idx, b.idx), coalesce(a.sample_idx, b.sample_idx)
    """
)

CHANGE_ORDER = ("regressed", "lower score", "only in A", "only in B", "fixed", "higher score", "same")


def _change(r: Mapping[str, Any]) -> str:
    if r["answer_a"] is None:
        return "only in B"
    if r["answer_b"] is None:
        return "only in A"
    pa, pb = r["passed_a"], r["passed_b"]
    if pa is not None or pb is not None:  # pass/fail suites; a failed request counts as failed
        if pa and not pb:
            return "regressed"
        if pb and not pa:
            return "fixed"
    sa, sb = r["score_a"], r["score_b"]
    if sa is not None and sb is not None and sa != sb:
        return "lower score" if sb < sa else "higher score"
    if (sa is None) != (sb is None):
        return "lower score" if sb is None else "higher score"
    return "same"


def compare_runs(db: Db, run_a: int, run_b: int) -> pl.DataFrame:
    """Two runs item by item (matched by item key and sample): ``change`` is ``regressed`` (passed in A,
    failed in B — a request error counts as failed), ``fixed``, ``lower score`` / ``higher score`` (judged or
    partly scored items, or the same verdict with another score), ``same``, ``only in A`` / ``only in B``;
    ``delta`` = score B − score A. Regressions first, then by item order."""
    with connected(db) as conn:
        rows = [dict(r) for r in conn.execute(_COMPARE_SQL, {"a": int(run_a), "b": int(run_b)}).mappings()]
    for r in rows:
        r["change"] = _change(r)
        r["delta"] = (r["score_b"] - r["score_a"]) if r["score_a"] is not None and r["score_b"] is not None else None
    rows.sort(key=lambda r: (CHANGE_ORDER.index(r["change"]), r["idx"], r["sample_idx"]))
    return pl.DataFrame([{k: r[k] for k in COMPARE_SCHEMA} for r in rows], schema=COMPARE_SCHEMA, strict=False)


# ------------------------------------------------------------------------------------------ digest

DIGEST_SCHEMA: dict[str, Any] = {
    "run_id": pl.Int64,
    "suite": pl.Utf8,
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "simulated": pl.Boolean,
    "finished_at": UTC_TS,
    "metric": pl.Utf8,
    "value": pl.Float64,
    "prev_run_id": pl.Int64,
    "prev_value": pl.Float64,
    "delta": pl.Float64,
    "items_regressed": pl.Int64,
    "stale_reason": pl.Utf8,
}

_PERIOD_RUNS_SQL = text(
    """
    SELECT r.id AS run_id, s.name AS suite, s.kind, r.provider_id, r.model_id, r.finished_at,
           (SELECT p.id FROM eval_runs p JOIN eval_suites ps ON ps.id = p.suite_id
             WHERE ps.name = s.name AND p.provider_id = r.provider_id AND p.model_id = r.model_id
               AND p.status = 'completed' AND (p.finished_at, p.id) < (r.finished_at, r.id)
             ORDER BY p.finished_at DESC, p.id DESC LIMIT 1) AS prev_run_id
    FROM eval_runs r JOIN eval_suites s ON s.id = r.suite_id
    WHERE r.status = 'completed' AND r.finished_at >= :start AND r.finished_at < :end
    ORDER BY s.name, r.provider_id, r.model_id, r.finished_at, r.id
    """
)

_OUTCOMES_SQL = text(
    """
    SELECT a.run_id, i.item_key, a.sample_idx, coalesce(a.passed AND a.error IS NULL, false) AS ok
    FROM eval_answers a JOIN eval_items i ON i.id = a.item_id
    WHERE a.run_id = ANY(:ids)
    """
)


def _items_regressed(outcomes: Mapping[int, Mapping[tuple[str, int], bool]], before: int, after: int) -> int:
    """Items (and samples) that passed in run ``before`` and are answered but not passed in run ``after``."""
    now = outcomes.get(after, {})
    return sum(1 for k, ok in outcomes.get(before, {}).items() if ok and k in now and not now[k])


def period_scores(db: Db, start: datetime, end: datetime) -> pl.DataFrame:
    """Headline scores of the runs completed in ``[start, end)``, each against the previous completed run of
    the same suite and provider/model (``delta`` = this − previous; ``items_regressed``: items that passed in
    the previous run and fail in this one)."""
    rows: list[dict[str, Any]] = []
    with connected(db) as conn:
        runs = [dict(r) for r in conn.execute(_PERIOD_RUNS_SQL, {"start": start, "end": end}).mappings()]
        ids = [int(r["run_id"]) for r in runs] + [int(r["prev_run_id"]) for r in runs if r["prev_run_id"]]
        stored = _scores_by_run(conn, ids)
        sim = set(simulated_providers(conn))
        outcomes: dict[int, dict[tuple[str, int], bool]] = {}
        for o in conn.execute(_OUTCOMES_SQL, {"ids": ids}).mappings():
            outcomes.setdefault(int(o["run_id"]), {})[(str(o["item_key"]), int(o["sample_idx"]))] = bool(o["ok"])
        for r in runs:
            metrics = stored.get(int(r["run_id"]), {})
            name = headline_metric(str(r["kind"]), list(metrics))
            if name is None:
                continue
            prev_id = int(r["prev_run_id"]) if r["prev_run_id"] else None
            prev = stored.get(prev_id, {}).get(name) if prev_id else None
            regressed = _items_regressed(outcomes, prev_id, int(r["run_id"])) if prev_id else None
            value = float(metrics[name]["value"])
            rows.append({
                "run_id": int(r["run_id"]), "suite": r["suite"], "provider_id": r["provider_id"],
                "model_id": r["model_id"], "simulated": str(r["provider_id"]) in sim,
                "finished_at": r["finished_at"], "metric": name, "value": value, "prev_run_id": prev_id,
                "prev_value": float(prev["value"]) if prev else None,
                "delta": value - float(prev["value"]) if prev else None, "items_regressed": regressed,
                "stale_reason": metrics[name]["stale_reason"],
            })  # fmt: skip
    return pl.DataFrame(rows, schema=DIGEST_SCHEMA, strict=False)


STALE_SCHEMA: dict[str, Any] = {
    "suite": pl.Utf8,
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "simulated": pl.Boolean,
    "run_id": pl.Int64,
    "metric": pl.Utf8,
    "value": pl.Float64,
    "stale_reason": pl.Utf8,
    "stale_since": UTC_TS,
}

_STALE_SQL = text(
    """
    SELECT DISTINCT ON (s.name, r.provider_id, r.model_id)
           s.name AS suite, s.kind, r.provider_id, r.model_id, r.id AS run_id
    FROM eval_runs r JOIN eval_suites s ON s.id = r.suite_id
    WHERE r.status = 'completed' AND (CAST(:until AS timestamptz) IS NULL OR r.finished_at < :until)
    ORDER BY s.name, r.provider_id, r.model_id, r.finished_at DESC NULLS LAST, r.id DESC
    """
)


def stale_headlines(db: Db, until: datetime | None = None) -> pl.DataFrame:
    """Each provider/model's newest headline score per suite that is marked stale (the model file, server,
    harness, suite version, sampling or judge it was computed under changed since), with the reason; with
    ``until``, as it stood then (runs finished and marks set before it)."""
    rows: list[dict[str, Any]] = []
    with connected(db) as conn:
        runs = [dict(r) for r in conn.execute(_STALE_SQL, {"until": until}).mappings()]
        stored = _scores_by_run(conn, [int(r["run_id"]) for r in runs])
        sim = set(simulated_providers(conn))
    for r in runs:
        metrics = stored.get(int(r["run_id"]), {})
        name = headline_metric(str(r["kind"]), list(metrics))
        if name is None or not metrics[name]["stale_reason"]:
            continue
        if until is not None and metrics[name]["stale_since"] is not None and metrics[name]["stale_since"] >= until:
            continue  # marked stale only after ``until``
        m = metrics[name]
        rows.append({"suite": r["suite"], "provider_id": r["provider_id"], "model_id": r["model_id"],
                     "simulated": str(r["provider_id"]) in sim, "run_id": int(r["run_id"]), "metric": name,
                     "value": float(m["value"]), "stale_reason": m["stale_reason"],
                     "stale_since": m["stale_since"]})  # fmt: skip
    return pl.DataFrame(rows, schema=STALE_SCHEMA, strict=False)
