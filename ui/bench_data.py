"""Data for the Benchmarks page: thin wrappers over `warehouse.queries.bench` and `engines.bench.report`.

Caches live in `ui.data` only (a project rule), so these read through its cached engine and are not
cached themselves: benchmark tables are small and the page reads a few hundred rows at most.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from engines.bench import report
from reports.bench_figures import METRICS
from ui import data
from warehouse import bench_store
from warehouse.queries import bench as q

__all__ = ["METRICS", "add_to_baseline", "band", "detail", "models", "pareto_points", "points", "remove_from_baseline",
           "requests", "run_labels", "runs"]  # fmt: skip


def models() -> pl.DataFrame:
    return q.benchmarked_models(data.engine())


def runs(provider_id: str, model_id: str, limit: int = 200) -> pl.DataFrame:
    """Runs of one provider/model, newest first, with the drift verdict against its baseline."""
    return report.drift_by_run(data.engine(), provider_id, model_id, limit=limit)


def points(run_ids: tuple[int, ...]) -> pl.DataFrame:
    return q.run_points(data.engine(), list(run_ids))


def pareto_points(run_ids: tuple[int, ...], x: str, y: str) -> pl.DataFrame:
    return report.with_pareto(points(run_ids), x, y)


def band(provider_id: str, model_id: str, workload_key: str | None, metric: str, mode: str) -> pl.DataFrame:
    bands = report.bands_for(data.engine(), provider_id, model_id, workload_key)
    return report.band_frame(bands, metric, mode)


def requests(run_id: int) -> pl.DataFrame:
    return q.run_requests(data.engine(), run_id)


def detail(run_id: int) -> dict[str, object] | None:
    """The stored run row, JSON-safe (timestamps as ISO strings) for display."""
    row = q.run_detail(data.engine(), run_id)
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def run_labels(runs: pl.DataFrame) -> dict[int, str]:
    """run_id → "#12 label" (or the start time when the run has no label)."""
    out = {}
    for r in runs.iter_rows(named=True):
        when = r["started_at"].strftime("%Y-%m-%d %H:%M") if r["started_at"] else ""
        out[int(r["run_id"])] = f"#{r['run_id']} {r['label'] or when}"
    return out


def add_to_baseline(run_id: int, note: str | None = None) -> None:
    with data.engine().begin() as conn:
        bench_store.set_baseline(conn, run_id, note)


def remove_from_baseline(provider_id: str, model_id: str, run_id: int) -> None:
    with data.engine().begin() as conn:
        bench_store.clear_baseline(conn, provider_id, model_id, run_id)
