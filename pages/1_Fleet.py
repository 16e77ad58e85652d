"""Fleet: every provider now — health, version, uptime, models, in-flight, GPU and host — plus actions."""

import streamlit as st

from ui import actions_panel, canary_view, data, lease_view, widgets
from warehouse.queries.fleet import fleet_summary

widgets.page_setup("Fleet", "🛰️")


@st.fragment(run_every=1)
def live_board() -> None:
    board = data.fleet_board(data.now())
    widgets.fleet_metrics(fleet_summary(board))
    widgets.fleet_table(board)


@st.fragment(run_every=2)
def live_provider(provider_id: str) -> None:
    """Tiles, in-flight table and action forms of one provider from ONE read of the live data per refresh:
    the In-flight tile counts the table's rows and the Cancel choices are exactly those rows."""
    now = data.now()
    row = data.provider_row(now, provider_id)
    inflight = data.live_inflight(provider_id, row)
    models, loaded = data.provider_models(provider_id)  # read before anything is drawn: the refresh swaps fast
    if row is not None:
        widgets.provider_tiles(
            row, data.provider_gpus(provider_id), data.provider_gpu_series(provider_id, now), now,
            inflight=inflight.height,
        )
        canary_view.canary_lights(provider_id, now)
    # the same number of elements on every refresh: a table that came and went shifted the action forms, and
    # Streamlit showed the shifted-out copy (older choices, as stale) beside the new one until the refresh ended
    st.markdown("**In-flight requests**")
    if inflight.height:
        widgets.inflight_table(inflight)
    else:
        st.caption("None right now.")
    st.subheader("Actions")
    actions_panel.actions_panel(
        provider_id, models, loaded, inflight["request_id"].to_list(), key=f"fleet_{provider_id}"
    )


@st.fragment(run_every=2)
def live_queue(provider_ids: tuple[str, ...]) -> None:
    actions_panel.queue_view(provider_ids)


@st.fragment(run_every=2)
def live_leases() -> None:
    lease_view.lease_table(data.leases())


live_board()

st.subheader("Provider")
picked = widgets.provider_picker(data.providers(), key="fleet_provider", multi=False, label="Provider")
if picked:
    pid = picked[0]
    live_provider(pid)

st.subheader("Action queue (every host: one action at a time per host, in order)")
live_queue(())

st.subheader("Leases (who holds which host, for what, until when)")
live_leases()
