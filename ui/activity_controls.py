"""Activity page controls: pagination, picking a row's capture, fetching a capture from its host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
import streamlit as st

from ui import data
from ui import format as fmt
from warehouse.queries.activity import ActivityPage


@dataclass(frozen=True)
class RowKey:
    provider_id: str
    epoch: str
    upstream_id: int
    has_capture: bool
    stored: bool
    label: str


def page_count(first: ActivityPage) -> int:
    return max(first.pages, 1)


def page_picker(pages: int, key: str) -> int:
    if pages <= 1:
        return 1
    col, _ = st.columns([1, 4])
    return int(col.number_input(f"Page (1–{pages})", min_value=1, max_value=pages, value=1, step=1, key=key))


def stats_by_metric(stats: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {r["metric"]: r for r in stats.to_dicts() if r["n"]}


def capture_picker(rows: pl.DataFrame, key: str) -> RowKey | None:
    """Pick one request of the current page whose capture is stored or still on its host."""
    options = [
        RowKey(
            r["provider_id"],
            r["epoch"],
            int(r["upstream_id"]),
            bool(r["has_capture"]),
            bool(r["capture_stored"]),
            f"{r['provider_id']} #{r['upstream_id']} · {r['model_id']} · {r['finished_at']:%H:%M:%S}"
            + (" · stored" if r["capture_stored"] else " · on host"),
        )
        for r in rows.to_dicts()
        if r["capture_stored"] or r["has_capture"]
    ]
    if not options:
        st.caption("No request on this page has a capture (stored or still held by its llama-swap).")
        return None
    picked: RowKey | None = st.selectbox("Request", options, format_func=lambda k: k.label, key=key)
    return picked


def capture_fetch(choice: RowKey, current_epoch: str | None) -> None:
    """Offer to fetch a capture that is not stored yet (only its host's current id sequence has it)."""
    if current_epoch is not None and choice.epoch != current_epoch:
        st.info("Not stored, and its llama-swap has restarted since this request: the capture is gone.")
        return
    st.info("This capture is not stored yet; llama-swap keeps captures only briefly in memory.")
    if st.button(
        "Fetch capture from host", key=f"fetch_{choice.provider_id}_{choice.upstream_id}", icon="📥"
    ):
        outcome = data.fetch_capture_now(choice.provider_id, choice.epoch, choice.upstream_id)
        if outcome.status == "succeeded":
            st.success("Capture stored.")
            st.rerun()
        else:
            st.error(f"Capture not fetched ({fmt.md(outcome.status)}): {fmt.md(outcome.error)}")
