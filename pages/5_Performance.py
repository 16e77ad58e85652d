"""Performance: CPU, RAM and GPU series of several hosts overlaid over a chosen window."""

import streamlit as st

from reports import figures
from ui import data, widgets

widgets.page_setup("Performance", "📈")

left, right = st.columns([3, 1])
with left:
    hosts = widgets.provider_picker(data.providers(), key="perf_hosts", default_max=6, label="Hosts")
with right:
    start, end = widgets.window_picker("perf_window", default="6 hours")

if not hosts:
    st.info("Pick one or more hosts.")
    st.stop()

host = data.host_series(hosts, start, end)
gpu = data.gpu_series(hosts, start, end)
sim = widgets.simulated_hosts(data.providers())  # the demo fleet's lines say "(simulated)"
if sim & set(hosts):
    st.caption(
        "Hosts marked *(simulated)* are the demo fleet: their CPU, RAM, GPU and power readings are synthetic."
    )

a, b = st.columns(2)
with a:
    widgets.chart(
        figures.time_series(host, "cpu_pct", "CPU utilisation", "%", y_range=(0, 100), simulated=sim),
        key="perf_cpu",
    )
    widgets.chart(
        figures.time_series(
            gpu, "util_pct", "GPU utilisation", "%", series="series", y_range=(0, 100), simulated=sim
        ),
        key="perf_gpu_util",
    )
    widgets.chart(
        figures.time_series(
            gpu, "mem_used_mb", "VRAM used", "GiB", series="series", scale=1 / 1024, simulated=sim
        ),
        key="perf_vram",
    )
with b:
    widgets.chart(
        figures.time_series(host, "mem_pct", "RAM used", "%", y_range=(0, 100), simulated=sim), key="perf_ram"
    )
    widgets.chart(
        figures.time_series(gpu, "temp_c", "GPU temperature", "°C", series="series", simulated=sim),
        key="perf_temp",
    )
    widgets.chart(
        figures.time_series(gpu, "power_w", "GPU power", "W", series="series", simulated=sim),
        key="perf_power",
    )
