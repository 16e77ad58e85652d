"""Models page pieces: catalog tables (Favorites first, then provider groups) and model detail controls."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ui import data
from ui import format as fmt
from ui.actions_panel import action_outcome, provider_refusal, submit
from ui.widgets import simulated_hosts
from warehouse.queries.models import favorites_section

_COLUMNS = [
    "model_id",
    "state",
    "favorite",
    "loads",
    "load_s_p50",
    "load_s_last",
    "last_used_at",
    "context_length",
]


def _table(df: pl.DataFrame, key: str, with_provider: bool = False) -> None:
    sim = simulated_hosts(data.providers())  # the demo fleet's load times are synthetic: its rows say so
    shown = df.with_columns(
        pl.when(pl.col("provider_id").is_in(list(sim)))
        .then(pl.format("{} (simulated)", pl.col("provider_id")))
        .otherwise(pl.col("provider_id"))
        .alias("provider_id"),
        pl.col("state")
        .fill_null("unknown")
        .map_elements(lambda s: f"{fmt.STATE_ICONS.get(s, '⚪')} {s}", return_dtype=pl.Utf8),
        (pl.col("load_ms_p50") / 1000).alias("load_s_p50"),
        (pl.col("load_ms_last") / 1000).alias("load_s_last"),
    )
    cc = st.column_config
    st.dataframe(
        shown,
        hide_index=True,
        column_order=(["provider_id"] if with_provider else []) + _COLUMNS,
        column_config={
            "provider_id": cc.TextColumn("Provider"),
            "model_id": cc.TextColumn("Model"),
            "state": cc.TextColumn("State"),
            "favorite": cc.CheckboxColumn("★"),
            "loads": cc.NumberColumn("Loads", format="%d"),
            "load_s_p50": cc.NumberColumn("Load time p50", format="%.2f s"),
            "load_s_last": cc.NumberColumn("Last load time", format="%.2f s"),
            "last_used_at": cc.DatetimeColumn("Last used (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "context_length": cc.NumberColumn("Context", format="%d tok"),
        },
        key=key,
    )


def favorites(catalog: pl.DataFrame, hidden: pl.DataFrame) -> None:
    st.subheader("★ Favorites")
    fav = favorites_section(catalog)
    if fav.height:
        _table(fav, key="models_favorites", with_provider=True)
    else:
        st.caption("No favorite on an online provider.")
    if hidden.height:
        reasons = ", ".join(
            fmt.md(f"{r['provider_id']}/{r['model_id']} ({r['reason']})") for r in hidden.to_dicts()
        )
        st.caption(f"Hidden until their provider is back: {reasons}")


def provider_groups(catalog: pl.DataFrame) -> None:
    for part in catalog.partition_by("provider_id", maintain_order=True):
        r = part.row(0, named=True)
        online = (
            "🟢 online"
            if r["provider_online"]
            else f"🔴 {r['provider_status']}" + ("" if r["provider_active"] else " (inactive)")
        )
        loaded = part.filter(pl.col("state").is_in(["starting", "ready", "stopping"])).height
        sim = " (simulated)" if r["provider_id"] in simulated_hosts(data.providers()) else ""
        title = (f"{fmt.md(r['provider_id'])} · {fmt.md(r['provider_label'])}{sim} — {online} — {part.height} models, "
                 f"{loaded} loaded")  # fmt: skip
        with st.expander(title, expanded=bool(r["provider_online"])):
            _table(part, key=f"models_group_{r['provider_id']}")


def model_picker(catalog: pl.DataFrame, key: str) -> tuple[str, str] | None:
    """Pick one model by its ``provider/model`` identity."""
    ids = [
        f"{p}/{m}"
        for p, m in zip(catalog["provider_id"].to_list(), catalog["model_id"].to_list(), strict=True)
    ]
    if not ids:
        st.info("No models known yet: they appear once the connector has seen a provider.")
        return None
    picked: str = st.selectbox("Model (provider/model)", ids, key=key)
    provider_id, _, model_id = picked.partition("/")
    return provider_id, model_id


def model_controls(catalog: pl.DataFrame, provider_id: str, model_id: str) -> None:
    row = catalog.filter((pl.col("provider_id") == provider_id) & (pl.col("model_id") == model_id)).row(
        0, named=True
    )
    sim = " (simulated)" if provider_id in simulated_hosts(data.providers()) else ""  # synthetic load times
    if sim:
        st.caption(f"{fmt.md(provider_id)} is a simulated host (the demo fleet): its load times and speeds are "
                   "synthetic.")  # fmt: skip
    cols = st.columns(5)
    cols[0].metric("State", f"{fmt.STATE_ICONS.get(row['state'] or '', '⚪')} {row['state'] or 'unknown'}")
    cols[1].metric("Loads", fmt.count(row["loads"]))
    cols[2].metric(
        "Load time p50" + sim, fmt.duration(None if row["load_ms_p50"] is None else row["load_ms_p50"] / 1000)
    )
    cols[3].metric(
        "Last load time" + sim, fmt.duration(None if row["load_ms_last"] is None else row["load_ms_last"] / 1000)
    )
    cols[4].metric("Last used", fmt.ago(row["last_used_at"], data.now()))
    fav_col, warm_col, unload_col = st.columns(3)
    refusal = provider_refusal(provider_id)  # a kind without actions: the buttons say why they are off
    key = f"models_{provider_id}_{model_id}"
    with fav_col:
        if row["favorite"]:
            if st.button("☆ Remove from favorites", key=key + "_unfav"):
                data.toggle_favorite(provider_id, model_id, False)
                st.rerun()
        elif st.button("★ Add to favorites", key=key + "_fav"):
            data.toggle_favorite(provider_id, model_id, True)
            st.rerun()
    with warm_col:
        if st.button("🔥 Warm", key=key + "_warm", disabled=not row["provider_online"] or refusal is not None,
                     help=refusal):
            submit(provider_id, "warm", model_id, key)
        action_outcome(key, "warm")  # queued → running → done, right under the button
    with unload_col:
        ok = st.checkbox("Cut off its requests", key=key + "_unload_ok")
        if st.button("⏏️ Unload", key=key + "_unload", disabled=not (ok and row["provider_online"]) or refusal is not None,
                     help=refusal):
            submit(provider_id, "unload", model_id, key)
        action_outcome(key, "unload")
