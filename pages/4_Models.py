"""Models: Favorites first, then every provider's catalog; per model its states, loads and last use."""

import streamlit as st

from reports import figures
from ui import actions_panel, catalog_view, data, widgets

widgets.page_setup("Models", "🧠")


@st.fragment(run_every=2)
def live_queue(provider_id: str) -> None:
    actions_panel.queue_view((provider_id,), limit=5)


catalog = data.model_catalog()
catalog_view.favorites(catalog, data.hidden_favorites())

st.subheader("By provider")
catalog_view.provider_groups(catalog)

st.subheader("Model")
picked = catalog_view.model_picker(catalog, key="models_pick")
if picked is not None:
    provider_id, model_id = picked
    catalog_view.model_controls(catalog, provider_id, model_id)
    live_queue(provider_id)
    start, end = widgets.window_picker("models_window", default="24 hours")
    widgets.chart(
        figures.state_timeline(
            data.state_timeline(provider_id, model_id, start, end), f"{provider_id}/{model_id} — state"
        ),
        key="models_timeline",
    )
    widgets.chart(
        figures.load_times(data.model_loads(provider_id, model_id), "Load times"), key="models_loads"
    )
