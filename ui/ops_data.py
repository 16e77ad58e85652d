"""Cached data for the operating pages (Thrash, Alerts) and the Fleet page's canary lights.

Reads through ``engines.thrash`` and ``warehouse.queries.canaries`` / ``alerts``; results are turned into
frames here so the pages only draw. Cached for 30 s (thrash) or 10 s (alerts, lights); arguments are plain
values so they hash.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from engines.alerts import Policy
from engines.thrash import thrash_report
from ui import data
from warehouse.queries import alerts as q_alerts
from warehouse.queries import canaries as q_canaries

DEFAULT_SLO_MS = Policy().canary_ttft_slo_ms  # the lights' TTFT bar: the alert rule's default SLO
LIGHT_ICONS = {"green": "🟢", "amber": "🟠", "red": "🔴", "grey": "⚪"}

_LOADS: dict[str, Any] = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "started_at": pl.Datetime("us", "UTC"),
          "load_s": pl.Float64, "failed": pl.Boolean, "evicted": pl.Utf8, "trigger": pl.Utf8, "consumer": pl.Utf8}


@st.cache_data(ttl=30, show_spinner=False)
def thrash(start: datetime, end: datetime) -> dict[str, pl.DataFrame]:
    """The thrash report of ``[start, end)`` as frames: hosts, pairs, consumers, hourly, loads."""
    rep = thrash_report(data.engine(), start, end)
    hosts = pl.DataFrame([asdict(h) for h in rep.hosts]) if rep.hosts else pl.DataFrame(
        schema={"provider_id": pl.Utf8, "loads": pl.Int64, "failed_loads": pl.Int64, "loads_per_hour": pl.Float64,
                "loading_s": pl.Float64, "serving_s": pl.Float64, "loading_share": pl.Float64,
                "gpu_s_lost": pl.Float64, "gpu_s_lost_estimated": pl.Float64, "evictions": pl.Int64})
    pairs = pl.DataFrame([asdict(p) for p in rep.pairs]) if rep.pairs else pl.DataFrame(
        schema={"provider_id": pl.Utf8, "model_a": pl.Utf8, "model_b": pl.Utf8, "a_evicted_b": pl.Int64,
                "b_evicted_a": pl.Int64, "reversals": pl.Int64, "gpu_s_lost": pl.Float64,
                "last_at": pl.Datetime("us", "UTC")})
    consumers = pl.DataFrame(rep.consumers, schema={"consumer": pl.Utf8, "loads": pl.Int64, "gpu_s_lost": pl.Float64},
                             orient="row")
    hourly = pl.DataFrame(rep.hourly, schema={"provider_id": pl.Utf8, "hour": pl.Datetime("us", "UTC"),
                                              "loads": pl.Int64}, orient="row")
    loads = pl.DataFrame(
        [(ld.provider_id, ld.model_id, ld.started_at, ld.load_s, ld.failed, ", ".join(ld.evicted), ld.trigger,
          ld.consumer) for ld in reversed(rep.loads)], schema=_LOADS, orient="row")
    return {"hosts": hosts, "pairs": pairs, "consumers": consumers, "hourly": hourly, "loads": loads}


def loads_per_hour_figure(hourly: pl.DataFrame) -> go.Figure:
    """Loads per hour, one bar series per host."""
    fig = go.Figure()
    for pid in sorted(set(hourly["provider_id"].to_list())):
        part = hourly.filter(pl.col("provider_id") == pid)
        fig.add_bar(x=part["hour"].to_list(), y=part["loads"].to_list(), name=pid)
    fig.update_layout(barmode="stack", height=300, margin={"l": 40, "r": 10, "t": 30, "b": 30},
                      title="Model loads per hour", yaxis_title="loads")
    return fig


@st.cache_data(ttl=10, show_spinner=False)
def canary_lights(now: datetime, slo_ms: float = DEFAULT_SLO_MS) -> pl.DataFrame:
    """Per (provider, model) probed in the last 15 minutes: its light, last TTFT and when."""
    rows = q_canaries.lights(data.engine(), now.replace(second=0) - timedelta(minutes=15), slo_ms)
    return pl.DataFrame(
        [(p, m, v["light"], LIGHT_ICONS[v["light"]], v["ttft_ms"], v["sent_at"], v["error"])
         for (p, m), v in sorted(rows.items())],
        schema={"provider_id": pl.Utf8, "model_id": pl.Utf8, "light": pl.Utf8, "icon": pl.Utf8,
                "ttft_ms": pl.Float64, "sent_at": pl.Datetime("us", "UTC"), "error": pl.Utf8}, orient="row")


@st.cache_data(ttl=10, show_spinner=False)
def canary_cycles() -> pl.DataFrame:
    return q_canaries.cycles(data.engine())


@st.cache_data(ttl=10, show_spinner=False)
def alert_states() -> pl.DataFrame:
    return q_alerts.states(data.engine())


@st.cache_data(ttl=10, show_spinner=False)
def alert_events(since: datetime) -> pl.DataFrame:
    return q_alerts.events(data.engine(), since)
