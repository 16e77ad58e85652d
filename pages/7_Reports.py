"""Reports: the daily and weekly fleet digests stored by the fleet-digest flow."""

import streamlit as st

from ui import reports_data, widgets

widgets.page_setup("Reports", "📰")

kind_col, today_col = st.columns([3, 1])
with kind_col:
    kind = st.segmented_control("Kind", ["all", "daily", "weekly"], default="all", key="reports_kind")
if today_col.button("Render today so far", key="reports_today", help="Today's digest from 00:00 UTC to now"):
    st.session_state["reports_pick"] = reports_data.render_so_far("daily")
listing = reports_data.report_list(None if kind in (None, "all") else kind)
if listing.height == 0:
    st.info(
        "No reports yet. `fleet-digest/today` renders today's digest so far every hour (or press "
        "*Render today so far*), `fleet-digest/daily` the whole of yesterday at 01:30 UTC and "
        "`fleet-digest/weekly` last week every Monday; run one now from the Prefect UI or with "
        "`boocontrol prefect deployment run fleet-digest/today`."
    )
    st.stop()

titles = dict(zip(listing["id"].to_list(), listing["title"].to_list(), strict=True))
if st.session_state.get("reports_pick") not in titles:
    st.session_state.pop("reports_pick", None)
picked = st.selectbox("Report", list(titles), format_func=lambda i: titles[i], key="reports_pick")
report = reports_data.report(picked)
if report is None:
    st.warning("That report no longer exists.")
    st.stop()

st.caption(
    f"{report.kind} · {report.period_start:%Y-%m-%d %H:%M} → {report.period_end:%Y-%m-%d %H:%M} UTC · "
    f"generated {report.generated_at:%Y-%m-%d %H:%M} UTC"
)
left, right, _ = st.columns([1, 1, 4])
stem = f"{report.kind}-digest-{report.period_start:%Y-%m-%d}"
left.download_button("Markdown", report.markdown, file_name=f"{stem}.md", key="reports_md")
right.download_button(
    "HTML",
    reports_data.standalone_html(picked),
    file_name=f"{stem}.html",
    mime="text/html",
    key="reports_html",
)

for name, fig in reports_data.report_figures(report).items():
    widgets.chart(fig, key=f"reports_fig_{name}")
st.markdown(report.markdown)
