"""BooControl — the cockpit's home: fleet at a glance, pending actions, and the way to every page."""

import streamlit as st

from ui import actions_panel, data, widgets
from warehouse.queries.fleet import fleet_summary

widgets.page_setup("BooControl", "🛸")
st.caption("Mission control for a fleet of llama-swap servers")


@st.fragment(run_every=5)
def glance() -> None:
    widgets.fleet_metrics(fleet_summary(data.fleet_board(data.now())))


glance()

cols = st.columns(5)
cols[0].page_link("pages/1_Fleet.py", label="Fleet", icon="🛰️")
cols[1].page_link("pages/2_Activity.py", label="Activity", icon="📡")
cols[2].page_link("pages/3_Logs.py", label="Logs", icon="📜")
cols[3].page_link("pages/4_Models.py", label="Models", icon="🧠")
cols[4].page_link("pages/5_Performance.py", label="Performance", icon="📈")
more = st.columns(5)
more[0].page_link("pages/6_Benchmarks.py", label="Benchmarks", icon="⏱️")
more[1].page_link("pages/7_Reports.py", label="Reports", icon="📰")
more[2].page_link("pages/8_Analysis.py", label="Analysis", icon="🔭")
more[3].page_link("pages/9_Evals.py", label="Evals", icon="🧪")
gateway_links = st.columns(5)
gateway_links[0].page_link("pages/10_Routing.py", label="Routing", icon="🧭")
gateway_links[1].page_link("pages/11_Consumers.py", label="Consumers", icon="👥")
ops_links = st.columns(5)
ops_links[0].page_link("pages/13_Thrash.py", label="Thrash", icon="🔁")
ops_links[1].page_link("pages/14_Alerts.py", label="Alerts", icon="🚨")


@st.fragment(run_every=2)
def live_queue() -> None:
    actions_panel.queue_view((), limit=10)


st.subheader("Pending and recent actions")
live_queue()
