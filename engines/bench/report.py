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
    lengths_differ,
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


# ------------------------------------------------------------------ comparing models across the fleet

#: Metrics of a side-by-side comparison, and which direction is better.
HIGHER_IS_BETTER: tuple[str, ...] = (
    "output_throughput",
    "total_token_throughput",
    "request_throughput",
    "goodput",
)
COMPARE_METRICS: tuple[str, ...] = (
    "output_throughput",
    "ttft_p50_ms",
    "tpot_p50_ms",
    "e2e_p50_ms",
    "j_per_token",
)


def _length_mismatches(lengths: Mapping[int, Mapping[float, Mapping[str, Any]]], ids: Sequence[int]) -> list[str]:
    """Per run and common level, why the actual prompt lengths differ from the reference run's (first id)."""
    ref = lengths.get(ids[0]) or {}
    out = []
    for rid in ids[1:]:
        for level, dist in sorted((lengths.get(rid) or {}).items()):
            why = lengths_differ(ref.get(level), dist)
            if why:
                out.append(f"run {rid} at level {level:g}: {why}")
    return out


def prompt_lengths_of(summaries: Sequence[Mapping[str, Any]]) -> dict[float, Mapping[str, Any]]:
    """level → the stored actual prompt-length distribution, from `bench_store.point_summaries` rows."""
    return {float(r["level"]): r["summary"].get("prompt_len") or {} for r in summaries}


class NotComparable(ValueError):
    """The runs did not run the same workload, so their points are not comparable level by level."""


