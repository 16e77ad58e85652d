"""Models: Favorites first, then every provider's catalog; per model its states, loads and last use."""

import streamlit as st

from reports import figures
from ui import actions_panel, catalog_view, data, widgets

widgets.page_setup("Models", "🧠")


@st.fragment(run_every=2)
def live_catalog() -> None:
    """Favorites and provider groups with each model's state as of now (refreshed in place)."""
    catalog = data.live_catalog()
    catalog_view.favorites(catalog, data.hidden_favorites())
    st.subheader("By provider")
    catalog_view.provider_groups(catalog)


@st.fragment(run_every=2)
def live_model(provider_id: str, model_id: str) -> None:
    """The picked model's tiles and actions (with their status lines) and its host's queue, refreshed."""
    catalog_view.model_controls(data.live_catalog(), provider_id, model_id)
    actions_panel.queue_view((provider_id,), limit=5)


live_catalog()

st.subheader("Model")
picked = catalog_view.model_picker(data.model_catalog(), key="models_pick")
if picked is not None:
    provider_id, model_id = picked
    live_model(provider_id, model_id)
    start, end = widgets.window_picker("models_window", default="24 hours")
    widgets.chart(
        figures.state_timeline(
            data.state_timeline(provider_id, model_id, start, end), f"{provider_id}/{model_id} — state"
        ),
        key="models_timeline",
    )
    sim = " (simulated host)" if provider_id in widgets.simulated_hosts(data.providers()) else ""
    widgets.chart(
        figures.load_times(data.model_loads(provider_id, model_id), f"Load times{sim}"), key="models_loads"
    )
