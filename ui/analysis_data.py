"""Cached data for the Analysis page: DuckDB over the Parquet lake (``warehouse.queries.analysis``).

Lake reads change at most once a day (the export flow), so they are cached for 10 minutes; arguments are
plain strings and dates so they hash.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import streamlit as st

from core.settings import get_settings
from warehouse.queries import analysis as qa

LAKE_TTL = 600
RANGES: dict[str, int | None] = {"1 month": 31, "3 months": 92, "6 months": 183, "1 year": 366, "All": None}


def lake_dir() -> str:
    return str(get_settings().lake_dir)


@st.cache_data(ttl=60, show_spinner=False)
def inventory(lake: str) -> pl.DataFrame:
    """Exported tables with partition counts and first/last day."""
    return qa.lake_inventory(Path(lake))


def date_range(inv: pl.DataFrame, span: str) -> tuple[date, date]:
    """``[start, end)`` covering ``span`` up to the newest exported day."""
    last = inv["last_day"].max()
    first = inv["first_day"].min()
    assert isinstance(last, date) and isinstance(first, date)
    end = last + timedelta(days=1)
    days = RANGES[span]
    return (first if days is None else max(first, end - timedelta(days=days))), end


@st.cache_data(ttl=LAKE_TTL, show_spinner=False)
def usage_trend(lake: str, start: date, end: date, grain: str) -> pl.DataFrame:
    return qa.usage_trend(Path(lake), start, end, grain)


@st.cache_data(ttl=LAKE_TTL, show_spinner=False)
def speed_trend(lake: str, start: date, end: date, grain: str) -> pl.DataFrame:
    return qa.speed_trend(Path(lake), start, end, grain)


@st.cache_data(ttl=LAKE_TTL, show_spinner=False)
def energy_trend(lake: str, start: date, end: date, grain: str) -> pl.DataFrame:
    return qa.energy_trend(Path(lake), start, end, grain)


@st.cache_data(ttl=LAKE_TTL, show_spinner=False)
def simulated(lake: str, start: date, end: date) -> frozenset[str]:
    """Providers that were simulated hosts (the demo fleet) in the range: their numbers are labelled."""
    return frozenset(qa.simulated_providers(Path(lake), start, end))