def compare_runs(points: pl.DataFrame, run_ids: Sequence[int],
                 metrics: Sequence[str] = COMPARE_METRICS,
                 prompt_lengths: Mapping[int, Mapping[float, Mapping[str, Any]]] | None = None,
                 ) -> pl.DataFrame:  # fmt: skip
    """Side by side: every run against the first of ``run_ids`` (the reference), at the reference's levels.

    For quantizations of a model on one host, or one model on several hosts: the runs must share a
    workload key (same mode, lengths, requests per point, arrival). Columns: ``mode``, ``level``,
    ``metric``, ``run_id``, ``subject`` (``provider/model #id``), ``model_file`` (the GGUF file name
    llama-server reported, where the quantization shows), ``value``, ``ratio`` (value / the
    reference's value at that level; None where either is missing or the reference is 0) and
    ``better`` (True/False against the reference by the metric's direction, None for the reference itself
    or a missing value), ``simulated`` (the run measured a simulated host; `comparison_cells` marks its
    values ``sim``). Raises `NotComparable` with the runs named when the workloads differ, and
    `ValueError` for fewer than two runs or a run without stored points.
    """
    ids = [int(i) for i in run_ids]
    if len(ids) < 2:
        raise ValueError("compare needs at least two runs")
    if len(set(ids)) != len(ids):
        raise ValueError("each run may be named once")
    unknown = [m for m in metrics if m not in points.columns]
    if unknown:
        raise ValueError(f"unknown metric(s): {', '.join(unknown)}")
    have = set(points["run_id"].to_list()) if points.height else set()
    missing = [i for i in ids if i not in have]
    if missing:
        raise ValueError(f"no stored sweep points for run(s) {', '.join(map(str, missing))}")
    keys = {int(r["run_id"]): r["workload_key"] for r in points.iter_rows(named=True)}
    ref = ids[0]
    differing = [i for i in ids[1:] if keys[i] != keys[ref]]
    if differing:
        raise NotComparable(
            f"run(s) {', '.join(map(str, differing))} ran a different workload than run {ref} "
            "(mode, lengths, requests per point or arrival differ), so their points are not comparable; "
            "repeat the sweep with the same options"
        )
    if prompt_lengths:
        why = _length_mismatches(prompt_lengths, ids)
        if why:
            raise NotComparable(
                "the runs sent different prompt lengths although they asked for the same: " + "; ".join(why)
                + " — repeat the sweeps with exact lengths (a llama-server host) to compare them"
            )
    by_run: dict[int, dict[tuple[str, float], dict[str, Any]]] = {}
    subjects: dict[int, str] = {}
    files: dict[int, str | None] = {}
    simulated: dict[int, bool] = {}
    for r in points.iter_rows(named=True):
        rid = int(r["run_id"])
        by_run.setdefault(rid, {})[(str(r["mode"]), float(r["level"]))] = r
        subjects[rid] = f"{r['provider_id']}/{r['model_id']} #{rid}"
        files[rid] = r.get("model_file")
        simulated[rid] = bool(r.get("simulated"))
    rows: list[dict[str, Any]] = []
    for key in sorted(by_run[ref]):
        for metric in metrics:
            base = by_run[ref][key].get(metric)
            for rid in ids:
                point = by_run[rid].get(key)
                v = None if point is None else point.get(metric)
                ratio = v / base if v is not None and base not in (None, 0) else None
                better = None
                if rid != ref and ratio is not None and ratio != 1.0:
                    better = ratio > 1.0 if metric in HIGHER_IS_BETTER else ratio < 1.0
                rows.append({"mode": key[0], "level": key[1], "metric": metric, "run_id": rid,
                             "subject": subjects[rid], "model_file": files[rid], "value": v, "ratio": ratio, "better": better,
                             "simulated": simulated[rid]})  # fmt: skip
    schema: dict[str, Any] = {"mode": pl.Utf8, "level": pl.Float64, "metric": pl.Utf8, "run_id": pl.Int64,
                              "subject": pl.Utf8, "model_file": pl.Utf8, "value": pl.Float64, "ratio": pl.Float64,
                              "better": pl.Boolean, "simulated": pl.Boolean}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def comparison_cells(table: pl.DataFrame, run_ids: Sequence[int]) -> pl.DataFrame:
    """`compare_runs` output → one row per (mode, level, metric), one text column per run (``#id``):
    the value, and for the other runs its ratio to the reference with the verdict, e.g.
    ``150.0 (0.83x worse)``."""
    rows: list[dict[str, Any]] = []
    for (mode, level, metric), grp in table.group_by(["mode", "level", "metric"], maintain_order=True):
        row: dict[str, Any] = {"mode": mode, "level": level, "metric": metric}
        for r in grp.iter_rows(named=True):
            v = r["value"]
            cell = "-" if v is None else f"{v:.3f}" if metric == "j_per_token" else f"{v:.1f}"
            if v is not None and r.get("simulated"):
                cell += " sim"  # a simulated host's number (synthetic speed, synthetic power)
            if r["run_id"] != run_ids[0] and r["ratio"] is not None:
                verdict = "" if r["better"] is None else " better" if r["better"] else " worse"
                cell += f" ({r['ratio']:.2f}x{verdict})"
            row[f"#{r['run_id']}"] = cell
        rows.append(row)
    schema: dict[str, Any] = {"mode": pl.Utf8, "level": pl.Float64, "metric": pl.Utf8}
    schema.update({f"#{i}": pl.Utf8 for i in run_ids})
    return pl.DataFrame(rows, schema=schema)


# ---------------------------------------------------------------- how sure: intervals beside each figure
SURE_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    # (header, metric in PointSummary.intervals, statistic, digits)
    ("TTFT p50 ms", "ttft_ms", "p50", 1),
    ("TTFT p95 ms", "ttft_ms", "p95", 1),
    ("TTFT p99 ms", "ttft_ms", "p99", 1),
    ("TPOT p50 ms", "tpot_ms", "p50", 2),
    ("TPOT p99 ms", "tpot_ms", "p99", 2),
    ("prefill tok/s (server timings)", "server_prefill_per_s", "mean", 0),
    ("prompt tok/s ÷ TTFT (latency-derived)", "prompt_tps", "mean", 0),
)


def format_estimate(e: Mapping[str, Any] | None, digits: int = 1) -> str:
    """``123.4 [110.2–140.1]`` (95 % bootstrap interval); ``hidden (n=20)`` below the sample threshold;
    a trailing ``*`` marks a figure resting on few samples."""
    if not e or e.get("n", 0) == 0:
        return "-"
    if e.get("hidden"):
        return f"hidden (n={e['n']})"
    v, lo, hi = e.get("value"), e.get("low"), e.get("high")
    if v is None:
        return "-"
    text = f"{v:.{digits}f}" if lo is None or hi is None else f"{v:.{digits}f} [{lo:.{digits}f}–{hi:.{digits}f}]"
    return text + ("*" if e.get("warning") else "")


