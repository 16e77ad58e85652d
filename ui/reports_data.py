"""Cached data for the Reports page: stored fleet digests (``warehouse.queries.reports``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
import streamlit as st

from core.settings import get_settings
from reports import digest
from reports.digest import inline_plotlyjs
from reports.figures import TEMPLATE
from ui.data import engine
from warehouse.queries import reports as q
from warehouse.rollups import rollup_activity

REPORT_TTL = 600


def report_list(kind: str | None = None) -> pl.DataFrame:
    """Stored reports (id, kind, period, title), newest period first. Read afresh on every run (one small query
    when the page is opened or used): a digest the Prefect worker has just stored shows on the next reload,
    not a minute later."""
    return q.list_reports(engine(), kind)


@st.cache_data(ttl=REPORT_TTL, show_spinner=False)
def report(report_id: int) -> q.StoredReport | None:
    return q.get_report(engine(), report_id)


def render_so_far(kind: str = "daily") -> int:
    """Roll up and store the ``kind`` digest of the period running now, up to now ("today so far"); the
    same as the ``fleet-digest/today`` deployment, for a user who wants it this minute. Returns its id."""
    eng = engine()
    start, end = digest.current_period(kind, datetime.now(UTC))
    with eng.begin() as conn:
        rollup_activity(conn, start - digest.KINDS[kind], end)
    settings = get_settings()
    slo = (settings.gateway_slo_ttft_ms, settings.gateway_slo_tpot_ms)
    rendered = digest.render_digest(digest.build_digest(eng, kind, start, end, slo=slo))
    with eng.begin() as conn:
        report_id = digest.store_report(conn, rendered)
    report.clear()
    standalone_html.clear()
    return report_id


@st.cache_data(ttl=REPORT_TTL, show_spinner=False)
def standalone_html(report_id: int) -> str:
    """The report's HTML with plotly.js inlined, for an offline download."""
    r = report(report_id)
    return inline_plotlyjs(r.html) if r else ""


def report_figures(stored: q.StoredReport) -> dict[str, go.Figure]:
    """The report's Plotly figures, rebuilt from their stored JSON in the app's own template (reports
    stored before the figures were themed carry a white one)."""
    figs: dict[str, Any] = stored.figures or {}
    out = {name: pio.from_json(json.dumps(spec)) for name, spec in figs.items()}
    for fig in out.values():
        fig.update_layout(template=TEMPLATE)
    return out
