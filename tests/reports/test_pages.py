"""AppTest smoke tests of the Reports page (test Postgres) and the Analysis page (a temporary lake)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.settings import get_settings
from reports.digest import build_digest, render_digest, store_report
from tests.flows.synthetic import load_activity_scenario, load_gpu_scenario
from warehouse.exports import export_days
from warehouse.rollups import rollup_window

ROOT = Path(__file__).resolve().parents[2]
D = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture()
def ui_env(db, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(tmp_path / "no-fleet.yaml"))
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield tmp_path
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


def run(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_reports_page_without_reports_says_how_to_make_one(ui_env):
    at = run("7_Reports.py")
    assert "fleet-digest/daily" in at.info[0].value


def test_reports_page_shows_a_stored_digest(ui_env, db):
    load_activity_scenario(db)
    with db.begin() as conn:
        rollup_window(conn, D - timedelta(days=1), D + timedelta(days=1))
    for kind in ("daily", "weekly"):
        with db.begin() as conn:
            store_report(conn, render_digest(build_digest(db, kind, D)))
    at = run("7_Reports.py")
    assert sorted(at.selectbox(key="reports_pick").options) == [
        "Fleet digest — 2026-03-02",
        "Fleet digest — week 2026-W10 (from 2026-03-02)",
    ]
    body = "\n".join(m.value for m in at.markdown)
    assert "| Requests | 5 |" in body
    at.segmented_control(key="reports_kind").set_value("weekly").run()
    assert not at.exception
    assert len(at.selectbox(key="reports_pick").options) == 1


def test_analysis_page_without_a_lake_says_how_to_fill_it(ui_env):
    at = run("8_Analysis.py")
    assert "export-parquet/daily" in at.info[0].value


def test_analysis_page_reads_the_lake(ui_env, db):
    load_gpu_scenario(db)
    load_activity_scenario(db)
    with db.begin() as conn:
        rollup_window(conn, D, D + timedelta(days=1))
    export_days(db, ui_env / "lake", [D.date()], ["activity", "rollup_activity_1d", "rollup_gpu_1h"])
    at = run("8_Analysis.py")
    usage = at.dataframe[0].value
    assert list(usage["requests"]) == [5]
    at.selectbox(key="analysis_grain").set_value("month").run()
    assert not at.exception
    assert len(at.dataframe[-1].value) == 3  # the lake inventory


def test_reports_page_draws_figures_dark_and_fleet_names_as_text(ui_env, db):
    """Stored figures come back in the app's template (even a report stored with a white one) and a hostile
    model id stays literal text in the Markdown and in the chart legend/ticks."""
    import json

    from reports.figures import BG
    from tests.flows.synthetic import add_provider, add_request, at

    load_activity_scenario(db)
    with db.begin() as conn:
        add_provider(conn)
        add_request(conn, at(12, 30), 100, model='bad"name<b>*x*')
        rollup_window(conn, D, D + timedelta(days=1))
    rendered = render_digest(build_digest(db, "daily", D))
    old_white = {k: {**v, "layout": {**v["layout"], "template": {"layout": {"paper_bgcolor": "white"}}}}
                 for k, v in rendered.figures.items()}  # fmt: skip
    with db.begin() as conn:
        store_report(conn, type(rendered)(**{**rendered.__dict__, "figures": old_white}))
    at_ = run("7_Reports.py")
    charts = [json.loads(c.proto.spec) for c in at_.get("plotly_chart")]
    assert len(charts) == 3
    assert {c["layout"]["template"]["layout"]["paper_bgcolor"] for c in charts} == {BG}
    tokens = next(c for c in charts if c["layout"]["title"]["text"] == "Tokens per provider/model")
    assert 'p1/bad"name&lt;b&gt;*x*' in tokens["data"][0]["y"]
    body = "\n".join(m.value for m in at_.markdown)
    assert '| p1 | bad\\"name\\<b\\>\\*x\\* | 1 | 10 | 0 | 5 | 0 | 0.0 |' in body


def test_analysis_page_tables_and_charts_for_people(ui_env, db):
    """One exported day: named columns with units, charts in the app's template, the day as one category
    (not a date axis zoomed into a millisecond)."""
    import json

    from reports.figures import BG

    load_activity_scenario(db)
    with db.begin() as conn:
        rollup_window(conn, D, D + timedelta(days=1))
    export_days(db, ui_env / "lake", [D.date()], ["activity", "rollup_activity_1d"])
    at_ = run("8_Analysis.py")
    table = at_.dataframe[0]
    labels = {k: v.get("label") for k, v in json.loads(table.proto.columns).items()}
    assert labels["busy_h"] == "Busy" and labels["output_tokens"] == "Output"
    assert list(table.proto.column_order)[:2] == ["period", "provider_id"]
    charts = [json.loads(c.proto.spec) for c in at_.get("plotly_chart")]
    assert {c["layout"]["template"]["layout"]["paper_bgcolor"] for c in charts} == {BG}
    usage = charts[0]
    assert usage["layout"]["xaxis"]["type"] == "category" and usage["data"][0]["x"] == ["2026-03-02"]


def test_reports_page_renders_today_so_far_on_a_new_install(ui_env, db):
    """A new install has no closed day: one click gives today's digest with today's numbers."""
    from tests.flows.synthetic import add_provider, add_request

    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with db.begin() as conn:
        add_provider(conn)
        for _ in range(3):
            add_request(conn, today + (now - today) / 2, 1000, out=7)
    at_ = run("7_Reports.py")
    assert "Render today so far" in at_.info[0].value
    at_.button(key="reports_today").click().run()
    assert not at_.exception, at_.exception
    title = at_.selectbox(key="reports_pick").format_func(at_.selectbox(key="reports_pick").value)
    assert title.startswith(f"Fleet digest — {today:%Y-%m-%d} (so far, to ")
    body = "\n".join(m.value for m in at_.markdown)
    assert "| Requests | 3 |" in body and "| Output tokens | 21 |" in body


def test_reports_page_shows_observed_uptime(ui_env, db):
    """The digest of a day with known boots, as the Reports page shows it (before: fresh 0.0 %, and a
    provider with no boot that day 100.0 %)."""
    from tests.reports.test_uptime import load_boots

    load_boots(db)
    for day in (D - timedelta(days=1), D):
        with db.begin() as conn:
            store_report(conn, render_digest(build_digest(db, "daily", day)))
    at_ = run("7_Reports.py")
    body = "\n".join(m.value for m in at_.markdown)  # the newest report (D) is picked first
    assert "| fresh | v250 | 1 | 0 | 18m | 1.2 % |" in body
    at_.selectbox(key="reports_pick").set_value(at_.selectbox(key="reports_pick").options[1]).run()
    body = "\n".join(m.value for m in at_.markdown)
    assert "| fresh | — | 0 | 0 | 0m | 0.0 % |" in body
    assert "| old | v239 | 0 | 0 | 0m | 0.0 % |" in body
