"""reports.figures: one template, units on axes, percentiles in the legend, one colour per host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import plotly.io as pio
import polars as pl

from reports import figures

T = datetime(2026, 11, 20, tzinfo=UTC)


def test_template_is_registered_and_used() -> None:
    assert figures.TEMPLATE in pio.templates
    bins = pl.DataFrame({"bin": [1, 2], "bin_start": [10.0, 20.0], "bin_end": [20.0, 30.0], "count": [3, 1]})
    fig = figures.speed_histogram(bins, {"p50": 15.0, "p95": 28.0, "p99": None}, "Gen")
    assert fig.layout.template.layout.paper_bgcolor == figures.BG
    assert fig.layout.xaxis.title.text == "speed (tok/s)"
    names = [t.name for t in fig.data if t.name]
    assert names == ["p50 15.0 tok/s", "p95 28.0 tok/s"]  # p99 unknown: no line
    assert list(fig.data[0].y) == [3, 1]


def test_time_series_keeps_host_colours_and_scales() -> None:
    df = pl.DataFrame(
        {
            "provider_id": ["b", "b", "a", "a", "a", "a"],
            "series": ["b", "b", "a/gpu0", "a/gpu0", "a/gpu1", "a/gpu1"],
            "t": [T, T + timedelta(minutes=1)] * 3,
            "mem_used_mb": [1024.0, 2048.0, 512.0, 512.0, 0.0, None],
        }
    )
    fig = figures.time_series(df, "mem_used_mb", "VRAM", "GiB", series="series", scale=1 / 1024)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["b"].y) == [1.0, 2.0] and list(by_name["a/gpu1"].y) == [0.0, None]
    assert by_name["a/gpu0"].line.color == by_name["a/gpu1"].line.color == figures.PALETTE[0]
    assert by_name["b"].line.color == figures.PALETTE[1]
    assert by_name["a/gpu0"].line.dash != by_name["a/gpu1"].line.dash
    assert fig.layout.yaxis.title.text == "GiB"


def test_empty_frames_give_a_labelled_empty_chart() -> None:
    empty = pl.DataFrame(
        schema={"provider_id": pl.Utf8, "t": pl.Datetime("us", "UTC"), "cpu_pct": pl.Float64}
    )
    fig = figures.time_series(empty, "cpu_pct", "CPU", "%")
    assert fig.layout.annotations[0].text == "no data in this window"
    tl = figures.state_timeline(
        pl.DataFrame(
            schema={"state": pl.Utf8, "since": pl.Datetime("us", "UTC"), "until": pl.Datetime("us", "UTC")}
        ),
        "x",
    )
    assert "no state changes" in tl.layout.annotations[0].text


def test_state_timeline_bars() -> None:
    df = pl.DataFrame(
        {
            "state": ["ready", "stopped", "ready"],
            "since": [T, T + timedelta(minutes=5), T + timedelta(minutes=10)],
            "until": [T + timedelta(minutes=5), T + timedelta(minutes=10), T + timedelta(minutes=12)],
        }
    )
    fig = figures.state_timeline(df, "m")
    ready = next(t for t in fig.data if t.name == "ready")
    assert list(ready.x) == [300_000.0, 120_000.0] and ready.marker.color == figures.STATE_COLORS["ready"]
