"""reports.figures: one template, units on axes, percentiles in the legend, one colour per host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import plotly.io as pio
import polars as pl
import pytest

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


HOSTILE = 'bad"name<b>%{y}&amp;'
ESCAPED = 'bad"name&lt;b&gt;&#37;{y}&amp;amp;'


def test_fleet_names_are_escaped_in_every_figure() -> None:
    from reports import bench_figures, digest_figures

    assert figures.plot_text(HOSTILE) == ESCAPED
    series = pl.DataFrame(
        {"provider_id": [HOSTILE] * 2, "t": [T, T + timedelta(minutes=1)], "cpu": [1.0, 2.0]}
    )
    ts = figures.time_series(series, "cpu", "CPU", "%")
    assert ts.data[0].name == ESCAPED and ESCAPED in ts.data[0].hovertemplate
    tl = pl.DataFrame({"state": ["ready"], "since": [T], "until": [T + timedelta(minutes=1)]})
    assert figures.state_timeline(tl, f"p/{HOSTILE} — state").layout.title.text == f"p/{ESCAPED} — state"
    usage = pl.DataFrame(
        {
            "provider_id": ["p"],
            "model_id": [HOSTILE],
            "input_tokens": [1],
            "cache_tokens": [0],
            "output_tokens": [2],
        }
    )
    assert list(digest_figures.tokens_by_model(usage).data[0].y) == [f"p/{ESCAPED}"]
    hourly = pl.DataFrame({"bucket_start": [T], "provider_id": [HOSTILE], "requests": [3]})
    assert digest_figures.requests_by_hour(hourly).data[0].name == ESCAPED
    points = pl.DataFrame(
        {"run_id": [1], "run_label": [HOSTILE], "mode": ["concurrency"], "level": [1.0], "tpot_p50_ms": [5.0],
         "saturated": [False], "saturation_reason": [None]}
    )  # fmt: skip
    curve = bench_figures.sweep_curves(points, "tpot_p50_ms", "concurrency")
    assert curve.data[0].name == ESCAPED and HOSTILE not in curve.data[0].hovertemplate


def test_one_point_gets_a_sane_time_axis() -> None:
    """One load, one sample, one hour: the axis spans a readable range around it (Plotly alone zooms into
    a microsecond: ticks like 23:59:59.9996)."""
    loads = pl.DataFrame({"ready_at": [T], "load_ms": [3000]})
    assert list(figures.load_times(loads, "Load times").layout.xaxis.range) == [
        "2026-11-19 23:00:00",
        "2026-11-20 01:00:00",
    ]
    one = pl.DataFrame({"provider_id": ["a"], "t": [T], "cpu": [5.0]})
    assert list(figures.time_series(one, "cpu", "CPU", "%").layout.xaxis.range) == [
        "2026-11-19 23:55:00",
        "2026-11-20 00:05:00",
    ]
    two = pl.DataFrame({"provider_id": ["a", "a"], "t": [T, T + timedelta(minutes=1)], "cpu": [5.0, 6.0]})
    assert figures.time_series(two, "cpu", "CPU", "%").layout.xaxis.range is None  # Plotly's autorange


def test_digest_and_trend_figures_use_the_app_theme_and_category_periods() -> None:
    from datetime import date

    from reports import digest_figures

    hourly = pl.DataFrame({"bucket_start": [T], "provider_id": ["p"], "requests": [3]})
    fig = digest_figures.requests_by_hour(hourly)
    assert fig.layout.template.layout.paper_bgcolor == figures.BG
    assert list(fig.data[0].x) == [T + timedelta(minutes=30)] and fig.data[0].width == 3_240_000
    assert list(fig.layout.xaxis.range) == ["2026-11-19 22:30:00", "2026-11-20 02:30:00"]
    usage = pl.DataFrame(
        {"period": [date(2026, 3, 2)], "provider_id": ["p"], "output_tokens": [5], "requests": [2]}
    )
    trend = digest_figures.usage_trend(usage)
    assert trend.layout.xaxis.type == "category" and list(trend.data[0].x) == ["2026-03-02"]
    assert trend.layout.template.layout.paper_bgcolor == figures.BG


def test_histogram_of_one_speed_has_a_readable_axis() -> None:
    one = pl.DataFrame({"bin": [1], "bin_start": [42.0], "bin_end": [42.0], "count": [7]})
    fig = figures.speed_histogram(one, {"p50": 42.0}, "Gen")
    assert fig.data[0].width == (pytest.approx(4.2),)
    assert list(fig.layout.xaxis.range) == [pytest.approx(33.6), pytest.approx(50.4)]
