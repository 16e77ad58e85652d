"""Analysis: months of trends from the Parquet lake (DuckDB), without touching the live database."""

from datetime import UTC, datetime

import streamlit as st

from reports import digest_figures
from ui import analysis_data, tables, widgets
from ui import format as fmt

widgets.page_setup("Analysis", "🔭")

lake = analysis_data.lake_dir()
inventory = analysis_data.inventory(lake)
if inventory.height == 0:
    st.info(
        f"No Parquet exports under `{lake}` yet. The `export-parquet/daily` deployment writes yesterday's "
        "tables every night; export today so far and the 89 days before it with "
        f"`boocontrol prefect deployment run export-parquet/daily --param day={datetime.now(UTC).date()} "
        "--param days=90` (the nightly run replaces today's partition once the day is over)."
    )
    st.stop()

left, right, _ = st.columns([1, 1, 3])
span = left.selectbox("Range", list(analysis_data.RANGES), index=1, key="analysis_range")
grain = right.selectbox("Grain", ["day", "week", "month"], index=1, key="analysis_grain")
start, end = analysis_data.date_range(inventory, span)
st.caption(f"{start} → {end} (UTC days, up to the newest export)")

sim = analysis_data.simulated(lake, start, end)  # the demo fleet's numbers say "(simulated)" wherever drawn
if sim:
    st.caption(
        f"Simulated hosts (the demo fleet) in this range: {fmt.md(', '.join(sorted(sim)))}. Their speeds, power "
        "and energy are synthetic; they are marked *(simulated)* in every chart and table."
    )

usage = analysis_data.usage_trend(lake, start, end, grain)
if usage.height:
    widgets.chart(digest_figures.usage_trend(usage, simulated=sim), key="analysis_usage")
    tables.show(tables.mark_simulated(usage, sim), tables.ANALYSIS_USAGE, key="analysis_usage_table")

speeds = analysis_data.speed_trend(lake, start, end, grain)
if speeds.height:
    widgets.chart(digest_figures.speed_trend(speeds, simulated=sim), key="analysis_speed")

energy = analysis_data.energy_trend(lake, start, end, grain)
if energy.height:
    widgets.chart(digest_figures.energy_trend(energy, simulated=sim), key="analysis_energy")

if not (usage.height or speeds.height or energy.height):
    st.info("The lake has no activity or GPU data in this range.")

with st.expander("Lake contents"):
    tables.show(inventory, tables.LAKE_INVENTORY, key="analysis_inventory")
    st.caption(f"`{lake}` — read it from a notebook with DuckDB, Polars or pandas (docs/notebooks.md).")
