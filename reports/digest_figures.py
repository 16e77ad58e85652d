"""Plotly figures of the fleet digest and of the long-range trends on the Analysis page.

Plain ``DataFrame -> Figure`` functions, no Streamlit: the digest embeds them in its HTML, pages show them.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

LAYOUT = {"template": "plotly_white", "margin": {"l": 40, "r": 20, "t": 50, "b": 40}, "height": 360}


def _label(df: pl.DataFrame) -> list[str]:
    return [f"{p}/{m}" for p, m in zip(df["provider_id"], df["model_id"], strict=True)]


def tokens_by_model(usage: pl.DataFrame, top: int = 15) -> go.Figure:
    """Horizontal stacked bars: input, cached and output tokens per provider/model (the busiest ``top``)."""
    df = usage.head(top).reverse()
    labels = _label(df)
    fig = go.Figure(
        [
            go.Bar(name="input", y=labels, x=df["input_tokens"].to_list(), orientation="h"),
            go.Bar(name="cached", y=labels, x=df["cache_tokens"].to_list(), orientation="h"),
            go.Bar(name="output", y=labels, x=df["output_tokens"].to_list(), orientation="h"),
        ]
    )
    fig.update_layout(title="Tokens per provider/model", barmode="stack", xaxis_title="tokens", **LAYOUT)
    return fig


def requests_by_hour(hourly: pl.DataFrame) -> go.Figure:
    """Stacked bars of requests per UTC hour, one colour per provider."""
    fig = go.Figure()
    for pid in sorted(set(hourly["provider_id"].to_list())):
        part = hourly.filter(pl.col("provider_id") == pid)
        fig.add_bar(name=pid, x=part["bucket_start"].to_list(), y=part["requests"].to_list())
    fig.update_layout(title="Requests per hour (UTC)", barmode="stack", yaxis_title="requests", **LAYOUT)
    return fig


def speed_change(speeds: pl.DataFrame) -> go.Figure:
    """Generation-speed p50 per provider/model, this period against the previous one."""
    labels = _label(speeds)
    fig = go.Figure(
        [
            go.Bar(name="previous p50", x=labels, y=speeds["gen_p50_prev"].to_list()),
            go.Bar(name="p50", x=labels, y=speeds["gen_p50"].to_list()),
            go.Bar(name="p95", x=labels, y=speeds["gen_p95"].to_list()),
        ]
    )
    fig.update_layout(title="Generation speed (tokens/s)", barmode="group", yaxis_title="tokens/s", **LAYOUT)
    return fig


# --- long-range trends (the Analysis page, over the Parquet lake) ---------------------------------------


def usage_trend(usage: pl.DataFrame) -> go.Figure:
    """Output tokens per period, stacked by provider, with requests on a second axis."""
    fig = go.Figure()
    for pid in sorted(set(usage["provider_id"].to_list())):
        part = usage.filter(pl.col("provider_id") == pid)
        fig.add_bar(
            name=f"{pid} output tokens", x=part["period"].to_list(), y=part["output_tokens"].to_list()
        )
    totals = usage.group_by("period").agg(pl.col("requests").sum()).sort("period")
    fig.add_scatter(
        name="requests",
        x=totals["period"].to_list(),
        y=totals["requests"].to_list(),
        yaxis="y2",
        mode="lines+markers",
    )
    fig.update_layout(
        title="Tokens and requests",
        barmode="stack",
        yaxis_title="output tokens",
        yaxis2={"title": "requests", "overlaying": "y", "side": "right", "showgrid": False},
        **LAYOUT,
    )
    return fig


def speed_trend(speeds: pl.DataFrame) -> go.Figure:
    """Generation-speed p50 (solid) and p95 (dotted) per provider/model over time."""
    fig = go.Figure()
    for (pid, mid), part in speeds.sort("period").group_by(["provider_id", "model_id"], maintain_order=True):
        x = part["period"].to_list()
        fig.add_scatter(name=f"{pid}/{mid} p50", x=x, y=part["gen_p50"].to_list(), mode="lines+markers")
        fig.add_scatter(
            name=f"{pid}/{mid} p95", x=x, y=part["gen_p95"].to_list(), mode="lines", line={"dash": "dot"}
        )
    fig.update_layout(title="Generation speed (tokens/s)", yaxis_title="tokens/s", **LAYOUT)
    return fig


def energy_trend(energy: pl.DataFrame) -> go.Figure:
    """GPU energy per period, stacked by host (kWh)."""
    fig = go.Figure()
    for pid in sorted(set(energy["provider_id"].to_list())):
        part = energy.filter(pl.col("provider_id") == pid)
        fig.add_bar(name=pid, x=part["period"].to_list(), y=part["energy_kwh"].to_list())
    fig.update_layout(title="GPU energy (kWh)", barmode="stack", yaxis_title="kWh", **LAYOUT)
    return fig
