"""Plotly figures for benchmark sweeps (no Streamlit import): curves, baseline band, Pareto view.

Inputs are the frames of `warehouse.queries.bench.run_points` (optionally with the ``pareto`` column
added by `engines.bench.report.with_pareto`) and `engines.bench.report.band_frame`.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl

from reports.figures import MUTED, PALETTE, TEMPLATE, plot_text

METRICS: dict[str, tuple[str, str]] = {
    "output_throughput": ("Output throughput", "tok/s"),
    "total_token_throughput": ("Total token throughput", "tok/s"),
    "request_throughput": ("Request throughput", "req/s"),
    "goodput": ("Goodput (all SLOs met)", "req/s"),
    "ttft_p50_ms": ("TTFT p50", "ms"),
    "ttft_p90_ms": ("TTFT p90", "ms"),
    "ttft_p99_ms": ("TTFT p99", "ms"),
    "tpot_p50_ms": ("TPOT p50", "ms"),
    "tpot_p90_ms": ("TPOT p90", "ms"),
    "tpot_p99_ms": ("TPOT p99", "ms"),
    "itl_p50_ms": ("ITL p50 (chunk gaps)", "ms"),
    "itl_p99_ms": ("ITL p99 (chunk gaps)", "ms"),
    "e2e_p50_ms": ("E2E latency p50", "ms"),
    "e2e_p99_ms": ("E2E latency p99", "ms"),
    "j_per_token": ("Energy per generated token", "J/token"),
}

X_TITLES = {
    "concurrency": "concurrency (closed loop, requests in flight)",
    "rate": "offered rate (req/s, open loop)",
}


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 320})
    fig.add_annotation(text=message, showarrow=False, font={"color": MUTED, "size": 14}, x=0.5, y=0.5,
                       xref="paper", yref="paper")  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def metric_label(metric: str) -> str:
    name, unit = METRICS.get(metric, (metric, ""))
    return f"{name} ({unit})" if unit else name


def sweep_curves(points: pl.DataFrame, metric: str, mode: str, band: pl.DataFrame | None = None,
                 band_simulated: bool = False) -> go.Figure:
    """One line per run: ``metric`` against the sweep level; saturated points drawn as ✕; the
    baseline's noise band (center ± tolerance) shaded behind, named "(simulated)" when ``band_simulated`` (its
    runs measured a simulated host). Run lines carry their run label, which says "(simulated)" itself."""
    sim = " (simulated)" if band_simulated else ""
    title = f"{metric_label(metric)} vs {mode}"
    pts = points.filter((pl.col("mode") == mode) & pl.col(metric).is_not_null()) if points.height else points
    if pts.height == 0:
        return _empty(title, "no sweep points for this selection")
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 380})
    if band is not None and band.height:
        xs = band["level"].to_list()
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=band["high"].to_list() + band["low"].to_list()[::-1],
                                 fill="toself", fillcolor="rgba(118,255,3,0.10)", line={"width": 0},
                                 hoverinfo="skip", name=f"baseline ± noise{sim}"))  # fmt: skip
        fig.add_trace(go.Scatter(x=xs, y=band["center"].to_list(), mode="lines", name=f"baseline median{sim}",
                                 line={"color": "#76ff03", "dash": "dot", "width": 1.5}))  # fmt: skip
    for i, (_key, run) in enumerate(pts.group_by("run_id", maintain_order=True)):
        run = run.sort("level")
        color = PALETTE[i % len(PALETTE)]
        label = plot_text(run["run_label"][0])
        sat = run["saturated"].to_list()
        fig.add_trace(
            go.Scatter(
                x=run["level"].to_list(),
                y=run[metric].to_list(),
                mode="lines+markers",
                name=label,
                line={"color": color, "width": 2},
                marker={
                    "symbol": ["x" if s else "circle" for s in sat],
                    "size": [11 if s else 7 for s in sat],
                },
                customdata=[[r or ""] for r in run["saturation_reason"].to_list()],
                hovertemplate=f"{label}<br>%{{x}} → %{{y:,.2f}}<br>%{{customdata[0]}}<extra></extra>",
            )
        )
    fig.update_xaxes(title=X_TITLES.get(mode, mode), type="log" if _spans_decades(pts) else "linear")
    fig.update_yaxes(title=metric_label(metric), rangemode="tozero")
    return fig


def _spans_decades(pts: pl.DataFrame) -> bool:
    lv = [v for v in pts["level"].to_list() if v and v > 0]
    return bool(lv) and max(lv) / min(lv) >= 16


def pareto(points: pl.DataFrame, x: str = "output_throughput", y: str = "tpot_p50_ms") -> go.Figure:
    """Quality-free Pareto view: throughput (→ better) against latency (↓ better) over every point of
    the selected runs; the frontier (points no other point beats on both) is joined by a line."""
    title = f"Pareto: {metric_label(x)} vs {metric_label(y)}"
    if points.height == 0 or "pareto" not in points.columns:
        return _empty(title, "no sweep points for this selection")
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 380})
    for i, (_key, run) in enumerate(points.group_by("run_id", maintain_order=True)):
        label = plot_text(run["run_label"][0])
        text = [f"{m}={lv:g}" for m, lv in zip(run["mode"].to_list(), run["level"].to_list(), strict=True)]
        fig.add_trace(
            go.Scatter(
                x=run[x].to_list(), y=run[y].to_list(), mode="markers", name=label, text=text,
                marker={"color": PALETTE[i % len(PALETTE)], "size": 9,
                        "line": {"width": [2 if p else 0 for p in run["pareto"].to_list()], "color": "#ffffff"}},
                hovertemplate=f"{label} %{{text}}<br>%{{x:,.1f}}, %{{y:,.2f}}<extra></extra>",
            )
        )  # fmt: skip
    front = points.filter(pl.col("pareto")).sort(x)
    fig.add_trace(go.Scatter(x=front[x].to_list(), y=front[y].to_list(), mode="lines", name="Pareto frontier",
                             line={"color": "#ffffff", "dash": "dash", "width": 1}, hoverinfo="skip"))  # fmt: skip
    fig.update_xaxes(title=metric_label(x), rangemode="tozero")
    fig.update_yaxes(title=metric_label(y), rangemode="tozero")
    return fig


def latency_distribution(requests: pl.DataFrame, metric: str = "ttft_ms", run_label: str | None = None) -> go.Figure:
    """Per-request box plots of one latency (``ttft_ms``, ``tpot_ms``, ``e2e_ms``) per sweep level; the title
    names the run (``run_label``, "… (simulated)" for a simulated host's)."""
    title = {
        "ttft_ms": "TTFT per request",
        "tpot_ms": "TPOT per request",
        "e2e_ms": "E2E latency per request",
    }.get(metric, metric) + (f" — {plot_text(run_label)}" if run_label else "")
    req = requests.filter(pl.col(metric).is_not_null()) if requests.height else requests
    if req.height == 0:
        return _empty(title, "no requests")
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 340})
    for i, (key, grp) in enumerate(req.group_by("level", maintain_order=True)):
        level: Any = key[0] if isinstance(key, tuple) else key
        fig.add_trace(go.Box(y=grp[metric].to_list(), name=f"{level:g}", boxpoints="outliers",
                             marker_color=PALETTE[i % len(PALETTE)]))  # fmt: skip
    fig.update_xaxes(title="sweep level")
    fig.update_yaxes(title=f"{metric.removesuffix('_ms')} (ms)", rangemode="tozero")
    fig.update_layout(showlegend=False)
    return fig
