"""Config: each llama-swap host's effective configuration, its history, the fleet diff and lint findings."""

import streamlit as st

from ui import config_data, widgets
from ui import format as fmt
from ui.tables import Col, show

widgets.page_setup("Config", "🧾")

st.subheader("Fleet diff (same model id, different configuration)")
diff = config_data.diff_frame()
if diff.height:
    st.dataframe(diff, hide_index=True, key="config_diff")
else:
    st.caption("No differences: every model configured on two or more hosts is configured alike.")

shared = config_data.shared_models()
if shared:
    model = st.selectbox("Model on several hosts, side by side", shared, key="config_model")
    st.dataframe(config_data.model_side_by_side(model), hide_index=True, key="config_side_by_side")

st.subheader("Lint")
findings = config_data.findings_frame()
if findings.height:
    show(findings, [Col("severity", "Severity"), Col("provider", "Provider"), Col("code", "Check"),
                    Col("finding", "Finding", width="large")], key="config_findings")
else:
    st.caption("No findings.")

st.subheader("Host")
current = config_data.current()
hosts = sorted(set(current["provider_id"].to_list()))
if not hosts:
    st.info("No host config stored yet: `boocontrol config diff --refresh` reads every llama-swap host.")
else:
    pid = st.selectbox("Provider", hosts, key="config_provider")
    if st.button("Read now", key="config_read_now"):
        outcome = config_data.read_now(pid)
        st.toast(fmt.md(outcome if isinstance(outcome, str) else (outcome.error or f"read via {outcome.source}")))
        current = config_data.current()
    mine = current.filter(current["provider_id"] == pid).sort("source")
    for row in mine.rows(named=True):
        st.markdown(f"**via {row['source']}** · sha256 `{row['sha256'][:12]}` · read {row['seen_count']}×, last "
                    f"{row['last_seen_at']:%Y-%m-%d %H:%M:%S} UTC")
        st.code(row["content"], language="yaml")
    st.markdown("**History**")
    show(config_data.history(pid), [Col("at", "When", "datetime"), Col("source", "Source"),
                                    Col("previous_sha256", "From"), Col("sha256", "To"), Col("cause", "Cause")], key="config_history")
    st.markdown("**Edits** (`boocontrol config edit`: validated, backed up, rolled back when unhealthy)")
    show(config_data.edits(pid), [Col("id", "Action", "int"), Col("requested_at", "When", "datetime"),
                                  Col("requested_by", "By"), Col("status", "Outcome"),
                                  Col("rolled_back", "Rolled back", "bool"), Col("backup_path", "Backup"),
                                  Col("error", "Why", width="large")], key="config_edits")
    st.caption(f"Edit safely (validated, backed up, rolled back when unhealthy): "
               f"`boocontrol config edit {pid}`")  # registry ids: [a-z0-9_.-]
