"""Plotly figures shared by the Streamlit pages and scheduled reports (no Streamlit import).

One template, ``boocontrol`` ("mission control": near-black panels, cyan/amber/magenta traces, monospace
numerals), is registered on import and used by every figure here, so charts look the same on every
page and in reports. Every axis title carries its unit.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

TEMPLATE = "boocontrol"
BG = "#0a0e14"
PANEL = "#111821"
GRID = "#1f2a36"
TEXT = "#c9d6e3"
MUTED = "#6b7c8f"
ACCENT = "#00e5ff"
PALETTE = (
    "#00e5ff",
    "#ffb300",
    "#ff4081",
    "#76ff03",
    "#b388ff",
    "#ff6e40",
    "#18ffff",
    "#eeff41",
    "#40c4ff",
    "#f50057",
)
STATE_COLORS = {
    "ready": "#76ff03",
    "starting": "#ffb300",
    "stopping": "#ff6e40",
    "stopped": "#37474f",
    "unknown": "#6b7c8f",
}
MONO = "JetBrains Mono, Fira Code, Menlo, Consolas, monospace"


def _register() -> None:
    axis = {
        "gridcolor": GRID,
        "zerolinecolor": GRID,
        "linecolor": GRID,
        "tickfont": {"color": MUTED},
        "title": {"font": {"color": MUTED}},
    }
    pio.templates[TEMPLATE] = go.layout.Template(
        layout={
            "paper_bgcolor": BG,
            "plot_bgcolor": PANEL,
            "font": {"family": MONO, "color": TEXT, "size": 12},
            "colorway": list(PALETTE),
            "xaxis": axis,
            "yaxis": axis,
            "legend": {"bgcolor": "rgba(0,0,0,0)", "font": {"color": TEXT}},
            "margin": {"l": 56, "r": 16, "t": 48, "b": 40},
            "title": {"font": {"color": ACCENT, "size": 14}, "x": 0.01},
            "hoverlabel": {"bgcolor": PANEL, "font": {"family": MONO}},
        }
    )


_register()


def plot_text(value: object) -> str:
    """Text from the fleet (model ids, host names, run labels) made safe for a Plotly title, legend, tick or
    hover label: Plotly reads ``<b>``-style tags and ``&…;`` entities there, and ``%{…}`` in hover templates."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("%", "&#37;")


def pad_single_x(fig: go.Figure, xs: Sequence[Any], pad: timedelta) -> None:
    """A time axis with one distinct x gets ``±pad`` around it: Plotly would zoom into a microsecond and
    print ticks like ``23:59:59.9996``."""
    distinct = {x for x in xs if x is not None}
    if len(distinct) == 1:
        (x,) = distinct
        fig.update_xaxes(type="date", range=[_iso(x - pad), _iso(x + pad)])


def _iso(t: Any) -> str:
    """A datetime as Plotly's axis wants it (UTC wall time, no offset; the axes are titled UTC)."""
    if isinstance(t, datetime) and t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return str(t.isoformat(sep=" "))


