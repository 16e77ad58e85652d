"""Every page against a Postgres filled by the REAL connector following the demo fleet (no seeded rows)."""

from __future__ import annotations

import pytest

from core.providers import Provider
from demo.fleet import demo_fleet_in_thread
from tests.support.connector import ConnectorThread, chat, query, registry_for, wait_until
from tests.ui.conftest import run_page

PAGES = ["app.py", "pages/1_Fleet.py", "pages/2_Activity.py", "pages/3_Logs.py", "pages/4_Models.py",
         "pages/5_Performance.py", "pages/6_Benchmarks.py", "pages/7_Reports.py", "pages/8_Analysis.py"]


@pytest.fixture()
def connector_filled(app_env, db_url, tmp_path):
    with demo_fleet_in_thread(2, perf_every_s=1.0, load_scale=0.02) as fleet:
        provs = [Provider(id=f"demo-{i}", label=f"Demo {i}", base_url=u) for i, u in enumerate(fleet.base_urls)]
        with ConnectorThread(registry_for(*provs), db_url, tmp_path / "spool"):
            wait_until(lambda: query(db_url, "SELECT count(*) FROM connector_health WHERE status='connected'")
                       == [(2,)], what="both connected")
            for sim, url in zip(fleet.sims, fleet.base_urls, strict=True):
                model = sorted(sim.models)[0]
                for _ in range(3):
                    assert chat(url, model).status_code == 200
            wait_until(lambda: query(db_url, "SELECT count(*) FROM activity") == [(6,)], what="6 activity rows")
            wait_until(lambda: query(db_url, "SELECT count(DISTINCT provider_id) FROM perf_samples") == [(2,)],
                       timeout=15, what="perf samples from both")
            yield provs


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_what_the_connector_landed(connector_filled, page):
    at = run_page(page)
    assert not at.exception, f"{page}: {at.exception}"
    if page == "pages/1_Fleet.py":
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Providers online"] == "2 / 2"
        assert metrics["Models loaded"] == "2"
