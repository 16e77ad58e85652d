"""Plotly figures of the fleet digest and of the long-range trends on the Analysis page.

Plain ``DataFrame -> Figure`` functions, no Streamlit: the digest embeds them in its HTML, pages show them.
They use the app's ``boocontrol`` template (dark, like the cockpit), escape every name from the fleet, and
draw periods (days, weeks, months) as labelled categories so one period never gets sub-second ticks. A host in
``simulated`` (the demo fleet: synthetic speeds, power and energy) is named ``… (simulated)`` wherever it is drawn.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl

from reports.figures import TEMPLATE, pad_single_x, plot_text

LAYOUT = {"template": TEMPLATE, "margin": {"l": 56, "r": 20, "t": 50, "b": 40}, "height": 360}
HOUR = timedelta(hours=1)


def _sim(provider_id: str, simulated: Collection[str]) -> str:
    return f"{provider_id} (simulated)" if provider_id in simulated else provider_id


def _label(df: pl.DataFrame, simulated: Collection[str] = ()) -> list[str]:
    return [plot_text(f"{p}/{m}" + (" (simulated)" if p in simulated else ""))
            for p, m in zip(df["provider_id"], df["model_id"], strict=True)]  # fmt: skip


def _periods(values: Sequence[Any]) -> list[str]:
    """Period starts as category labels (``2026-03-02``)."""
    return [v.date().isoformat() if isinstance(v, datetime) else v.isoformat() if isinstance(v, date) else str(v)
            for v in values]  # fmt: skip


def _category_x(fig: go.Figure) -> None:
    fig.update_xaxes(type="category", categoryorder="category ascending")


def tokens_by_model(usage: pl.DataFrame, top: int = 15, simulated: Collection[str] = ()) -> go.Figure:
    """Horizontal stacked bars: input, cached and output tokens per provider/model (the busiest ``top``)."""
    df = usage.head(top).reverse()
    labels = _label(df, simulated)
    fig = go.Figure(
        [
            go.Bar(name="input", y=labels, x=df["input_tokens"].to_list(), orientation="h"),
            go.Bar(name="cached", y=labels, x=df["cache_tokens"].to_list(), orientation="h"),
            go.Bar(name="output", y=labels, x=df["output_tokens"].to_list(), orientation="h"),
        ]
    )
    fig.update_layout(title="Tokens per provider/model", barmode="stack", xaxis_title="tokens", **LAYOUT)
    return fig


def requests_by_hour(hourly: pl.DataFrame, simulated: Collection[str] = ()) -> go.Figure:
    """Stacked bars of requests per UTC hour, one colour per provider."""
    fig = go.Figure()
    for pid in sorted(set(hourly["provider_id"].to_list())):
        part = hourly.filter(pl.col("provider_id") == pid)
        starts = part["bucket_start"].to_list()
        name = plot_text(_sim(pid, simulated))
        fig.add_bar(
            name=name,
            x=[t + HOUR / 2 for t in starts],  # a bar spans its hour
            y=part["requests"].to_list(),
            width=HOUR.total_seconds() * 1000 * 0.9,
            customdata=[f"{t:%Y-%m-%d %H:00}–{t + HOUR:%H:00} UTC" for t in starts],
            hovertemplate=f"%{{customdata}}<br>%{{y:,}} requests<extra>{name}</extra>",
        )
    fig.update_layout(title="Requests per hour (UTC)", barmode="stack", yaxis_title="requests", **LAYOUT)
    fig.update_xaxes(type="date", title="hour (UTC)")
    pad_single_x(fig, [t + HOUR / 2 for t in hourly["bucket_start"].to_list()], 2 * HOUR)
    return fig


def speed_change(speeds: pl.DataFrame, simulated: Collection[str] = ()) -> go.Figure:
    """Generation-speed p50 per provider/model, this period against the previous one."""
    labels = _label(speeds, simulated)
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


def usage_trend(usage: pl.DataFrame, simulated: Collection[str] = ()) -> go.Figure:
    """Output tokens per period, stacked by provider, with requests on a second axis."""
    fig = go.Figure()
    for pid in sorted(set(usage["provider_id"].to_list())):
        part = usage.filter(pl.col("provider_id") == pid)
        fig.add_bar(
            name=plot_text(f"{_sim(pid, simulated)} output tokens"),
            x=_periods(part["period"].to_list()),
            y=part["output_tokens"].to_list(),
        )
    totals = usage.group_by("period").agg(pl.col("requests").sum()).sort("period")
    fig.add_scatter(
        name="requests",
        x=_periods(totals["period"].to_list()),
        y=totals["requests"].to_list(),
        yaxis="y2",
        mode="lines+markers",
    )
    fig.update_layout(
        title="Tokens and requests",
        barmode="stack",
        yaxis_title="output tokens",
        yaxis2={
            "title": "requests",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "rangemode": "tozero",
        },
        **LAYOUT,
    )
    _category_x(fig)
    return fig


def speed_trend(speeds: pl.DataFrame, simulated: Collection[str] = ()) -> go.Figure:
    """Generation-speed p50 (solid) and p95 (dotted) per provider/model over time."""
    fig = go.Figure()
    for (pid, mid), part in speeds.sort("period").group_by(["provider_id", "model_id"], maintain_order=True):
        x = _periods(part["period"].to_list())
        name = plot_text(f"{pid}/{mid}" + (" (simulated)" if pid in simulated else ""))
        fig.add_scatter(name=f"{name} p50", x=x, y=part["gen_p50"].to_list(), mode="lines+markers")
        fig.add_scatter(
            name=f"{name} p95", x=x, y=part["gen_p95"].to_list(), mode="lines+markers", line={"dash": "dot"}
        )
    fig.update_layout(title="Generation speed (tokens/s)", yaxis_title="tokens/s", **LAYOUT)
    _category_x(fig)
    return fig


def energy_trend(energy: pl.DataFrame, simulated: Collection[str] = ()) -> go.Figure:
    """GPU energy per period, stacked by host (kWh); a simulated host's energy (synthetic power) is named so."""
    fig = go.Figure()
    for pid in sorted(set(energy["provider_id"].to_list())):
        part = energy.filter(pl.col("provider_id") == pid)
        fig.add_bar(name=plot_text(_sim(pid, simulated)), x=_periods(part["period"].to_list()),
                    y=part["energy_kwh"].to_list())  # fmt: skip
    fig.update_layout(title="GPU energy (kWh)", barmode="stack", yaxis_title="kWh", **LAYOUT)
    _category_x(fig)
    return fig