def format_lengths(d: Mapping[str, Any] | None) -> str:
    """``256.0 (256–256)``: mean and range of the actual prompt lengths (usage) of a point."""
    if not d or not d.get("count"):
        return "-"
    return f"{d['mean']:.1f} ({d['min']:.0f}–{d['max']:.0f})"


def sure_rows(points: Sequence[tuple[float, Mapping[str, Any]]]) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, rows, notes) of the interval table from (level, stored summary) pairs."""
    headers = ["level", *(h for h, _, _, _ in SURE_COLUMNS), "prompt tokens sent (min–max)", "≠ target"]
    rows: list[list[str]] = []
    notes: set[str] = set()
    for level, summary in points:
        iv = summary.get("intervals") or {}
        row = [f"{level:g}"]
        for _, metric, stat, digits in SURE_COLUMNS:
            e = (iv.get(metric) or {}).get(stat)
            row.append(format_estimate(e, digits))
            if e and e.get("warning") and not e.get("hidden") and e.get("n"):
                notes.add("* few samples: a percentile with fewer than 5 samples above it (a mean below 10)")
            if e and e.get("hidden") and e.get("n"):
                notes.add("hidden: fewer than 1 sample above the percentile (p99 needs 100 requests)")
        row.append(format_lengths(summary.get("prompt_len")))
        row.append(str(summary["length_mismatches"]) if "length_mismatches" in summary else "-")
        rows.append(row)
    return headers, rows, sorted(notes)


# ---------------------------------------------------------------- export: reports that leave the cockpit
def export_json(db: Db, run_ids: Sequence[int]) -> dict[str, Any]:
    """Every stored fact of the runs: the run row (workload, host identity: model entry, llama-server props,
    versions, hardware), each point's row with its full summary (intervals, lengths, prefill) and every request."""
    from warehouse import bench_store
    from warehouse.queries._frames import connected

    runs = []
    for rid in run_ids:
        detail = q.run_detail(db, int(rid))
        if detail is None:
            raise ValueError(f"no run {rid}")
        with connected(db) as conn:
            summaries = bench_store.point_summaries(conn, int(rid))
        points = q.run_points(db, [int(rid)]).to_dicts()
        by_idx = {s["idx"]: s["summary"] for s in summaries}
        for p in points:
            p["summary"] = by_idx.get(int(p["idx"]))
        runs.append({"run": detail, "points": points, "requests": q.run_requests(db, int(rid)).to_dicts()})
    return {"format": "boocontrol-bench-export", "version": 1, "runs": runs}


def export_csv(db: Db, run_ids: Sequence[int]) -> str:
    """One row per sweep point of the runs (the `run_points` columns), with each point's 95 % intervals of
    TTFT/TPOT p50 and p95 and the server's prefill rate flattened into columns."""
    pts = q.run_points(db, [int(r) for r in run_ids])
    from warehouse import bench_store
    from warehouse.queries._frames import connected

    extra: dict[tuple[int, float], dict[str, Any]] = {}
    with connected(db) as conn:
        for rid in run_ids:
            for s in bench_store.point_summaries(conn, int(rid)):
                iv = s["summary"].get("intervals") or {}
                row: dict[str, Any] = {}
                for metric in ("ttft_ms", "tpot_ms", "server_prefill_per_s", "prompt_tps"):
                    for stat in ("p50", "p95", "mean"):
                        e = (iv.get(metric) or {}).get(stat) or {}
                        for part in ("low", "high"):
                            row[f"{metric}_{stat}_{part}"] = e.get(part)
                row["prompt_len_mean"] = (s["summary"].get("prompt_len") or {}).get("mean")
                row["length_mismatches"] = s["summary"].get("length_mismatches")
                extra[(int(rid), float(s["level"]))] = row
    cols = sorted({k for r in extra.values() for k in r})
    flat = pts.drop([c for c, t in pts.schema.items() if isinstance(t, pl.List | pl.Struct | pl.Object)])
    add = {c: [extra.get((int(r["run_id"]), float(r["level"])), {}).get(c) for r in flat.iter_rows(named=True)]
           for c in cols}  # fmt: skip
    out = flat.with_columns([pl.Series(c, v, dtype=pl.Float64) for c, v in add.items()])
    return out.write_csv()
