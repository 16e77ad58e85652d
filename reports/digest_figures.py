"""Plotly figures of the fleet digest (plain ``DataFrame -> Figure``; no Streamlit)."""

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
