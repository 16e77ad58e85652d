"""The Reports page shows a digest as soon as it is stored: a newcomer runs the page's own hint
(`boocontrol prefect deployment run fleet-digest/today`), the worker stores the digest, the next reload shows it
(the list used to be cached for a minute, so the page kept saying "No reports yet")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import ROOT

D = datetime(2026, 3, 2, tzinfo=UTC)


def test_a_digest_stored_after_the_page_was_opened_shows_on_the_next_run(app_env: Engine) -> None:
    from reports.digest import build_digest, render_digest, store_report
    from tests.flows.synthetic import load_activity_scenario
    from warehouse.rollups import rollup_window

    at = AppTest.from_file(str(ROOT / "pages/7_Reports.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.info[0].value.startswith("No reports yet.")
    load_activity_scenario(app_env)
    with app_env.begin() as conn:
        rollup_window(conn, D - timedelta(days=1), D + timedelta(days=1))
        store_report(conn, render_digest(build_digest(app_env, "daily", D)))
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="reports_pick").options == ["Fleet digest — 2026-03-02"]
    assert not at.info
