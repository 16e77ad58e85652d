"""Cached data for the Reports page: stored fleet digests (``warehouse.queries.reports``)."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
import streamlit as st

from reports.digest import inline_plotlyjs
from reports.figures import TEMPLATE
from ui.data import engine
from warehouse.queries import reports as q

LIST_TTL = 60
REPORT_TTL = 600


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def report_list(kind: str | None = None) -> pl.DataFrame:
    """Stored reports (id, kind, period, title), newest period first."""
    return q.list_reports(engine(), kind)


@st.cache_data(ttl=REPORT_TTL, show_spinner=False)
def report(report_id: int) -> q.StoredReport | None:
    return q.get_report(engine(), report_id)


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
