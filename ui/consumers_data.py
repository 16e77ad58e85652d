"""Cached data for the Consumers page and the Activity page's consumer filter (`warehouse.queries.consumers`).

The SLO targets come from the settings (``gateway_slo_ttft_ms`` / ``gateway_slo_tpot_ms``): the UI is an entry
point. `requests_section` draws the gateway's requests of a window (one consumer's when given) on either page.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import streamlit as st

from core.settings import get_settings
from ui import tables
from ui.data import engine
from ui.tables import Col
from warehouse.queries import consumers as q

TTL = 5


def slo_targets() -> tuple[float, float]:
    s = get_settings()
    return s.gateway_slo_ttft_ms, s.gateway_slo_tpot_ms


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=32)
def summary(start: datetime, end: datetime) -> pl.DataFrame:
    """Per consumer (heaviest first), shares and SLO attainment as percentages."""
    df = q.consumer_summary(engine(), start, end, *slo_targets())
    return df.with_columns((pl.col(c) * 100).alias(c) for c in ("load_share", "token_share", "slo_attainment"))


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=32)
def targets(start: datetime, end: datetime, consumer: str | None) -> pl.DataFrame:
    df = q.consumer_targets(engine(), start, end, *slo_targets(), consumer=consumer)
    return df.with_columns(pl.col("slo_attainment") * 100)


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=32)
def requests(start: datetime, end: datetime, consumer: str | None, limit: int = 200) -> pl.DataFrame:
    df = q.gateway_requests(engine(), start, end, *slo_targets(), consumer=consumer, limit=limit)
    return df.with_columns(
        pl.when(pl.col("met_slo")).then(pl.lit("✅")).otherwise(pl.lit("❌")).alias("slo"),
        pl.col("target").fill_null("none (failed)"),
    )


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=32)
def names(start: datetime, end: datetime) -> list[str]:
    return q.consumer_names(engine(), start, end)


SUMMARY_COLS = [
    Col("consumer", "Consumer", width="medium"),
    Col("source", "Identified by"),
    Col("requests", "Requests", "int"),
    Col("errors", "Errors", "int"),
    Col("tokens", "Tokens", "int"),
    Col("load_share", "Load share", "number", unit="%", digits=1),
    Col("token_share", "Token share", "number", unit="%", digits=1),
    Col("slo_attainment", "SLO met", "number", unit="%", digits=1),
    Col("ttft_p50_ms", "TTFT p50", "number", unit="ms"),
    Col("ttft_p95_ms", "TTFT p95", "number", unit="ms"),
    Col("last_request_at", "Last request", "datetime"),
]
TARGET_COLS = [
    Col("consumer", "Consumer", width="medium"),
    Col("requested_model", "Asked for", width="medium"),
    Col("target", "Served by", width="medium"),
    Col("requests", "Requests", "int"),
    Col("tokens", "Tokens", "int"),
    Col("slo_attainment", "SLO met", "number", unit="%", digits=1),
]
REQUEST_COLS = [
    Col("started_at", "Started", "datetime"),
    Col("consumer", "Consumer"),
    Col("requested_model", "Asked for"),
    Col("target", "Served by"),
    Col("reason", "Why", width="medium"),
    Col("fallbacks", "Fallbacks", "int"),
    Col("status", "Status", "int"),
    Col("error", "Error", width="medium"),
    Col("ttft_ms", "TTFT", "number", unit="ms"),
    Col("total_ms", "Total", "number", unit="ms"),
    Col("prompt_tokens", "Prompt tok", "int"),
    Col("completion_tokens", "Output tok", "int"),
    Col("slo", "SLO"),
]


def requests_section(start: datetime, end: datetime, consumer: str | None, key: str) -> None:
    """The gateway's newest requests of the window (one consumer's when given), each with what served it."""
    rows = requests(start, end, consumer)
    if rows.height == 0:
        st.info("No gateway requests in this window" + (" for this consumer." if consumer else "."))
        return
    tables.show(rows, REQUEST_COLS, key=key)
