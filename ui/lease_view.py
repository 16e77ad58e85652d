"""The fleet leases on the Fleet page: who holds which host for what, since when, until when (Streamlit)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ui import format as fmt


def lease_rows(leases: pl.DataFrame) -> pl.DataFrame:
    """The table as shown: a state column (held / EXPIRED, reclaimable), durations in words."""
    return leases.with_columns(
        pl.when(pl.col("expired")).then(pl.lit("⚠️ expired, reclaimable")).otherwise(pl.lit("🔒 held")).alias("state"),
        pl.col("held_s").map_elements(fmt.duration, return_dtype=pl.Utf8).alias("held_for"),
        pl.col("heartbeat_age_s").map_elements(fmt.duration, return_dtype=pl.Utf8).alias("heartbeat_age"),
    )


def lease_table(leases: pl.DataFrame) -> None:
    """Host leases (actions, benchmarks, evals) and follow leases (connectors); cells are plain text."""
    if leases.is_empty():
        st.caption("No leases: no action, benchmark or eval holds a host, and no connector follows one.")
        return
    cc = st.column_config
    st.dataframe(
        lease_rows(leases),
        hide_index=True,
        column_order=["provider_id", "scope", "state", "holder", "purpose", "acquired_at", "held_for",
                      "heartbeat_age", "expires_at"],
        column_config={
            "provider_id": cc.TextColumn("Provider"),
            "scope": cc.TextColumn("Scope"),
            "state": cc.TextColumn("State"),
            "holder": cc.TextColumn("Holder"),
            "purpose": cc.TextColumn("For"),
            "acquired_at": cc.DatetimeColumn("Since (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "held_for": cc.TextColumn("Held for"),
            "heartbeat_age": cc.TextColumn("Last heartbeat"),
            "expires_at": cc.DatetimeColumn("Until (UTC)", format="HH:mm:ss"),
        },
        key="lease_table",
    )
    host = leases.filter(pl.col("scope") == "host")
    if host.height:
        held = ", ".join(fmt.md(p) for p in host["provider_id"].to_list())
        st.caption(f"Hosts leased now: {held}. Free one with `boocontrol lease break PROVIDER`.")
