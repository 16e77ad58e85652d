"""Logs: a live tail of one provider's proxy, upstream or per-model log, with a regex filter."""

import streamlit as st

from ui import data, log_view, widgets

widgets.page_setup("Logs", "📜")

left, mid, right = st.columns([2, 2, 3])
with left:
    picked = widgets.provider_picker(data.providers(), key="logs_provider", multi=False, label="Provider")
with mid:
    stored = data.log_sources(picked[0]) if picked else []
    models = data.provider_models(picked[0])[0] if picked else []
    source = log_view.source_picker(stored, models, key="logs_source")
with right:
    pattern = st.text_input("Filter (regular expression, case-insensitive)", key="logs_pattern")
lines_col, order_col, own_col = st.columns([4, 1, 2])
max_lines = lines_col.slider("Lines shown", 50, 2000, 500, step=50, key="logs_lines")
newest_first = order_col.toggle("Newest first", value=True, key="logs_newest_first")
hide_own = own_col.toggle(
    "Hide BooControl's own requests",
    value=True,
    key="logs_hide_own",
    help="The connector's polls of this llama-swap (GET /api/captures/…, /api/metrics/activity, /running, …)",
)


@st.fragment(run_every=2)
def live_tail(provider_id: str, source: str) -> None:
    model = log_view.model_of(source)
    if model is None:
        tail = data.log_tail(provider_id, source, log_view.MAX_BYTES)
    else:
        tail = log_view.host_tail(provider_id, model)
    if tail is not None:
        log_view.tail_view(tail, pattern, max_lines, newest_first, hide_own)


if picked and source:
    live_tail(picked[0], source)
else:
    st.info("No log text stored for this provider in the last 7 days.")
