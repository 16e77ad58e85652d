"""Activity: every request across the fleet, filtered and paginated on the server; speeds; captures; gaps."""

import streamlit as st

from reports import figures
from ui import activity_controls, capture_view, consumers_data, data, gap_view, widgets
from ui.format import md

widgets.page_setup("Activity", "📡")

with st.sidebar:
    st.header("Filters")
    window = widgets.window_choice("activity_window", default="24 hours")
    providers = widgets.provider_picker(data.providers(), key="activity_providers")
    models = tuple(st.multiselect("Models", data.model_choices(), key="activity_models"))
    status = (
        st.segmented_control("Status", ["all", "ok", "error"], default="all", key="activity_status") or "all"
    )
    page_size = st.selectbox("Rows per page", [25, 50, 100, 200], index=1, key="activity_page_size")
    consumer_pick = st.selectbox(
        "Gateway consumer", ["all", *consumers_data.names(*widgets.window_bounds(window))], key="activity_consumer",
        help="Who asked, for requests that came through the gateway (its key's owner, X-Boo-Source or client)",
    )
    consumer = None if consumer_pick in (None, "all") else consumer_pick


def simulated_in_view() -> frozenset[str]:
    """The simulated hosts (the demo fleet) among the providers filtered on: their numbers are labelled."""
    sim = widgets.simulated_hosts(data.providers())
    return sim & set(providers) if providers else sim


@st.fragment(run_every=3)
def live_requests() -> None:
    """The requests of the window ending now (new ones appear without a reload), and the capture of one of
    the rows shown (picked from the same read as the table)."""
    flt = (*widgets.window_bounds(window), providers, models, status)
    total_pages = activity_controls.page_count(data.activity_page(*flt, 1, page_size))
    page_no = activity_controls.page_picker(total_pages, key="activity_page")
    page = data.activity_page(*flt, page_no, page_size)
    st.caption(f"{page.total:,} requests match · page {page.page} of {max(page.pages, 1)}")
    widgets.activity_table(page.rows, simulated_in_view())

    st.subheader("Capture")
    choice = activity_controls.capture_picker(page.rows, key="activity_capture")
    if choice is not None:
        stored = data.capture(choice.provider_id, choice.epoch, choice.upstream_id)
        if stored is not None:
            capture_view.capture_view(stored)
        else:
            activity_controls.capture_fetch(choice, data.current_epoch(choice.provider_id))


@st.fragment(run_every=10)
def live_speeds() -> None:
    """Speed percentiles and histograms of the window ending now."""
    flt = (*widgets.window_bounds(window), providers, models, status)
    speed_stats = data.speed_stats(*flt)
    sim = simulated_in_view()
    widgets.speed_metrics(speed_stats, sim)
    stats = activity_controls.stats_by_metric(speed_stats)
    incl = " (incl. simulated hosts)" if sim else ""
    left, right = st.columns(2)
    with left:
        widgets.chart(
            figures.speed_histogram(
                data.speed_histogram(*flt, "prompt"), stats.get("prompt"), "Prompt processing speed" + incl
            ),
            key="activity_hist_prompt",
        )
    with right:
        widgets.chart(
            figures.speed_histogram(
                data.speed_histogram(*flt, "generation"), stats.get("generation"), "Generation speed" + incl
            ),
            key="activity_hist_gen",
        )


@st.fragment(run_every=10)
def live_gaps() -> None:
    """Rows the connector knows may be missing in the window (restarts, ring overflow, dropped captures)."""
    gap_view.gaps_section(data.gaps(*widgets.window_bounds(window), providers))


live_requests()

st.subheader("Speeds")
live_speeds()

st.subheader("Gaps (rows that may be missing)")
live_gaps()


@st.fragment(run_every=5)
def live_gateway() -> None:
    """The gateway's requests of the window (the picked consumer's), each with what it asked for and what served it."""
    consumers_data.requests_section(*widgets.window_bounds(window), consumer, key="activity_gateway")


st.subheader("Gateway requests" + (f" of {md(consumer)}" if consumer else ""))
live_gateway()
