"""Thrash: where the fleet spends its GPUs loading models instead of serving them (engines/thrash.py)."""

import streamlit as st

from ui import format as fmt
from ui import ops_data, tables, widgets
from ui.tables import Col

widgets.page_setup("Thrash", "🔁")
st.caption(
    "A *load* is a model going starting → ready (or stopped → ready, time unknown); an *eviction* a model leaving "
    "ready within 10 s of another model of its host starting; a *ping-pong* an eviction that reverses the pair's "
    "previous one within 15 min. GPU time lost = measured load times (+ failed loads), plus an estimate (the "
    "model's median) for loads whose time was not seen. Canary probes are not counted as requests."
)

start, end = widgets.window_picker("thrash_window", default="24 hours")
rep = ops_data.thrash(start, end)
hosts, pairs = rep["hosts"], rep["pairs"]

loads = int(hosts["loads"].sum()) if hosts.height else 0
hours = (end - start).total_seconds() / 3600
loading = float(hosts["loading_s"].sum()) if hosts.height else 0.0
serving = float(hosts["serving_s"].sum()) if hosts.height else 0.0
lost = float(hosts["gpu_s_lost"].sum()) if hosts.height else 0.0
lost_est = float(hosts["gpu_s_lost_estimated"].sum()) if hosts.height else 0.0
m = st.columns(4)
m[0].metric("Model loads", f"{loads:,}")
m[1].metric("Loads per hour", f"{loads / hours:.1f}" if hours else fmt.DASH)
m[2].metric("Time loading (of loading + serving)",
            fmt.pct(100 * loading / (loading + serving), 1) if loading + serving else fmt.DASH)
m[3].metric("GPU time lost to loads", fmt.duration(lost + lost_est),
            help=f"measured {fmt.duration(lost)}, estimated {fmt.duration(lost_est)}")

if not loads and not hosts.height:
    st.info("No model loads and no requests in this window.")
    st.stop()

if rep["hourly"].height:
    widgets.chart(ops_data.loads_per_hour_figure(rep["hourly"]), key="thrash_hourly")

st.subheader("Hosts")
tables.show(hosts, [
    Col("provider_id", "Host"), Col("loads", "Loads", "int"), Col("failed_loads", "Failed", "int"),
    Col("loads_per_hour", "Loads/h", "number", digits=1), Col("evictions", "Evictions", "int"),
    Col("loading_s", "Loading", "number", "s", 1), Col("serving_s", "Serving", "number", "s", 1),
    Col("loading_share", "Loading share", "number", digits=3),
    Col("gpu_s_lost", "GPU lost (measured)", "number", "s", 1),
    Col("gpu_s_lost_estimated", "GPU lost (estimated)", "number", "s", 1),
], key="thrash_hosts")

st.subheader("Ping-pong pairs")
if pairs.height:
    tables.show(pairs, [
        Col("provider_id", "Host"), Col("model_a", "Model A"), Col("model_b", "Model B"),
        Col("a_evicted_b", "A evicted B", "int"), Col("b_evicted_a", "B evicted A", "int"),
        Col("reversals", "Back and forth", "int"), Col("gpu_s_lost", "GPU lost", "number", "s", 1),
        Col("last_at", "Last", "datetime"),
    ], key="thrash_pairs")
    top = pairs.row(0, named=True)
    st.caption(
        f"Worst: {fmt.md(top['model_a'])} and {fmt.md(top['model_b'])} on {fmt.md(top['provider_id'])} swapped "
        f"back and forth {top['reversals']} times. Pin one (its own group, or `persistent`), give them a longer "
        "`ttl`, or route their consumers to different hosts."
    )
else:
    st.caption("No pair of models evicted each other in this window.")

st.subheader("Who triggered the loads")
tables.show(rep["consumers"], [
    Col("consumer", "Consumer"), Col("loads", "Loads", "int"), Col("gpu_s_lost", "GPU lost", "number", "s", 1),
], key="thrash_consumers")

with st.expander(f"Every load ({rep['loads'].height})"):
    tables.show(rep["loads"], [
        Col("started_at", "Started", "datetime"), Col("provider_id", "Host"), Col("model_id", "Model"),
        Col("load_s", "Load time", "number", "s", 2), Col("failed", "Failed", "bool"),
        Col("evicted", "Evicted"), Col("trigger", "Triggered by"), Col("consumer", "Consumer"),
    ], key="thrash_loads")

st.caption(f"Window {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC")
