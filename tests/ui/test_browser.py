"""End to end in a real browser: `boocontrol up` (embedded Postgres, demo fleet, connector, action executor,
Streamlit) driven by Playwright with Debian's chromium. Checks what AppTest cannot: the pages render in a
browser, live tiles update in place, an action clicked in the UI runs on a host, writes are persisted."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser


@dataclass
class Cockpit:
    url: str
    dsn: str
    data_dir: Path

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return list(conn.execute(sql).fetchall())


def free_port_run(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports."""
    import random
    import socket

    for _ in range(200):
        base = random.randint(30000, 45000)
        try:
            socks = []
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def _stop(proc: subprocess.Popen[str], timeout: float) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cockpit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cockpit]:
    """`boocontrol up` against three simulated llama-swaps of our own (on free ports, so the test does not
    collide with a demo fleet someone else runs on the default ports)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    if not (ROOT / "cli" / "up.py").exists():
        pytest.skip("`boocontrol up` not available")
    data = tmp_path_factory.mktemp("up-data")
    ui_port, pg_port, base = free_port(), free_port(), free_port_run(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOCONTROL_")}
    env.update(
        {
            "BOOCONTROL_DATA_DIR": str(data),
            "BOOCONTROL_EMBEDDED_PG_PORT": str(pg_port),
            "BOOCONTROL_FLEET_FILE": str(data / "fleet.yaml"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    fleet = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "demo-fleet",
            "-n",
            "3",
            "--base-port",
            str(base),
            "--rpm",
            "30",
            "--registry-out",
            str(data / "fleet.yaml"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    up: subprocess.Popen[str] | None = None
    out: list[str] = []
    try:
        import httpx

        wait_for(
            lambda: (
                (data / "fleet.yaml").exists()
                and httpx.get(f"http://127.0.0.1:{base + 2}/wol-health", timeout=1).status_code == 200
            ),
            timeout=60,
            what="the demo fleet",
        )
        up = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up", "--no-prefect", "--ui-port", str(ui_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        assert up.stdout is not None
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("Cockpit:"):
                break
        if not any(ln.startswith("Cockpit:") for ln in out):
            pytest.fail("boocontrol up did not start:\n" + "".join(out))
        yield Cockpit(
            f"http://127.0.0.1:{ui_port}", f"postgresql://postgres@127.0.0.1:{pg_port}/boocontrol", data
        )
    finally:
        if up is not None:
            _stop(up, 90)
        _stop(fleet, 30)


@pytest.fixture(scope="module")
def browser_page(cockpit: Cockpit):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        yield page
        browser.close()


def goto(page, url: str, shots: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.wait_for_selector("[data-testid='stMetric'], [data-testid='stHeading']", timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0, f"{name}: exception on the page"


def wait_for(cond, timeout: float = 60, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_cockpit_in_a_browser(cockpit: Cockpit, browser_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser_page
    shots = Path(os.environ.get("BOOCONTROL_SCREENSHOTS", str(tmp_path)))
    shots.mkdir(parents=True, exist_ok=True)

    # Home: the connector brings the three demo providers online; the live tile updates without a reload
    goto(page, cockpit.url, shots, "0_home")
    online = page.locator("[data-testid='stMetric']").filter(has_text="Providers online")
    expect(online).to_contain_text("3 / 3", timeout=90_000)

    # Fleet: board, tiles, and a warm action clicked in the UI runs on the host through the executor
    goto(page, cockpit.url + "/Fleet", shots, "1_fleet")
    expect(page.locator("[data-testid='stMetric']").filter(has_text="Connection").first).to_contain_text(
        "connected", timeout=30_000
    )
    wait_for(lambda: cockpit.rows("SELECT count(*) FROM models")[0][0] > 0, what="models known")
    page.reload()
    page.get_by_role("button", name="Warm model").click()
    expect(page.get_by_text(re.compile(r"Queued #\d+"))).to_be_visible(timeout=15_000)
    final = ("succeeded", "failed", "refused")
    wait_for(
        lambda: cockpit.rows("SELECT status FROM actions ORDER BY id DESC LIMIT 1")[0][0] in final,
        timeout=90,
        what="the warm action to finish",
    )
    assert cockpit.rows("SELECT status, error FROM actions ORDER BY id DESC LIMIT 1") == [("succeeded", None)]
    (target,) = cockpit.rows("SELECT target FROM actions ORDER BY id DESC LIMIT 1")[0]
    wait_for(
        lambda: (
            cockpit.rows(f"SELECT state FROM models WHERE model_id = '{target}' AND state = 'ready'") != []
        ),
        what="the connector to see the warmed model ready",
    )
    page.screenshot(path=str(shots / "1_fleet_after_warm.png"), full_page=True)

    # Activity: server-side paginated table, histograms with percentiles
    goto(page, cockpit.url + "/Activity", shots, "2_activity")
    expect(page.get_by_text(re.compile(r"requests match"))).to_be_visible(timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=30_000)

    # Logs: live tail; an invalid regex is a clear message, not a traceback
    goto(page, cockpit.url + "/Logs", shots, "3_logs")
    box = page.get_by_label("Filter (regular expression, case-insensitive)")
    box.fill("([unclosed")
    box.press("Enter")
    expect(page.get_by_text(re.compile("Invalid regular expression"))).to_be_visible(timeout=15_000)
    assert page.locator("[data-testid='stException']").count() == 0

    # Models: Favorites first; a favorite clicked in the UI is persisted for everyone
    goto(page, cockpit.url + "/Models", shots, "4_models")
    expect(page.get_by_text("★ Favorites")).to_be_visible()
    page.get_by_role("button", name="★ Add to favorites").click()
    wait_for(lambda: cockpit.rows("SELECT count(*) FROM favorites")[0][0] == 1, what="favorite persisted")

    # Performance: six charts, hosts overlaid
    goto(page, cockpit.url + "/Performance", shots, "5_performance")
    expect(page.locator(".js-plotly-plot")).to_have_count(6, timeout=30_000)


def test_models_page_follows_an_action_where_it_was_clicked(cockpit: Cockpit, browser_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Warm a stopped model from the Models page: the status line under the button moves on by itself
    (queued/running → done, with its duration); its State tile follows what the connector lands within one
    refresh (2 s, plus its 1 s cache, plus a loaded machine), after the warm and after an Unload, with no reload.
    The demo fleet has live traffic that may swap the model again, so the tile is compared with the state the
    connector landed, read just before."""
    from playwright.sync_api import expect

    page = browser_page
    shots = Path(os.environ.get("BOOCONTROL_SCREENSHOTS", str(tmp_path)))
    shots.mkdir(parents=True, exist_ok=True)
    stopped = "SELECT model_id FROM models WHERE provider_id = 'demo-01' AND state = 'stopped'"
    wait_for(lambda: cockpit.rows(stopped), what="a stopped model on demo-01")
    # the last name is the one the demo traffic asks for least (Zipf-like popularity over sorted names)
    (model,) = cockpit.rows(stopped + " ORDER BY model_id DESC LIMIT 1")[0]
    goto(page, cockpit.url + "/Models", shots, "6_models_before")
    picker = page.get_by_label("Model (provider/model)")
    picker.click()
    picker.fill(f"demo-01/{model}")
    page.keyboard.press("Enter")
    state = page.locator("[data-testid='stMetric']").filter(has_text="State")
    expect(state).to_contain_text("stopped", timeout=30_000)

    def tile_follows_the_connector(timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            landed = cockpit.rows(
                f"SELECT state FROM models WHERE provider_id = 'demo-01' AND model_id = '{model}'"
            )[0][0]
            if str(landed) in state.inner_text():
                return str(landed)
            assert time.monotonic() < deadline, f"State tile {state.inner_text()!r}, the connector landed {landed!r}"
            time.sleep(0.2)

    queued = f"SELECT 1 FROM actions WHERE action = 'warm' AND target = '{model}'"
    for _ in range(3):  # a click that lands while the page still reruns for the pick is dropped by Streamlit
        page.get_by_role("button", name="🔥 Warm").click()
        try:
            wait_for(lambda: cockpit.rows(queued), timeout=20, what="the warm to be queued")
            break
        except AssertionError:
            continue
    line = page.locator("[data-testid='stAlert']").filter(has_text=f"warm {model}:")
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        texts = line.all_inner_texts()
        if texts and (not seen or seen[-1] != texts[0]):
            seen.append(texts[0])
        if texts and re.search(r": (done|failed|refused)", texts[0]):
            break
        page.wait_for_timeout(200)
    phases = [m.group(1) for s in seen if (m := re.search(r": (queued|running|done|failed|refused)", s))]
    phases = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert phases and phases[-1] == "done" and phases[0] in ("queued", "running") and len(phases) >= 2, seen
    assert phases == sorted(phases, key=["queued", "running", "done"].index), seen
    assert re.search(rf"done in (\d+m \d+s|[\d.]+ s).*: {re.escape(model)} is \w+$", seen[-1]), seen
    # the demo traffic may swap the model out again within a second of the warm: what must have landed is the
    # transition the warm caused, not a state that lasts (the tile is then compared with whatever is current)
    wait_for(lambda: cockpit.rows(
        "SELECT 1 FROM model_transitions t JOIN actions a ON a.action = 'warm' AND a.target = t.model_id "
        f"WHERE t.provider_id = 'demo-01' AND t.model_id = '{model}' AND t.to_state IN ('starting', 'ready') "
        "AND t.observed_at >= a.requested_at"
    ), what="the connector to land the warm")  # fmt: skip
    tile_follows_the_connector()
    page.screenshot(path=str(shots / "6_models_after_warm.png"), full_page=True)

    page.get_by_text("Cut off its requests").click()
    page.get_by_role("button", name="⏏️ Unload").click()
    expect(page.locator("[data-testid='stAlert']").filter(has_text=re.compile(r"#\d+ unload .*: done in"))).to_be_visible(
        timeout=60_000
    )
    tile_follows_the_connector()
    page.screenshot(path=str(shots / "6_models_after_unload.png"), full_page=True)
