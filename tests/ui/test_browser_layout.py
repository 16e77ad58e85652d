"""Tiles in a real browser at 1400 px: no value cut off with an ellipsis ("connec…", "v250-5-g…", "1,518 to…").

Streamlit (the real server, `streamlit run app.py`) against the test Postgres seeded like the page tests,
driven by Playwright with Debian's chromium. AppTest cannot see layout, hence a browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser

# Every element inside a metric value that is drawn narrower than its text (Streamlit cuts it with "…").
_CUT = """
() => [...document.querySelectorAll('[data-testid="stMetricValue"]')]
  .filter(v => [v, ...v.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
  .map(v => v.innerText)
"""


@pytest.fixture()
def cockpit_url(live_fleet: datetime, app_env: Engine, db_url: str, tmp_path: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    with app_env.begin() as c:  # a git-describe version, as llama-swap builds from a checkout report it
        c.execute(text("UPDATE connector_health SET version = 'v250-5-g0bdb372' WHERE provider_id = 'alpha'"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOCONTROL_")}
    env.update(
        {
            "BOOCONTROL_DATABASE_URL": db_url,
            "BOOCONTROL_DATA_DIR": str(tmp_path),
            "BOOCONTROL_FLEET_FILE": str(tmp_path / "no-fleet.yaml"),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/_stcore/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_tiles_are_not_cut_off_at_1400_px(cockpit_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("BOOCONTROL_SCREENSHOTS", str(tmp_path)))
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        seen: dict[str, list[str]] = {}
        for path, expect in (("/Fleet", "v250-5-g0bdb372"), ("/Activity", "3,050 tok/s")):
            page.goto(cockpit_url + path)
            page.locator("[data-testid='stMetricValue']").filter(has_text=expect).first.wait_for(
                timeout=60_000
            )
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / f"layout{path.replace('/', '_')}.png"), full_page=True)
            values = page.locator("[data-testid='stMetricValue']").all_inner_texts()
            seen[path] = values
            assert page.evaluate(_CUT) == [], (path, values)
        browser.close()
    assert "🟢 connected" in seen["/Fleet"] and "v250-5-g0bdb372" in seen["/Fleet"]
    assert {"3,050 tok/s", "57.0 tok/s"} <= set(seen["/Activity"])
