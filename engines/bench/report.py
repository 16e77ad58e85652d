"""Stored runs → comparisons shared by the CLI and the Benchmarks page: drift flags, bands, Pareto."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from engines.bench.compare import (
    HIGHER_IS_WORSE,
    LOWER_IS_WORSE,
    Band,
    Drift,
    PointKey,
    baseline_bands,
    detect_drift,
    pareto_mask,
)
from warehouse.queries import bench as q
from warehouse.queries._frames import Db

COMPARED = HIGHER_IS_WORSE + LOWER_IS_WORSE


def point_metrics(points: pl.DataFrame) -> dict[int, dict[PointKey, dict[str, float | None]]]:
    """run_id → {(mode, level): {metric: value}} from a `run_points` frame."""
    out: dict[int, dict[PointKey, dict[str, float | None]]] = {}
    for row in points.iter_rows(named=True):
        key = (str(row["mode"]), float(row["level"]))
        out.setdefault(int(row["run_id"]), {})[key] = {m: row.get(m) for m in COMPARED}
    return out


def bands_for(
    db: Db, provider_id: str, model_id: str, workload_key: str | None
) -> dict[tuple[PointKey, str], Band]:
    ids = q.baseline_run_ids(db, provider_id, model_id, workload_key)
    if not ids:
        return {}
    per_run = point_metrics(q.run_points(db, ids))
    return baseline_bands(list(per_run.values()))


def drift_by_run(db: Db, provider_id: str, model_id: str, limit: int = 200) -> pl.DataFrame:
    """Runs of a provider/model with their drift verdict against the baseline of the same workload.

    Columns: the `list_runs` columns plus ``drift`` ("slower", "ok", "no baseline", "baseline",
    "not comparable") and ``drift_detail``.
    """
    runs = q.list_runs(db, provider_id, model_id, limit=limit, include_refused=False)
    if runs.is_empty():
        return runs.with_columns(
            pl.lit(None, pl.Utf8).alias("drift"), pl.lit(None, pl.Utf8).alias("drift_detail")
        )
    points = point_metrics(q.run_points(db, runs["run_id"].to_list()))
    cache: dict[str | None, dict[tuple[PointKey, str], Band]] = {}
    verdicts: list[str] = []
    details: list[str | None] = []
    for row in runs.iter_rows(named=True):
        wk = row["workload_key"]
        if wk not in cache:
            cache[wk] = bands_for(db, provider_id, model_id, wk)
        bands = cache[wk]
        if row["is_baseline"]:
            verdicts.append("baseline")
            details.append(None)
            continue
        if not bands:
            verdicts.append("no baseline")
            details.append(None)
            continue
        d: Drift = detect_drift(points.get(int(row["run_id"]), {}), bands)
        if not d.comparable:
            verdicts.append("not comparable")
            details.append("no sweep point in common with the baseline")
        else:
            verdicts.append("slower" if d.slower else "ok")
            details.append(d.worst)
    return runs.with_columns(
        pl.Series("drift", verdicts, pl.Utf8), pl.Series("drift_detail", details, pl.Utf8)
    )


def band_frame(bands: Mapping[tuple[PointKey, str], Band], metric: str, mode: str) -> pl.DataFrame:
    """level, center, low, high of one metric's baseline band (for the curves figure)."""
    rows = [
        {"level": key[1], "center": b.center, "low": b.low, "high": b.high, "runs": b.runs}
        for (key, m), b in bands.items()
        if m == metric and key[0] == mode
    ]
    schema: dict[str, Any] = {
        "level": pl.Float64,
        "center": pl.Float64,
        "low": pl.Float64,
        "high": pl.Float64,
        "runs": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema).sort("level")


def with_pareto(points: pl.DataFrame, x: str = "output_throughput", y: str = "tpot_p50_ms") -> pl.DataFrame:
    """Adds a boolean ``pareto`` column over all given points (throughput ↑ vs latency ↓)."""
    pts = points.filter(pl.col(x).is_not_null() & pl.col(y).is_not_null())
    pairs: Sequence[tuple[float, float]] = list(zip(pts[x].to_list(), pts[y].to_list(), strict=True))
    return pts.with_columns(pl.Series("pareto", pareto_mask(pairs), pl.Boolean))
