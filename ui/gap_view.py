"""The Gaps section: rows the connector knows may be missing, per provider, said plainly.

A gap is what the follower could prove it did not get (an overflowed ring, a restart while nobody followed, a
capture dropped before it was fetched). Text from the fleet (the reason names boots and upstream errors) is
shown as typed: table cells are plain text, and anything in Markdown goes through ``fmt.md``.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import streamlit as st

from ui import format as fmt

GAP_COLUMNS = ["provider_id", "stream", "epoch", "missing", "span", "detected_at", "reason"]
_TS = "%Y-%m-%d %H:%M:%S"


def missing_text(from_id: int | None, to_id: int | None) -> str:
    """The upstream ids a gap covers: ``5..9 (5 rows)``, ``id 5``, ``from id 6, count unknown``."""
    if from_id is None:
        return "count unknown"
    if to_id is None:
        return f"from id {from_id}, count unknown"
    if to_id == from_id:
        return f"id {from_id}"
    return f"{from_id}..{to_id} ({to_id - from_id + 1} rows)"


def span_text(from_at: datetime | None, to_at: datetime | None) -> str:
    """When the missing rows happened (UTC), as far as known: ``2026-11-20 10:00:00 → 2026-11-20 10:05:00``."""
    if from_at is None and to_at is None:
        return fmt.DASH
    left = from_at.strftime(_TS) if from_at is not None else "…"
    right = to_at.strftime(_TS) if to_at is not None else "…"
    return f"{left} → {right}"


def gap_rows_for_people(gaps: pl.DataFrame) -> pl.DataFrame:
    """The shown columns, every cell text or a time: no cell reads "None"."""
    missing = [
        missing_text(a, b) for a, b in zip(gaps["from_id"].to_list(), gaps["to_id"].to_list(), strict=True)
    ]
    span = [span_text(a, b) for a, b in zip(gaps["from_at"].to_list(), gaps["to_at"].to_list(), strict=True)]
    return gaps.with_columns(
        pl.Series("missing", missing, dtype=pl.Utf8),
        pl.Series("span", span, dtype=pl.Utf8),
        pl.col("epoch").fill_null(fmt.DASH),
    ).select(GAP_COLUMNS)


def summary_line(gaps: pl.DataFrame) -> str:
    """Markdown: how many gaps per provider, and how many of them have no known size (ids escaped)."""
    parts = []
    for (pid,), rows in gaps.group_by("provider_id", maintain_order=True):
        unknown = rows.filter((pl.col("stream") == "activity") & pl.col("to_id").is_null()).height
        parts.append(f"{fmt.md(pid)} {rows.height}" + (f" ({unknown} count unknown)" if unknown else ""))
    return f"{gaps.height} gap{'s' if gaps.height != 1 else ''} in this window: " + " · ".join(parts)


def gaps_section(gaps: pl.DataFrame) -> None:
    """The Activity page's Gaps section for the rows of `warehouse.queries.gaps.gaps`."""
    if gaps.height == 0:
        st.caption("No gaps in this window: the connector missed no row it could know of.")
        return
    st.warning(summary_line(gaps), icon="⚠️")
    cc = st.column_config
    st.dataframe(
        gap_rows_for_people(gaps),
        hide_index=True,
        column_order=GAP_COLUMNS,
        column_config={
            "provider_id": cc.TextColumn("Provider"),
            "stream": cc.TextColumn("Stream", help="activity: request rows; capture: a request's capture"),
            "epoch": cc.TextColumn("Epoch", help="the activity id sequence (a boot of an in-memory store)"),
            "missing": cc.TextColumn("Missing ids"),
            "span": cc.TextColumn("When (UTC)", help="when the missing rows happened, as far as known"),
            "detected_at": cc.DatetimeColumn("Detected (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "reason": cc.TextColumn("Reason", width="large"),
        },
        key="gaps_table",
    )
