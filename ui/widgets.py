"""Shared Streamlit widgets: page chrome, pickers, tables and tiles. Data comes in as arguments."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import streamlit as st

from ui import data
from ui import format as fmt

if TYPE_CHECKING:
    import plotly.graph_objects as go

WINDOWS: dict[str, timedelta] = {
    "15 min": timedelta(minutes=15),
    "1 hour": timedelta(hours=1),
    "6 hours": timedelta(hours=6),
    "24 hours": timedelta(hours=24),
    "7 days": timedelta(days=7),
    "30 days": timedelta(days=30),
}

_CSS = """
<style>
[data-testid="stMetricValue"] { font-family: "JetBrains Mono", "Fira Code", Menlo, monospace; color: #00e5ff;
  font-size: 1.5rem; }
[data-testid="stMetricLabel"] { text-transform: uppercase; letter-spacing: .08em; color: #6b7c8f; }
[data-testid="stMetricValue"] *, [data-testid="stMetricLabel"] * { white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; overflow-wrap: anywhere; }
[data-testid="stMetric"] { background: #111821; border: 1px solid #1f2a36; border-radius: 6px; padding: .5rem .75rem; }
h1, h2, h3 { letter-spacing: .04em; }
</style>
"""


def page_setup(title: str, icon: str) -> None:
    """Page config, the mission-control styling and the page title (call first on every page)."""
    st.set_page_config(page_title=f"BooControl · {title}", page_icon=icon, layout="wide")
    st.html(_CSS)
    st.title(f"{icon} {title}")


def chart(fig: go.Figure, key: str | None = None) -> None:
    """A Plotly figure with our own template (``theme=None`` keeps Streamlit from restyling it)."""
    st.plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})


def window_picker(
    key: str, default: str = "24 hours", now: datetime | None = None, options: Sequence[str] = tuple(WINDOWS)
) -> tuple[datetime, datetime]:
    """A time window ending now: (start, end)."""
    return window_bounds(window_choice(key, default, options), now)


def window_choice(key: str, default: str = "24 hours", options: Sequence[str] = tuple(WINDOWS)) -> str:
    """Only the picker (a label of `WINDOWS`): a refreshing fragment turns it into bounds on every run."""
    label: str = st.selectbox("Window", list(options), index=list(options).index(default), key=key)
    return label


def window_bounds(label: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The window ``label`` ending now (5 s ahead, so what lands this second is in it): (start, end)."""
    end = (now or data.now()) + timedelta(seconds=5)
    return end - WINDOWS[label], end


def simulated_hosts(providers: pl.DataFrame) -> frozenset[str]:
    """Providers that are simulated hosts (the demo fleet), from `data.providers()`: every number of theirs is
    labelled "(simulated)" where it is drawn."""
    if "simulated" not in providers.columns:
        return frozenset()
    return frozenset(providers.filter(pl.col("simulated").fill_null(False))["provider_id"].to_list())


def provider_picker(
    providers: pl.DataFrame,
    key: str,
    multi: bool = True,
    default_max: int | None = None,
    label: str = "Providers",
) -> tuple[str, ...]:
    ids = providers["provider_id"].to_list()
    labels = dict(zip(ids, providers["label"].to_list(), strict=True))
    status = dict(zip(ids, providers["status"].to_list(), strict=True))
    simulated = set(providers.filter(pl.col("simulated"))["provider_id"]) if "simulated" in providers.columns else set()

    def show(pid: str) -> str:  # a simulated host (the demo fleet) says so wherever it is picked
        sim = " (simulated)" if pid in simulated else ""
        return f"{fmt.STATUS_ICONS.get(status.get(pid, 'unknown'), '⚪')} {pid} · {labels.get(pid, pid)}{sim}"

    if multi:
        default = ids[:default_max] if default_max else []
        return tuple(st.multiselect(label, ids, default=default, format_func=show, key=key))
    if not ids:
        return ()
    chosen = st.selectbox(label, ids, format_func=show, key=key)
    return (chosen,) if chosen else ()


# --- Fleet ---------------------------------------------------------------------------------------


def simulated_suffix(simulated: int, total: int) -> str:
    """What a fleet-wide figure says when simulated hosts (the demo fleet) count in it."""
    if not simulated or not total:
        return ""
    return " (simulated)" if simulated >= total else f" (incl. {simulated} simulated)"


SIMULATED_HELP = "Simulated hosts (the demo fleet) count in this figure: their GPUs, power and speeds are synthetic."


def fleet_metrics(summary: dict[str, Any]) -> None:
    cols = st.columns(6)
    cols[0].metric("Providers online", f"{summary['online']} / {summary['providers']}")
    cols[1].metric("Models loaded", fmt.count(summary["models_loaded"]))
    cols[2].metric("In flight", fmt.count(summary["inflight"], "req"))
    sim = simulated_suffix(int(summary.get("simulated_gpus") or 0), int(summary["gpus"] or 0))
    helptext = SIMULATED_HELP if sim else None
    cols[3].metric("GPUs" + sim, fmt.count(summary["gpus"]), help=helptext)
    cols[4].metric("GPU power now" + sim, fmt.watts(summary["gpu_power_w"]), help=helptext)
    cols[5].metric("Hottest GPU" + sim, fmt.celsius(summary["hottest_gpu_c"]) if summary["gpus"] else fmt.DASH,
                   help=helptext)  # fmt: skip


def fleet_table(board: pl.DataFrame) -> None:
    """One row per provider: health, version, uptime, models, in-flight, GPU and host now + sparklines."""
    if board.height == 0:
        st.info("No providers yet. Add them to the fleet file and start `boocontrol up`.")
        return
    icons = [fmt.STATUS_ICONS.get(s, "⚪") + " " + s for s in board["status"].to_list()]
    df = board.with_columns(
        pl.Series("status", icons),
        # a simulated host (the demo fleet) says so where its version and numbers appear
        pl.when(pl.col("simulated").fill_null(False))
        .then(pl.format("{} (simulated)", pl.col("version").fill_null(fmt.DASH)))
        .otherwise(pl.col("version"))
        .alias("version"),
        pl.col("uptime_s").map_elements(fmt.duration, return_dtype=pl.Utf8, skip_nulls=False).alias("uptime"),
        pl.when(pl.col("gpu_stale")).then(None).otherwise(pl.col("gpu_temp_c")).alias("gpu_temp_c"),
        pl.when(pl.col("gpu_stale")).then(None).otherwise(pl.col("gpu_util_pct")).alias("gpu_util_pct"),
        pl.when(pl.col("gpu_stale")).then(None).otherwise(pl.col("gpu_power_w")).alias("gpu_power_w"),
        pl.when(pl.col("gpu_stale"))
        .then(None)
        .otherwise(100 * pl.col("vram_used_mb") / pl.col("vram_total_mb"))
        .alias("vram_pct"),
        pl.when(pl.col("gpu_stale") | pl.col("vram_total_mb").is_null())
        .then(None)
        .otherwise(
            pl.format(
                "{} / {} GiB",
                (pl.col("vram_used_mb") / 1024).round(1),
                (pl.col("vram_total_mb") / 1024).round(1),
            )
        )
        .alias("vram"),
        pl.when(pl.col("perf_stale")).then(None).otherwise(pl.col("cpu_util_pct")).alias("cpu_util_pct"),
        pl.when(pl.col("perf_stale"))
        .then(None)
        .otherwise(100 * pl.col("mem_used_mb") / pl.col("mem_total_mb"))
        .alias("mem_pct"),
        # what the In flight tile sums: a provider not connected has no requests we know of in flight
        pl.when(pl.col("status") == "connected").then(pl.col("inflight").fill_null(0)).otherwise(0).alias("inflight"),
    )
    cc = st.column_config
    shown = [
        "provider_id",
        "status",
        "version",
        "uptime",
        "boots",
        "gaps_recent",
        "loaded_models",
        "inflight",
        "gpu_temp_c",
        "gpu_util_pct",
        "gpu_util_spark",
        "vram",
        "vram_pct",
        "gpu_power_w",
        "cpu_util_pct",
        "cpu_spark",
        "mem_pct",
        "mem_spark",
        "last_error",
    ]
    st.dataframe(
        fleet_rows_for_people(df.select(shown)),  # only what is shown goes to the browser
        hide_index=True,
        column_order=shown,
        column_config={
            "provider_id": cc.TextColumn("Provider", pinned=True),
            "status": cc.TextColumn("Connection"),
            "version": cc.TextColumn("llama-swap"),
            "uptime": cc.TextColumn("Uptime"),
            "boots": cc.NumberColumn("Boots", format="%d"),
            "gaps_recent": cc.NumberColumn(
                "Gaps 24 h",
                format="%d",
                help="gaps detected in the last 24 h: rows that may be missing (Activity page, Gaps)",
            ),
            "loaded_models": cc.TextColumn("Loaded models", width="medium"),
            "inflight": cc.NumberColumn("In flight", format="%d req"),
            "gpu_temp_c": cc.TextColumn("GPU temp"),
            "gpu_util_pct": cc.TextColumn("GPU util"),
            "gpu_util_spark": cc.LineChartColumn("GPU util 1 h", y_min=0, y_max=100),
            "vram": cc.TextColumn("VRAM"),
            "vram_pct": cc.ProgressColumn("VRAM used", format="%.0f %%", min_value=0, max_value=100),
            "gpu_power_w": cc.TextColumn("GPU power"),
            "cpu_util_pct": cc.TextColumn("CPU"),
            "cpu_spark": cc.LineChartColumn("CPU 1 h", y_min=0, y_max=100),
            "mem_pct": cc.TextColumn("RAM"),
            "mem_spark": cc.LineChartColumn("RAM 1 h", y_min=0, y_max=100),
            "last_error": cc.TextColumn("Last error", width="medium"),
        },
        key="fleet_table",
    )


def fleet_rows_for_people(df: pl.DataFrame) -> pl.DataFrame:
    """No cell of the board reads "None": a missing reading is "—" (as text with its unit), a missing text
    is "—", no error is empty."""
    text = {"gpu_temp_c": fmt.celsius, "gpu_util_pct": fmt.pct, "gpu_power_w": fmt.watts,
            "cpu_util_pct": fmt.pct, "mem_pct": fmt.pct}  # fmt: skip
    return df.with_columns(
        *(
            pl.col(c).map_elements(f, return_dtype=pl.Utf8, skip_nulls=False)
            for c, f in text.items()
            if c in df.columns
        ),
        *(
            pl.col(c).fill_null(fmt.DASH)
            for c in ("version", "uptime", "loaded_models", "vram")
            if c in df.columns
        ),
        *(pl.col(c).fill_null("") for c in ("last_error",) if c in df.columns),
    )


def _spark(values: Any) -> list[float] | None:
    if values is None:
        return None
    out = [float(v) for v in values if v is not None]
    return out or None


def provider_tiles(
    row: dict[str, Any], gpus: pl.DataFrame, gpu_series: pl.DataFrame, now: datetime, inflight: int | None = None
) -> None:
    """Live tiles of one provider: connection, host CPU/RAM and every GPU, each with a 1-hour sparkline.

    ``inflight`` is the row count of the in-flight table shown beside the tiles (the tile must count what
    the table lists); None falls back to the board's count."""
    status = row["status"]
    head = st.columns(4)
    head[0].metric(
        "Connection",
        f"{fmt.STATUS_ICONS.get(status, '⚪')} {status}",
        help=fmt.md(row["last_error"]) if row.get("last_error") else None,
    )
    sim = " (simulated)" if row.get("simulated") else ""  # the demo fleet: hardware, speeds and power are synthetic
    head[1].metric("llama-swap" + sim, row.get("version") or fmt.DASH,
                   help="A simulated host (the demo fleet): its hardware, speeds and power are synthetic." if sim
                   else None)
    head[2].metric(
        "Uptime", fmt.duration(row.get("uptime_s")), help=f"{row.get('boots') or 0} boots recorded"
    )
    head[3].metric("In flight", fmt.count((row.get("inflight") or 0) if inflight is None else inflight, "req"))
    if row.get("last_error"):
        st.caption(f"Last error ({fmt.ago(row.get('last_error_at'), now)}): {fmt.md(row['last_error'])}")
    host = st.columns(3)
    stale = sim + (" (stale)" if row.get("perf_stale") else "")
    host[0].metric(
        "CPU" + stale,
        fmt.pct(row.get("cpu_util_pct")),
        chart_data=_spark(row.get("cpu_spark")),
        chart_type="area",
    )
    host[1].metric(
        f"RAM of {fmt.mib(row.get('mem_total_mb'))}" + stale,
        fmt.mib(row.get("mem_used_mb")),
        chart_data=_spark(row.get("mem_spark")),
        chart_type="area",
        help=fmt.used_of(row.get("mem_used_mb"), row.get("mem_total_mb")),
    )
    host[2].metric("Load (1 min)" + sim, "—" if row.get("load_avg_1") is None else f"{row['load_avg_1']:.2f}")
    for g in gpus.to_dicts():
        series = gpu_series.filter(pl.col("gpu_key") == g["gpu_key"])
        age = (now - g["sampled_at"]).total_seconds()
        label = f"GPU {g['gpu_index']} · {g['name']}{sim}" + (
            f" (last sample {fmt.duration(age)} ago)" if age > 120 else ""
        )
        st.markdown(f"**{fmt.md(label)}**")
        cols = st.columns(4)
        cols[0].metric("Temperature", fmt.celsius(g["temp_c"]), chart_data=_spark(series["temp_c"].to_list()))
        cols[1].metric(
            f"VRAM of {fmt.mib(g['mem_total_mb'])}",
            fmt.mib(g["mem_used_mb"]),
            chart_data=_spark(series["mem_used_mb"].to_list()),
            help=fmt.used_of(g["mem_used_mb"], g["mem_total_mb"]),
        )
        cols[2].metric("Utilisation", fmt.pct(g["util_pct"]), chart_data=_spark(series["util_pct"].to_list()))
        cols[3].metric("Power", fmt.watts(g["power_w"]), chart_data=_spark(series["power_w"].to_list()))


# --- Tables --------------------------------------------------------------------------------------


ACTIVITY_COLUMNS = [
    "finished_at",
    "provider_id",
    "model_id",
    "status_code",
    "error_msg",
    "req_path",
    "input_tokens",
    "output_tokens",
    "cache_tokens",
    "prompt_tps",
    "gen_tps",
    "duration_ms",
    "upstream_id",
    "has_capture",
    "capture_stored",
]


def activity_rows_for_people(rows: pl.DataFrame, simulated: Collection[str] = ()) -> pl.DataFrame:
    """The shown activity columns with no empty cell drawn as "None": a request without an error has an
    empty Error, an unreported speed or cache count reads "—" (as text with its unit). A request served by a
    simulated host (``simulated``: the demo fleet) says so in its Provider cell: its speeds are synthetic. A canary
    probe's row (``probe``) says so in its Path cell: it is not a user's request."""
    if "probe" in rows.columns:
        rows = rows.with_columns(
            pl.when(pl.col("probe").fill_null(False))
            .then(pl.format("{} (canary probe)", pl.col("req_path")))
            .otherwise(pl.col("req_path"))
            .alias("req_path")
        )
    return rows.select(ACTIVITY_COLUMNS).with_columns(
        pl.when(pl.col("provider_id").is_in(list(simulated)))
        .then(pl.format("{} (simulated)", pl.col("provider_id")))
        .otherwise(pl.col("provider_id"))
        .alias("provider_id"),
        pl.col("error_msg").fill_null(""),
        pl.col("cache_tokens").map_elements(
            lambda v: fmt.count(v, "tok"), return_dtype=pl.Utf8, skip_nulls=False
        ),
        pl.col("prompt_tps").map_elements(fmt.tps, return_dtype=pl.Utf8, skip_nulls=False),
        pl.col("gen_tps").map_elements(fmt.tps, return_dtype=pl.Utf8, skip_nulls=False),
    )


def activity_table(rows: pl.DataFrame, simulated: Collection[str] = ()) -> None:
    """Requests, newest first; a failed request's error message right after its status; a simulated host's
    requests labelled."""
    cc = st.column_config
    st.dataframe(
        activity_rows_for_people(rows, simulated),
        hide_index=True,
        column_order=ACTIVITY_COLUMNS,
        column_config={
            "finished_at": cc.DatetimeColumn("Finished (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "provider_id": cc.TextColumn("Provider"),
            "model_id": cc.TextColumn("Model"),
            "status_code": cc.NumberColumn("Status", format="%d"),
            "error_msg": cc.TextColumn("Error", width="medium"),
            "req_path": cc.TextColumn("Path"),
            "input_tokens": cc.NumberColumn("Prompt", format="%d tok"),
            "output_tokens": cc.NumberColumn("Generated", format="%d tok"),
            "cache_tokens": cc.TextColumn("Cached"),
            "prompt_tps": cc.TextColumn("Prompt speed"),
            "gen_tps": cc.TextColumn("Gen speed"),
            "duration_ms": cc.NumberColumn("Duration", format="%d ms"),
            "upstream_id": cc.NumberColumn("Id", format="%d"),
            "has_capture": cc.CheckboxColumn("On host"),
            "capture_stored": cc.CheckboxColumn("Stored"),
        },
        key="activity_table",
    )


def speed_metrics(stats: pl.DataFrame, simulated: Collection[str] = ()) -> None:
    """Speed percentiles of the requests matched; ``simulated``: the simulated hosts among them (said first)."""
    if simulated:
        st.caption(f"Includes requests served by simulated hosts ({fmt.md(', '.join(sorted(simulated)))}: the "
                   "demo fleet): their speeds are synthetic.")  # fmt: skip
    rows = {r["metric"]: r for r in stats.to_dicts()}
    for metric, title in (("prompt", "Prompt"), ("generation", "Generation")):
        r = rows.get(metric, {})
        cols = st.columns(4)
        cols[0].metric(
            f"{title} requests", fmt.count(r.get("n", 0)), help="requests that reported this speed"
        )
        for col, p in zip(cols[1:], ("p50", "p95", "p99"), strict=True):
            col.metric(f"{title} {p}", fmt.tps(r.get(p)))


def action_log_table(log: pl.DataFrame) -> None:
    df = log.with_columns(
        pl.col("status").map_elements(lambda s: f"{fmt.ACTION_ICONS.get(s, '')} {s}", return_dtype=pl.Utf8)
    )
    cc = st.column_config
    st.dataframe(
        df,
        hide_index=True,
        column_order=[
            "id",
            "provider_id",
            "action",
            "target",
            "status",
            "requested_at",
            "wait_ms",
            "run_ms",
            "error",
            "result",
        ],
        column_config={
            "id": cc.NumberColumn("#", format="%d"),
            "provider_id": cc.TextColumn("Provider"),
            "action": cc.TextColumn("Action"),
            "target": cc.TextColumn("Target"),
            "status": cc.TextColumn("Status"),
            "requested_at": cc.DatetimeColumn("Requested (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "wait_ms": cc.NumberColumn("Waited", format="%.0f ms"),
            "run_ms": cc.NumberColumn("Ran", format="%.0f ms"),
            "error": cc.TextColumn("Error", width="large"),
            "result": cc.TextColumn("Result"),
        },
        key="action_log_table",
    )


def inflight_table(rows: pl.DataFrame) -> None:
    cc = st.column_config
    st.dataframe(
        rows,
        hide_index=True,
        column_order=[
            "request_id",
            "model_id",
            "method",
            "req_path",
            "elapsed_ms",
            "resp_bytes",
            "observed_at",
        ],
        column_config={
            "request_id": cc.TextColumn("Id"),
            "model_id": cc.TextColumn("Model"),
            "method": cc.TextColumn("Method"),
            "req_path": cc.TextColumn("Path"),
            "elapsed_ms": cc.NumberColumn("Elapsed", format="%d ms"),
            "resp_bytes": cc.NumberColumn("Sent", format="%d B"),
            "observed_at": cc.DatetimeColumn("Snapshot (UTC)", format="HH:mm:ss"),
        },
        key="inflight_table",
    )
