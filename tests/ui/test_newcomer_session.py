"""A newcomer's first session, end to end in a real browser (Playwright, Debian's chromium).

A fresh data directory and a fresh shell (its own HOME, no ``BOOCONTROL_``/``PREFECT_`` variables): the real
``boocontrol up`` with nothing configured, so it runs the demo fleet, the embedded Postgres, the connector,
the action executor, Prefect (server, deployments, worker) and the cockpit. Then what someone trying it for
the first time does: every page is opened (and no page shows an exception or a traceback); a Warm clicked
on the Fleet page and an Unload clicked on the Models page are seen to complete under their buttons; the
digest is triggered with the command the Reports page itself suggests and is then shown there; a demo host
is benchmarked with the command the Benchmarks page suggests and the run appears in its run list, labelled
simulated. A screenshot is saved per step, in a directory the test prints (copied to
``$BOOCONTROL_SCREENSHOTS_DIR`` when set).

The demo fleet has its own live traffic, which loads and swaps models at any time: the test waits for what
the action caused (the action's own status line, the transition after the action was queued), never for a
current state the traffic may already have changed again.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import free_port
from tests.ui.test_browser import CHROMIUM, _stop, free_port_run, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "boocontrol"
pytestmark = pytest.mark.browser
# the bench-run hint's command made quick: one level, two requests of a few tokens
QUICK_BENCH = "--levels 1 --requests 2 --warmup 1 --prompt-tokens 20 --output-tokens 4"


@dataclass
class Newcomer:
    url: str
    dsn: str
    data: Path
    env: dict[str, str]  # a fresh shell's environment: own HOME, no BOOCONTROL_ / PREFECT_ variables
    up_output: list[str]

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    def argv(self, command: str) -> list[str]:
        """A command as the user types it in the repository (``boocontrol`` is the virtualenv's)."""
        argv = shlex.split(command)
        return [str(BIN) if argv[0] == "boocontrol" else argv[0], *argv[1:]]

    def shell(self, command: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(command), cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip


def fresh_shell(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOOCONTROL_", "PREFECT_")) and k not in ("XDG_STATE_HOME", "VIRTUAL_ENV")}  # fmt: skip
    env["HOME"] = str(home)
    return env


@pytest.fixture()
def newcomer(tmp_path: Path) -> Iterator[Newcomer]:
    """``boocontrol up`` on a fresh data dir with nothing configured (the demo fleet), on free ports."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    if not BIN.exists():
        pytest.skip(f"{BIN} not installed (bash scripts/install.sh)")
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    shell = fresh_shell(home)
    ui_port, prefect_port, pg_port, demo_base = free_port(), free_port(), free_port(), free_port_run(3)
    # only what keeps this test off the default ports of someone else's cockpit on this machine, and its
    # Streamlit from reloading modules that others edit in this work tree while the test runs
    up_env = {**shell, "BOOCONTROL_DATA_DIR": str(data), "BOOCONTROL_EMBEDDED_PG_PORT": str(pg_port),
              "BOOCONTROL_GATEWAY_PORT": str(free_port()), "PYTHONUNBUFFERED": "1",
              "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}  # fmt: skip
    up = subprocess.Popen(
        [str(BIN), "up", "--ui-port", str(ui_port), "--prefect-port", str(prefect_port),
         "--demo-base-port", str(demo_base)],
        cwd=ROOT, env=up_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    out: list[str] = []

    def read() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            out.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        while not any(ln.startswith("Cockpit:") for ln in out):
            if up.poll() is not None or time.monotonic() > deadline:
                pytest.fail("boocontrol up did not start:\n" + "".join(out))
            time.sleep(0.5)
        yield Newcomer(f"http://127.0.0.1:{ui_port}", f"postgresql://postgres@127.0.0.1:{pg_port}/boocontrol",
                       data, shell, out)  # fmt: skip
    finally:
        _stop(up, 120)


class Steps:
    """Screenshots, one per step, numbered in the order taken; every page checked for exceptions."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page, self.shots, self.n = page, shots, 0

    def shot(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.shots / f"{self.n:02d}_{name}.png"), full_page=True)

    def clean(self, name: str) -> None:
        assert self.page.locator("[data-testid='stException']").count() == 0, f"{name}: an exception on the page"
        body = self.page.locator("body").inner_text()
        assert "Traceback" not in body, f"{name}: a traceback on the page"

    def open(self, url: str, name: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("h1", timeout=60_000)
        self.page.wait_for_timeout(2000)  # the script run and its first fragment runs
        self.clean(name)
        self.shot(name)


def page_urls(base: str) -> dict[str, str]:
    """Every page of the app (``pages/N_Name.py`` is served at ``/Name``), including pages added later."""
    found = sorted(ROOT.glob("pages/*.py"), key=lambda p: int(p.stem.split("_", 1)[0]))
    return {p.stem.split("_", 1)[1]: f"{base}/{p.stem.split('_', 1)[1]}" for p in found}


def keyed(page: Any, key: str) -> Any:
    """The widget Streamlit drew with ``key`` (its container has the class ``st-key-<key>``, other characters
    than ``[a-zA-Z0-9_-]`` made ``-``): a refresh's stale copy of another widget never matches."""
    return page.locator("." + "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key))


def pick(page: Any, label: str, value: str, key: str | None = None) -> None:
    """Choose ``value`` in the Streamlit selectbox labelled ``label`` (or keyed ``key``) by typing it."""
    scope = keyed(page, key) if key else page
    box = scope.get_by_role("combobox", name=label, exact=True)
    box.click()
    box.fill(value)
    page.keyboard.press("Enter")


def click_until_queued(newcomer: Newcomer, button: Any, action: str, target: str) -> int:
    """Click ``button`` until the action is queued: a click landing while the page still reruns is dropped by
    Streamlit. Returns the action's id."""
    sql = "SELECT max(id) FROM actions WHERE action = %s AND target = %s AND requested_by = 'ui'"
    for _ in range(4):
        button.locator("button").click()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            (found,) = newcomer.rows(sql, (action, target))[0]
            if found is not None:
                return int(found)
            time.sleep(0.3)
    raise AssertionError(f"{button} on {target}: never queued")


def follow_status_line(page: Any, action_id: int, timeout: float = 150) -> list[str]:
    """The status line under the button, every distinct text until it says done/failed/refused."""
    line = page.locator("[data-testid='stAlert']").filter(has_text=f"#{action_id} ")
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = line.all_inner_texts()
        if texts and (not seen or seen[-1] != texts[0]):
            seen.append(texts[0])
        if texts and re.search(r": (done|failed|refused)", texts[0]):
            return seen
        page.wait_for_timeout(200)
    raise AssertionError(f"action #{action_id} never finished on the page: {seen}")


def test_newcomer_session(newcomer: Newcomer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    s = newcomer
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots of the newcomer's session: {shots}")
    urls = page_urls(s.url)
    for name in ("Fleet", "Activity", "Logs", "Models", "Performance", "Benchmarks", "Reports", "Analysis"):
        assert name in urls, f"no {name} page"
    bench: subprocess.Popen[str] | None = None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])  # fmt: skip
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            steps = Steps(page, shots)

            # Home: the demo fleet comes online by itself
            steps.open(s.url, "home")
            expect(page.locator("[data-testid='stMetric']").filter(has_text="Providers online")).to_contain_text(
                "3 / 3", timeout=90_000
            )
            wait_for(lambda: s.rows("SELECT count(DISTINCT provider_id) FROM models")[0][0] == 3, timeout=60,
                     what="every demo host's models")  # fmt: skip
            steps.shot("home_online")

            # Benchmarks: nothing yet; its hint is the command to run, here on a demo host (in the background)
            steps.open(urls["Benchmarks"], "benchmarks_empty")
            hint = page.get_by_text(re.compile("No benchmark runs yet")).inner_text()
            m = re.search(r"(boocontrol bench run) provider/model (--yes-take-over)", hint)
            assert m, hint
            (bench_model,) = s.rows("SELECT min(model_id) FROM models WHERE provider_id = 'demo-02'")[0]
            command = f"{m.group(1)} demo-02/{bench_model} {m.group(2)} {QUICK_BENCH}"
            bench = subprocess.Popen(s.argv(command), cwd=ROOT, env=s.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip

            # Reports: nothing yet; its hint's command triggers today's digest on the running Prefect server
            steps.open(urls["Reports"], "reports_empty")
            hint = page.get_by_text(re.compile("No reports yet")).inner_text()
            m = re.search(r"boocontrol prefect deployment run fleet-digest/\w+", hint)
            assert m, hint
            ran = s.shell(m.group(0))
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert "Traceback" not in ran.stdout + ran.stderr

            # Fleet: the demo host is labelled simulated; a Warm clicked here completes under its button
            steps.open(urls["Fleet"], "fleet")
            pick(page, "Provider", "demo-01")
            expect(page.locator("[data-testid='stMetric']").filter(has_text="Connection")).to_contain_text(
                "connected", timeout=30_000
            )
            expect(page.locator("[data-testid='stMetric']").filter(has_text="llama-swap (simulated)")).to_have_count(1)
            stopped = "SELECT model_id FROM models WHERE provider_id = 'demo-01' AND state = 'stopped'"
            wait_for(lambda: s.rows(stopped), what="a stopped model on demo-01")
            # the last name is the one the demo traffic asks for least (Zipf-like popularity over sorted names)
            (warm_model,) = s.rows(stopped + " ORDER BY model_id DESC LIMIT 1")[0]
            pick(page, "Model to load", warm_model, key="fleet_demo-01_warm_model")
            warm_id = click_until_queued(s, keyed(page, "fleet_demo-01_warm"), "warm", warm_model)
            seen = follow_status_line(page, warm_id)
            steps.shot("fleet_warm_done")
            phases = [m.group(1) for t in seen if (m := re.search(r": (queued|running|done|failed|refused)", t))]
            assert phases[-1] == "done", seen
            assert re.search(rf"#{warm_id} warm {re.escape(warm_model)}: done in .+: {re.escape(warm_model)} is \w+",
                             seen[-1]), seen  # fmt: skip
            # what the warm caused (the traffic may swap the model out again right after)
            wait_for(lambda: s.rows(
                "SELECT 1 FROM model_transitions t JOIN actions a ON a.id = %s "
                "WHERE t.provider_id = 'demo-01' AND t.model_id = a.target AND t.to_state IN ('starting', 'ready') "
                "AND t.observed_at >= a.requested_at", (warm_id,)), what="the connector to land the warm")  # fmt: skip
            steps.clean("fleet after the warm")
            # one set of action forms (the in-flight table coming and going no longer leaves a stale second set)
            expect(page.get_by_role("heading", name="Actions", exact=True)).to_have_count(1, timeout=10_000)

            # Activity: requests, with the error message of failed ones beside their status
            steps.open(urls["Activity"], "activity")
            expect(page.get_by_text(re.compile(r"[\d,]+ requests match"))).to_be_visible(timeout=30_000)

            # Logs: the live tail, BooControl's own polling hidden by default
            steps.open(urls["Logs"], "logs")
            expect(page.get_by_text("Hide BooControl's own requests")).to_be_visible()

            # Models: an Unload clicked here completes under its button
            loaded = s.rows("SELECT model_id FROM models WHERE provider_id = 'demo-01' AND state = 'ready' "
                            "ORDER BY model_id LIMIT 1")  # fmt: skip
            unload_model = loaded[0][0] if loaded else warm_model
            steps.open(urls["Models"], "models")
            pick(page, "Model (provider/model)", f"demo-01/{unload_model}")
            expect(page.locator("[data-testid='stMetric']").filter(has_text="State")).to_be_visible(timeout=30_000)
            key = f"models_demo-01_{unload_model}"
            keyed(page, key + "_unload_ok").get_by_text("Cut off its requests").click()
            unload_id = click_until_queued(s, keyed(page, key + "_unload"), "unload", unload_model)
            seen = follow_status_line(page, unload_id)
            steps.shot("models_unload_done")
            assert re.search(rf"#{unload_id} unload {re.escape(unload_model)}: done in .+: "
                             rf"{re.escape(unload_model)} is \w+", seen[-1]), seen  # fmt: skip
            assert s.rows("SELECT status FROM actions WHERE id = %s", (unload_id,)) == [("succeeded",)]
            steps.clean("models after the unload")

            # Performance: the demo hosts' series are labelled simulated in the legends
            steps.open(urls["Performance"], "performance")
            expect(page.locator(".js-plotly-plot")).to_have_count(6, timeout=30_000)
            expect(page.locator(".js-plotly-plot .legendtext").filter(has_text="(simulated)").first).to_be_visible(
                timeout=30_000
            )

            # Analysis, and any page added since
            steps.open(urls["Analysis"], "analysis")
            for name, url in urls.items():
                if name not in ("Fleet", "Activity", "Logs", "Models", "Performance", "Benchmarks", "Reports",
                                "Analysis"):  # fmt: skip
                    steps.open(url, name.lower())

            # Reports: the digest the hint triggered is shown (the Prefect worker runs it)
            report_box = page.get_by_label("Report")
            deadline = time.monotonic() + 180
            while True:
                page.goto(urls["Reports"])
                page.wait_for_selector("h1", timeout=60_000)
                page.wait_for_timeout(2000)
                steps.clean("reports")
                if report_box.count():
                    break
                assert time.monotonic() < deadline, "the digest never appeared on the Reports page"
                page.wait_for_timeout(3000)
            expect(page.get_by_text(re.compile(r"daily · .* generated"))).to_be_visible()
            expect(page.get_by_text(re.compile("Simulated hosts \\(the demo fleet"))).to_be_visible()
            steps.shot("reports_digest")
            assert s.rows("SELECT count(*) FROM reports")[0][0] >= 1

            # Benchmarks: the run the hint started is in the run list, labelled simulated
            assert bench is not None
            out, _ = bench.communicate(timeout=300)
            assert bench.returncode == 0, out
            assert "Traceback" not in out
            run = re.search(r"run #(\d+): (\w+)", out)
            assert run and run.group(2) == "completed", out
            run_id = int(run.group(1))
            assert s.rows("SELECT status, simulated FROM bench_runs WHERE id = %s", (run_id,)) == [
                ("completed", True)
            ]
            steps.open(urls["Benchmarks"], "benchmarks")
            pick(page, "Provider / model", f"demo-02/{bench_model}")
            expect(page.get_by_text(re.compile(rf"#{run_id} .*\(simulated\)")).first).to_be_visible(timeout=30_000)
            expect(page.get_by_text(re.compile("of these runs measured a simulated host"))).to_be_visible()
            steps.shot("benchmarks_run")
            browser.close()
    finally:
        if bench is not None and bench.poll() is None:
            bench.kill()
            bench.wait(10)
        if dest := os.environ.get("BOOCONTROL_SCREENSHOTS_DIR"):
            shutil.copytree(shots, dest, dirs_exist_ok=True)
            print(f"screenshots copied to {dest}")
