"""Consumers: who uses the gateway — requests, tokens, load share and SLO attainment per consumer."""

import streamlit as st

from ui import consumers_data, tables, widgets

widgets.page_setup("Consumers", "👥")
ttft, tpot = consumers_data.slo_targets()
st.caption(
    "A consumer is the gateway key's owner, else the X-Boo-Source header, else the client named by its "
    f"User-Agent. Load share = share of the gateway's serving time. SLO: first byte within {ttft:,.0f} ms and at "
    f"most {tpot:,.0f} ms per output token (BOOCONTROL_GATEWAY_SLO_TTFT_MS / _TPOT_MS)."
)
start, end = widgets.window_picker("consumers_window", default="24 hours")
summary = consumers_data.summary(start, end)
if summary.height == 0:
    st.info("No requests through the gateway in this window. Point an OpenAI client at `boocontrol gateway`.")
    st.stop()
tables.show(summary, consumers_data.SUMMARY_COLS, key="consumers_summary")

names = consumers_data.names(start, end)
picked = st.selectbox("Consumer", ["all", *names], key="consumers_pick")
consumer = None if picked in (None, "all") else picked

st.subheader("What they asked for, and what served it")
tables.show(consumers_data.targets(start, end, consumer), consumers_data.TARGET_COLS, key="consumers_targets")

st.subheader("Recent requests")
consumers_data.requests_section(start, end, consumer, key="consumers_requests")
