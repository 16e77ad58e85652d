"""Tables for people: named columns with units, and no cell drawn as "None".

``show`` takes a frame and a list of ``Col`` (the column, its heading, how to show it); only those columns
go to the browser, in that order. Streamlit draws a missing value as a grey "None": text columns get
``—`` instead, numbers that may be missing are shown as text with their unit (``fmt``) and ``—``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import streamlit as st

from ui import format as fmt


@dataclass(frozen=True)
class Col:
    name: str
    label: str
    kind: str = "text"  # text | int | number | date | datetime | bool
    unit: str = ""  # printed after numbers: "tok", "req/s", "J/token"
    digits: int = 0
    width: str | None = None  # small | medium | large


def _number_text(col: Col) -> Callable[[Any], str]:
    suffix = f" {col.unit}" if col.unit else ""

    def show(v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return fmt.DASH
        return f"{v:,.{col.digits}f}{suffix}"

    return show


def for_people(df: pl.DataFrame, cols: Sequence[Col]) -> pl.DataFrame:
    """``df`` cut to ``cols``, text nulls as ``—``, numbers with a null as text with their unit."""
    out = df.select([c.name for c in cols])
    exprs = []
    for c in cols:
        if c.kind == "text":
            exprs.append(pl.col(c.name).cast(pl.Utf8).fill_null(fmt.DASH))
        elif c.kind in ("int", "number") and out[c.name].null_count():
            exprs.append(pl.col(c.name).map_elements(_number_text(c), return_dtype=pl.Utf8, skip_nulls=False))
    return out.with_columns(exprs) if exprs else out


def _config(c: Col, dtype: pl.DataType) -> Any:
    cc = st.column_config
    if c.kind in ("int", "number") and dtype.is_numeric():
        unit = f" {c.unit}".replace("%", "%%") if c.unit else ""
        return cc.NumberColumn(c.label, format=f"%.{c.digits}f{unit}" if c.kind == "number" else f"%d{unit}")
    if c.kind == "date":
        return cc.DateColumn(c.label, format="YYYY-MM-DD")
    if c.kind == "datetime":
        return cc.DatetimeColumn(c.label, format="YYYY-MM-DD HH:mm")
    if c.kind == "bool":
        return cc.CheckboxColumn(c.label)
    return cc.TextColumn(c.label, width=c.width)  # type: ignore[arg-type]


def show(df: pl.DataFrame, cols: Sequence[Col], key: str) -> None:
    shown = for_people(df, cols)
    st.dataframe(
        shown,
        hide_index=True,
        column_order=[c.name for c in cols],
        column_config={c.name: _config(c, shown.schema[c.name]) for c in cols},
        key=key,
    )


def mark_simulated(df: pl.DataFrame, simulated: frozenset[str] | set[str], column: str = "provider_id") -> pl.DataFrame:
    """A simulated host's (the demo fleet) provider cells say ``… (simulated)``: its numbers are synthetic."""
    if not simulated:
        return df
    return df.with_columns(
        pl.when(pl.col(column).is_in(list(simulated)))
        .then(pl.format("{} (simulated)", pl.col(column)))
        .otherwise(pl.col(column))
        .alias(column)
    )


ANALYSIS_USAGE = [
    Col("period", "Period from", "date"),
    Col("provider_id", "Provider"),
    Col("requests", "Requests", "int"),
    Col("errors", "Errors", "int"),
    Col("input_tokens", "Input", "int", "tok"),
    Col("cache_tokens", "Cached", "int", "tok"),
    Col("output_tokens", "Output", "int", "tok"),
    Col("swaps", "Model swaps", "int"),
    Col("busy_h", "Busy", "number", "h", 1),
]

LAKE_INVENTORY = [
    Col("table", "Table"),
    Col("partitions", "Days exported", "int"),
    Col("first_day", "First day", "date"),
    Col("last_day", "Last day", "date"),
]

BENCH_RUNS = [
    Col("run_id", "Run", "int"),
    Col("started_at", "Started (UTC)", "datetime"),
    Col("status", "Status"),
    Col("simulated", "Simulated host", "bool"),  # the demo fleet: every number of the run is synthetic
    Col("mode", "Sweep"),
    Col("label", "Label"),
    Col("points", "Points", "int"),
    Col("drift", "Drift"),
    Col("drift_detail", "Drift detail", width="medium"),
    Col("stop_reason", "Stopped because", width="medium"),
    Col("llama_swap_version", "llama-swap"),
    Col("foreign_requests", "Other clients' requests", "int"),
    Col("energy", "Energy"),  # J/token as text, "(simulated)" after a simulated host's
]


def comparison_columns(table: pl.DataFrame) -> list[Col]:
    """The bench comparison: mode, level, metric, then one text column per run (``#12``)."""
    fixed = [Col("mode", "Sweep"), Col("level", "Level", "number", digits=2), Col("metric", "Metric")]
    return fixed + [Col(c, f"Run {c}") for c in table.columns if c.startswith("#")]
