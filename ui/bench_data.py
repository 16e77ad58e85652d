"""Data for the Benchmarks page: thin wrappers over `warehouse.queries.bench` and `engines.bench.report`.

Caches live in `ui.data` only (a project rule), so these read through its cached engine and are not
cached themselves: benchmark tables are small and the page reads a few hundred rows at most.
"""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl

from engines.bench import report
from reports.bench_figures import METRICS
from reports.bench_html import render_html
from ui import data
from warehouse import bench_store
from warehouse.queries import bench as q

__all__ = ["METRICS", "add_to_baseline", "band", "comparable_runs", "comparison", "compare_points", "detail", "models",
           "export", "pareto_points", "points", "remove_from_baseline", "requests", "run_labels", "runs", "sure"]  # fmt: skip


def models() -> pl.DataFrame:
    return q.benchmarked_models(data.engine())


def runs(provider_id: str, model_id: str, limit: int = 200) -> pl.DataFrame:
    """Runs of one provider/model, newest first, with the drift verdict against its baseline; ``energy`` is the
    J/token as text, "(simulated)" after a simulated host's (synthetic power)."""
    return with_energy_text(report.drift_by_run(data.engine(), provider_id, model_id, limit=limit))


def with_energy_text(runs: pl.DataFrame) -> pl.DataFrame:
    """``energy``: ``0.123 J/token``, ``0.123 J/token (simulated)`` for a simulated host's run, ``—`` when none."""
    value = pl.format("{} J/token", pl.col("j_per_token").round(3).cast(pl.Utf8))
    return runs.with_columns(
        pl.when(pl.col("j_per_token").is_null())
        .then(pl.lit("—"))
        .when(pl.col("simulated"))
        .then(pl.format("{} (simulated)", value))
        .otherwise(value)
        .alias("energy")
    )


def points(run_ids: tuple[int, ...]) -> pl.DataFrame:
    return q.run_points(data.engine(), list(run_ids))


def pareto_points(run_ids: tuple[int, ...], x: str, y: str) -> pl.DataFrame:
    return report.with_pareto(points(run_ids), x, y)


def band(provider_id: str, model_id: str, workload_key: str | None, metric: str, mode: str) -> pl.DataFrame:
    bands = report.bands_for(data.engine(), provider_id, model_id, workload_key)
    return report.band_frame(bands, metric, mode)


def requests(run_id: int) -> pl.DataFrame:
    return q.run_requests(data.engine(), run_id)


def export(run_ids: tuple[int, ...], fmt: str) -> str:
    """The same files as `boocontrol bench export` (json: runs, points with intervals, requests; csv: points;
    html: the self-contained report)."""
    if fmt == "csv":
        return report.export_csv(data.engine(), run_ids)
    text = json.dumps(report.export_json(data.engine(), run_ids), default=str, indent=1)
    return render_html(json.loads(text)) if fmt == "html" else text


def sure(run_id: int) -> tuple[pl.DataFrame, list[str]]:
    """Every point's figures with their 95 % bootstrap intervals, the server's and the latency-derived prefill
    rate and the prompt lengths actually sent (`engines.bench.report.sure_rows`), as text cells; and the notes."""
    with data.engine().connect() as conn:
        stored = bench_store.point_summaries(conn, run_id)
    headers, rows, notes = report.sure_rows([(r["level"], r["summary"]) for r in stored])
    return pl.DataFrame(rows, schema=dict.fromkeys(headers, pl.Utf8), orient="row"), notes


def detail(run_id: int) -> dict[str, object] | None:
    """The stored run row, JSON-safe (timestamps as ISO strings) for display."""
    row = q.run_detail(data.engine(), run_id)
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def run_labels(runs: pl.DataFrame) -> dict[int, str]:
    """run_id → "#12 label" (or the start time when the run has no label), "(simulated)" for a simulated host."""
    out = {}
    for r in runs.iter_rows(named=True):
        when = r["started_at"].strftime("%Y-%m-%d %H:%M") if r["started_at"] else ""
        out[int(r["run_id"])] = f"#{r['run_id']} {r['label'] or when}" + (" (simulated)" if r["simulated"] else "")
    return out


def add_to_baseline(run_id: int, note: str | None = None) -> None:
    with data.engine().begin() as conn:
        bench_store.set_baseline(conn, run_id, note)


def remove_from_baseline(provider_id: str, model_id: str, run_id: int) -> None:
    with data.engine().begin() as conn:
        bench_store.clear_baseline(conn, provider_id, model_id, run_id)


def comparable_runs(workload_key: str | None) -> dict[int, str]:
    """Runs of any provider/model that ran this workload (quantizations, other hosts), newest first:
    run_id → "#12 provider/model (file.gguf) label"."""
    if workload_key is None:
        return {}
    out = {}
    for r in q.list_runs(data.engine(), workload_key=workload_key, include_refused=False).iter_rows(named=True):
        if not r["points"]:
            continue
        file = f" ({r['model_file']})" if r["model_file"] else ""
        when = r["started_at"].strftime("%Y-%m-%d %H:%M") if r["started_at"] else ""
        sim = " (simulated)" if r["simulated"] else ""
        out[int(r["run_id"])] = f"#{r['run_id']} {r['provider_id']}/{r['model_id']}{file} {r['label'] or when}{sim}"
    return out


def compare_points(run_ids: tuple[int, ...]) -> pl.DataFrame:
    """Points of the compared runs, labelled by provider/model so curves of several models can be told apart."""
    pts = points(run_ids)
    label = pl.concat_str([pl.col("provider_id"), pl.lit("/"), pl.col("model_id"), pl.lit(" #"),
                           pl.col("run_id").cast(pl.Utf8),
                           pl.when(pl.col("simulated")).then(pl.lit(" (simulated)")).otherwise(pl.lit(""))])  # fmt: skip
    return pts.with_columns(label.alias("run_label"))


def comparison(run_ids: tuple[int, ...]) -> pl.DataFrame:
    """The side-by-side table against the first run (`engines.bench.report.compare_runs`), as text cells;
    raises `engines.bench.report.NotComparable` when the workloads or the prompt lengths actually sent differ."""
    with data.engine().connect() as conn:
        lengths = {rid: report.prompt_lengths_of(bench_store.point_summaries(conn, rid)) for rid in run_ids}
    table = report.compare_runs(points(run_ids), run_ids, prompt_lengths=lengths)
    cells = report.comparison_cells(table, run_ids)
    return cells.with_columns(pl.col("metric").replace_strict(
        {m: f"{n} ({u})" for m, (n, u) in METRICS.items()}, default=pl.col("metric")))  # fmt: skip
