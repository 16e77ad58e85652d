"""Read side of the benchmark tables for the Benchmarks page and the CLI (typed params in, DataFrame out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, connected, frame

RUN_SCHEMA: dict[str, Any] = {
    "run_id": pl.Int64,
    "run_uid": pl.Utf8,
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "status": pl.Utf8,
    "mode": pl.Utf8,
    "label": pl.Utf8,
    "workload_key": pl.Utf8,
    "seed": pl.Int64,
    "started_at": UTC_TS,
    "finished_at": UTC_TS,
    "stop_reason": pl.Utf8,
    "error": pl.Utf8,
    "llama_swap_version": pl.Utf8,
    "requested_by": pl.Utf8,
    "foreign_requests": pl.Int64,
    "j_per_token": pl.Float64,
    "points": pl.Int64,
    "is_baseline": pl.Boolean,
    "model_file": pl.Utf8,
    "simulated": pl.Boolean,
}

_RUNS_SQL = text(
    """
    SELECT r.id AS run_id, r.run_uid, r.provider_id, r.model_id, r.status, r.mode, r.label, r.workload_key,
           r.seed, r.started_at, r.finished_at, r.stop_reason, r.error, r.llama_swap_version, r.requested_by,
           r.foreign_requests, r.j_per_token,
           (SELECT count(*) FROM bench_points p WHERE p.run_id = r.id) AS points,
           EXISTS (SELECT 1 FROM bench_baselines b WHERE b.run_id = r.id) AS is_baseline,
           regexp_replace(r.server_props->>'model_path', '^.*/', '') AS model_file, r.simulated
    FROM bench_runs r
    WHERE (CAST(:provider AS text) IS NULL OR r.provider_id = :provider)
      AND (CAST(:model AS text) IS NULL OR r.model_id = :model)
      AND (CAST(:workload_key AS text) IS NULL OR r.workload_key = :workload_key)
      AND (:include_refused OR r.status NOT IN ('refused', 'skipped'))
    ORDER BY r.started_at DESC, r.id DESC
    LIMIT :limit
    """
)


def list_runs(
    db: Db,
    provider_id: str | None = None,
    model_id: str | None = None,
    limit: int = 200,
    include_refused: bool = True,
    workload_key: str | None = None,
) -> pl.DataFrame:
    """Newest runs first (optionally of one provider and/or model, or of one workload across the fleet).

    ``model_file`` is the file name of the GGUF llama-server reported (``/props`` ``model_path``): where
    the model id does not say it, that is where the quantization shows (``qwen-7b-Q4_K_M.gguf``).
    ``simulated``: the run measured a simulated host (the demo fleet); show it labelled."""
    params = {"provider": provider_id, "model": model_id, "limit": limit, "include_refused": include_refused,
              "workload_key": workload_key}  # fmt: skip
    return frame(db, _RUNS_SQL, params, RUN_SCHEMA)


def count_attempts(db: Db, provider_id: str | None = None, model_id: str | None = None) -> int:
    """How many attempts never ran (``refused``, ``skipped``): what `list_runs(include_refused=False)` leaves out."""
    sql = text(
        """
        SELECT count(*) FROM bench_runs r
        WHERE r.status IN ('refused', 'skipped')
          AND (CAST(:provider AS text) IS NULL OR r.provider_id = :provider)
          AND (CAST(:model AS text) IS NULL OR r.model_id = :model)
        """
    )
    with connected(db) as conn:
        return int(conn.execute(sql, {"provider": provider_id, "model": model_id}).scalar_one())


_DIST_COLS = [
    f"{m}_{s}_ms" for m in ("ttft", "tpot", "itl", "e2e") for s in ("p50", "p90", "p95", "p99", "mean")
]

POINT_SCHEMA: dict[str, Any] = {
    "run_id": pl.Int64,
    "run_label": pl.Utf8,
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "run_started_at": UTC_TS,
    "workload_key": pl.Utf8,
    "model_file": pl.Utf8,
    "idx": pl.Int64,
    "mode": pl.Utf8,
    "level": pl.Float64,
    "arrival": pl.Utf8,
    "requests": pl.Int64,
    "completed": pl.Int64,
    "failed": pl.Int64,
    "duration_s": pl.Float64,
    "request_throughput": pl.Float64,
    "output_throughput": pl.Float64,
    "total_token_throughput": pl.Float64,
    "goodput": pl.Float64,
    "goodput_ratio": pl.Float64,
    "peak_concurrency": pl.Int64,
    "mean_concurrency": pl.Float64,
    **{c: pl.Float64 for c in _DIST_COLS},
    "decode_tps_mean": pl.Float64,
    "server_predicted_per_s_mean": pl.Float64,
    "schedule_lag_p90_ms": pl.Float64,
    "saturated": pl.Boolean,
    "saturation_reason": pl.Utf8,
    "j_per_token": pl.Float64,
    "simulated": pl.Boolean,
}

_POINTS_SQL = text(
    f"""
    SELECT p.run_id,
           coalesce(r.label, to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' #' || r.id)
               || CASE WHEN r.simulated THEN ' (simulated)' ELSE '' END AS run_label,
           r.provider_id, r.model_id, r.started_at AS run_started_at, r.workload_key,
           regexp_replace(r.server_props->>'model_path', '^.*/', '') AS model_file, p.idx, p.mode, p.level, p.arrival, p.requests, p.completed, p.failed, p.duration_s,
           p.request_throughput, p.output_throughput, p.total_token_throughput, p.goodput, p.goodput_ratio,
           p.peak_concurrency, p.mean_concurrency, {", ".join("p." + c for c in _DIST_COLS)},
           p.decode_tps_mean, p.server_predicted_per_s_mean, p.schedule_lag_p90_ms,
           p.saturated, p.saturation_reason, p.j_per_token, r.simulated
    FROM bench_points p JOIN bench_runs r ON r.id = p.run_id
    WHERE p.run_id = ANY(:ids)
    ORDER BY r.started_at, p.run_id, p.idx
    """
)


def run_points(db: Db, run_ids: Sequence[int]) -> pl.DataFrame:
    """Sweep points of the given runs (for curves, overlays and the Pareto view)."""
    return frame(db, _POINTS_SQL, {"ids": [int(i) for i in run_ids]}, POINT_SCHEMA)


_BASELINE_SQL = text(
    """
    SELECT b.run_id FROM bench_baselines b JOIN bench_runs r ON r.id = b.run_id
    WHERE b.provider_id = :provider AND b.model_id = :model
      AND (CAST(:workload_key AS text) IS NULL OR r.workload_key = :workload_key)
    ORDER BY b.run_id
    """
)


def baseline_run_ids(db: Db, provider_id: str, model_id: str, workload_key: str | None = None) -> list[int]:
    with connected(db) as conn:
        rows = conn.execute(
            _BASELINE_SQL, {"provider": provider_id, "model": model_id, "workload_key": workload_key}
        )
        return [int(r[0]) for r in rows]


REQUEST_SCHEMA: dict[str, Any] = {
    "point_idx": pl.Int64,
    "level": pl.Float64,
    "seq": pl.Int64,
    "sent_at": UTC_TS,
    "send_offset_ms": pl.Float64,
    "scheduled_offset_ms": pl.Float64,
    "ttft_ms": pl.Float64,
    "tpot_ms": pl.Float64,
    "e2e_ms": pl.Float64,
    "decode_tps": pl.Float64,
    "n_chunks": pl.Int64,
    "prompt_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cached_tokens": pl.Int64,
    "server_prompt_ms": pl.Float64,
    "server_predicted_per_s": pl.Float64,
    "status_code": pl.Int64,
    "error": pl.Utf8,
    "cancelled": pl.Boolean,
}

_REQUESTS_SQL = text(
    """
    SELECT p.idx AS point_idx, p.level, q.seq, q.sent_at, q.send_offset_ms, q.scheduled_offset_ms,
           q.ttft_ms, q.tpot_ms, q.e2e_ms, q.decode_tps, cardinality(q.chunk_ms) AS n_chunks,
           q.prompt_tokens, q.output_tokens, q.cached_tokens,
           (q.timings->>'prompt_ms')::double precision AS server_prompt_ms,
           (q.timings->>'predicted_per_second')::double precision AS server_predicted_per_s,
           q.status_code, q.error, q.cancelled
    FROM bench_requests q JOIN bench_points p ON p.id = q.point_id
    WHERE q.run_id = :run_id
    ORDER BY p.idx, q.seq
    """
)


def run_requests(db: Db, run_id: int) -> pl.DataFrame:
    """Per-request rows of one run (without the raw chunk arrays)."""
    return frame(db, _REQUESTS_SQL, {"run_id": int(run_id)}, REQUEST_SCHEMA)


def run_detail(db: Db, run_id: int) -> dict[str, Any] | None:
    """Everything stored on one run row (identity, params, host info), as a dict."""
    with connected(db) as conn:
        row = (
            conn.execute(text("SELECT * FROM bench_runs WHERE id = :id"), {"id": int(run_id)})
            .mappings()
            .first()
        )
        return dict(row) if row is not None else None


MODEL_SCHEMA: dict[str, Any] = {
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "runs": pl.Int64,
    "last_run_at": UTC_TS,
    "baseline_runs": pl.Int64,
}

_MODELS_SQL = text(
    """
    SELECT r.provider_id, r.model_id, count(*) AS runs, max(r.started_at) AS last_run_at,
           (SELECT count(*) FROM bench_baselines b
             WHERE b.provider_id = r.provider_id AND b.model_id = r.model_id) AS baseline_runs
    FROM bench_runs r
    WHERE r.status NOT IN ('refused', 'skipped')
    GROUP BY r.provider_id, r.model_id
    ORDER BY max(r.started_at) DESC
    """
)


def benchmarked_models(db: Db) -> pl.DataFrame:
    """provider/model pairs that have runs, newest first."""
    return frame(db, _MODELS_SQL, {}, MODEL_SCHEMA)