def _empty(title: str, message: str = "no data in this window") -> go.Figure:
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 280})
    fig.add_annotation(
        text=message,
        showarrow=False,
        font={"color": MUTED, "size": 14},
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def speed_histogram(
    bins: pl.DataFrame, stats: Mapping[str, Any] | None, title: str, unit: str = "tok/s"
) -> go.Figure:
    """Bars from `warehouse.queries.activity.speed_histogram`, with p50/p95/p99 marked."""
    if bins.height == 0:
        return _empty(title)
    starts, ends = bins["bin_start"].to_list(), bins["bin_end"].to_list()
    centers = [(a + b) / 2 for a, b in zip(starts, ends, strict=True)]
    # every request at one speed: one bin of width 0; draw it 10 % of its value wide (Plotly would zoom
    # into a billionth of a tok/s)
    single = max(abs(centers[0]) * 0.1, 1.0) if len(centers) == 1 and starts[0] == ends[0] else None
    widths = [single or max(b - a, 1e-9) * 0.95 for a, b in zip(starts, ends, strict=True)]
    labels = [f"{a:,.1f}–{b:,.1f} {unit}" for a, b in zip(starts, ends, strict=True)]
    fig = go.Figure(
        go.Bar(
            x=centers,
            y=bins["count"].to_list(),
            width=widths,
            customdata=labels,
            marker_color=ACCENT,
            showlegend=False,
            hovertemplate="%{customdata}<br>%{y} requests<extra></extra>",
        ),
        layout={"template": TEMPLATE, "title": title, "height": 300, "bargap": 0.05},
    )
    if stats:  # percentiles as dashed lines, labelled in the legend (labels on the plot collide)
        for name, color in (("p50", "#76ff03"), ("p95", "#ffb300"), ("p99", "#ff4081")):
            v = stats.get(name)
            if v is not None:
                fig.add_vline(x=v, line={"color": color, "dash": "dash", "width": 1.5})
                fig.add_trace(
                    go.Scatter(
                        x=[None],
                        y=[None],
                        mode="lines",
                        name=f"{name} {v:,.1f} {unit}",
                        line={"color": color, "dash": "dash"},
                    )
                )
        fig.update_layout(showlegend=True, legend={"x": 1, "xanchor": "right", "y": 1})
    fig.update_xaxes(title=f"speed ({unit})")
    if single:
        fig.update_xaxes(range=[centers[0] - 2 * single, centers[0] + 2 * single])
    fig.update_yaxes(title="requests")
    return fig


DASHES = ("solid", "dot", "dash", "dashdot", "longdash")


def host_color(provider_id: str, hosts: Sequence[str]) -> str:
    """A host keeps its colour across every chart of a page (by its position among the hosts shown)."""
    ordered = sorted(set(hosts))
    return PALETTE[ordered.index(provider_id) % len(PALETTE)] if provider_id in ordered else MUTED


def time_series(
    df: pl.DataFrame,
    y: str,
    title: str,
    unit: str,
    series: str = "provider_id",
    x: str = "t",
    y_range: Sequence[float] | None = None,
    scale: float = 1.0,
    simulated: Collection[str] = (),
) -> go.Figure:
    """One line per ``series`` value (hosts overlaid) of column ``y`` (times ``scale``) over time.

    Lines are coloured by host (``provider_id``), so a host has the same colour on every chart; several
    GPUs of one host differ by dash style. A line of a host in ``simulated`` (the demo fleet: synthetic
    readings) is named ``… (simulated)``, and the legend is then shown even for a single line.
    """
    if df.height == 0:
        return _empty(title)
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 300, "hovermode": "x unified"})
    hosts = df["provider_id"].unique().to_list() if "provider_id" in df.columns else []
    seen: dict[str, int] = {}
    for part in df.partition_by(series, maintain_order=True):
        raw = str(part[series][0])
        host = str(part["provider_id"][0]) if "provider_id" in part.columns else raw
        name = plot_text(raw + (" (simulated)" if host in simulated else ""))
        dash = DASHES[seen.get(host, 0) % len(DASHES)]
        seen[host] = seen.get(host, 0) + 1
        values = [None if v is None else v * scale for v in part[y].to_list()]
        fig.add_trace(
            go.Scattergl(
                x=part[x].to_list(),
                y=values,
                name=name,
                mode="lines",
                line={"color": host_color(host, hosts) if hosts else None, "dash": dash},
                hovertemplate=f"%{{y:,.1f}} {unit}<extra>{name}</extra>",
            )
        )
    fig.update_yaxes(title=unit, range=list(y_range) if y_range else None)
    fig.update_xaxes(title="time (UTC)")
    if simulated and set(simulated) & set(hosts or df[series].cast(pl.Utf8).to_list()):
        fig.update_layout(showlegend=True)
    pad_single_x(fig, df[x].to_list(), timedelta(minutes=5))
    return fig


def state_timeline(df: pl.DataFrame, title: str) -> go.Figure:
    """Horizontal state bars from `warehouse.queries.models.state_timeline` (one row: the model)."""
    title = plot_text(title)
    if df.height == 0:
        return _empty(title, "no state changes recorded in this window")
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 200, "barmode": "overlay"})
    for state, part in df.group_by("state", maintain_order=True):
        name = plot_text(state[0])
        starts, ends = part["since"].to_list(), part["until"].to_list()
        dur_ms = [(b - a).total_seconds() * 1000 for a, b in zip(starts, ends, strict=True)]
        fig.add_trace(
            go.Bar(
                y=["state"] * part.height,
                x=dur_ms,
                base=starts,
                orientation="h",
                name=name,
                marker_color=STATE_COLORS.get(name, MUTED),
                customdata=[[a.isoformat(), b.isoformat()] for a, b in zip(starts, ends, strict=True)],
                hovertemplate=f"{name}<br>%{{customdata[0]}} → %{{customdata[1]}}<extra></extra>",
            )
        )
    fig.update_xaxes(type="date", title="time (UTC)")
    fig.update_yaxes(visible=False)
    return fig


def load_times(df: pl.DataFrame, title: str) -> go.Figure:
    """Load time (s) of each timed load from `warehouse.queries.models.model_loads`."""
    title = plot_text(title)
    timed = df.filter(pl.col("load_ms").is_not_null())
    if timed.height == 0:
        return _empty(title, "no timed loads (starting → ready) recorded")
    fig = go.Figure(
        go.Scatter(
            x=timed["ready_at"].to_list(),
            y=[v / 1000 for v in timed["load_ms"].to_list()],
            mode="markers+lines",
            marker={"color": ACCENT, "size": 8},
            hovertemplate="%{y:,.2f} s<extra></extra>",
        ),
        layout={"template": TEMPLATE, "title": title, "height": 260},
    )
    fig.update_yaxes(title="load time (s)", rangemode="tozero")
    fig.update_xaxes(title="ready at (UTC)")
    pad_single_x(fig, timed["ready_at"].to_list(), timedelta(hours=1))
    return fig
