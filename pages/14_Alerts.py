"""Alerts: what is firing now, what is flapping, every notice sent, and the canary cycles (engines/alerts.py)."""

from datetime import timedelta

import polars as pl
import streamlit as st

from ui import data, ops_data, tables, widgets
from ui.tables import Col

widgets.page_setup("Alerts", "🚨")
st.caption(
    "The `alerts/every-minute` deployment evaluates the rules (host unreachable, GPU temperature, VRAM, error rate, "
    "gaps, benchmark drift, eval regression, thrash, canary SLO) and sends each *fire* and *recover* notice once "
    "to the Prefect notification blocks named in its `blocks` parameter (Slack, Discord, webhook, e-mail: create "
    "them in the Prefect UI). A condition that keeps flipping is *flapping*: no notice until it settles. "
    "Thresholds are the deployment's parameters (docs/operations.md)."
)

states = ops_data.alert_states()
firing = states.filter(pl.col("firing"))
flapping = states.filter(pl.col("flapping"))
pending = states.filter(pl.col("active") & ~pl.col("firing") & ~pl.col("flapping"))
m = st.columns(3)
m[0].metric("Firing", firing.height)
m[1].metric("Pending (not held long enough yet)", pending.height)
m[2].metric("Flapping (notices held back)", flapping.height)

STATE_COLS = [
    Col("rule", "Rule"), Col("subject", "Subject"), Col("message", "Now"),
    Col("changed_at", "Since", "datetime"), Col("value", "Value", "number", digits=2),
]
for title, frame_, key in (("Firing", firing, "alerts_firing"), ("Pending", pending, "alerts_pending"),
                           ("Flapping", flapping, "alerts_flapping")):
    if frame_.height:
        st.subheader(title)
        tables.show(frame_, STATE_COLS, key=key)
if not (firing.height or pending.height or flapping.height):
    st.success("Nothing is firing.", icon="✅")

st.subheader("Notices, last 7 days")
events = ops_data.alert_events(data.now() - timedelta(days=7))
if events.height:
    tables.show(events, [
        Col("at", "When", "datetime"), Col("kind", "Notice"), Col("rule", "Rule"), Col("subject", "Subject"),
        Col("message", "Message"), Col("delivery", "Delivery (block: ok or error)"),
    ], key="alerts_events")
else:
    st.caption("No notice in the last 7 days.")

st.subheader("Canary cycles")
cycles = ops_data.canary_cycles()
if cycles.height:
    tables.show(cycles, [
        Col("started_at", "Started", "datetime"), Col("hosts", "Hosts", "int"), Col("probed", "Probed", "int"),
        Col("failed", "Failed", "int"), Col("unmatched", "Row not found", "int"),
        Col("skipped", "Skipped hosts (why)"),
    ], key="alerts_canary_cycles")
else:
    st.caption("No canary cycle yet (deployment `canary/every-5m`).")
