"""Freshness: an event on an instance → visible on the Fleet page, in a real browser.

Starts a throwaway Postgres, one simulated llama-swap instance (demo fleet code), the real connector,
the Streamlit cockpit, and Debian's chromium through Playwright on the Fleet page. Then it alternately
loads a model (a 1-token chat) and unloads everything, and for each event measures the time from just
before the request is sent to the moment the "Models loaded" metric in the browser shows the new count.

    .venv/bin/python bench/bench_freshness.py [--events 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.providers import Provider, dump_registry  # noqa: E402
from tests.support.connector import ConnectorThread, registry_for  # noqa: E402
from tests.support.llamaswap import free_port  # noqa: E402
from warehouse.cluster import EmbeddedCluster  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=30)
    args = ap.parse_args()
    from demo.fleet import serve_instances
    from demo.instance import GroupSpec, ModelSpec, SimulatedInstance

    base = Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    cluster = EmbeddedCluster(base / "pg", free_port())
    cluster.start()
    url = cluster.url()
    upgrade(url)
    models = [ModelSpec("alpha", group="g", load_s=0.05), ModelSpec("beta", group="g", load_s=0.05)]
    sim = SimulatedInstance(models, [GroupSpec("g", swap=True, exclusive=False)], jitter=0)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    fleet = asyncio.run_coroutine_threadsafe(serve_instances([sim]), loop).result(20)
    inst = fleet.base_urls[0]
    prov = Provider(id="fresh", label="Freshness host", base_url=inst)
    reg_file = base / "fleet.yaml"
    reg_file.write_text(dump_registry([prov], "fresh"))
    ui_port = free_port()
    env = {**os.environ, "BOOCONTROL_DATABASE_URL": url, "BOOCONTROL_FLEET_FILE": str(reg_file)}
    st = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                           str(ui_port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    delays: list[float] = []
    try:
        with ConnectorThread(registry_for(prov), url, base / "spool", flush_s=0.25, perf_poll_s=5.0):
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
                page = browser.new_page(viewport={"width": 1600, "height": 1100})
                deadline = time.monotonic() + 60
                while True:
                    try:
                        page.goto(f"http://127.0.0.1:{ui_port}/Fleet")
                        break
                    except Exception:  # noqa: BLE001 - streamlit still starting
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
                metric = page.locator("[data-testid='stMetric']").filter(has_text="Models loaded")
                metric.first.wait_for(timeout=60_000)

                def shown() -> str:
                    return metric.first.locator("[data-testid='stMetricValue']").inner_text()

                deadline = time.monotonic() + 30
                while shown().strip() != "0" and time.monotonic() < deadline:
                    time.sleep(0.1)
                with httpx.Client(timeout=30) as http:
                    for i in range(args.events):
                        expect = "0" if i % 2 else "1"
                        t0 = time.monotonic()
                        if i % 2 == 0:
                            http.post(inst + "/v1/chat/completions", json={
                                "model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
                        else:
                            http.post(inst + "/api/models/unload")
                        while shown().strip() != expect:
                            if time.monotonic() - t0 > 30:
                                raise TimeoutError(f"event {i} never showed up (page shows {shown()!r})")
                            time.sleep(0.05)
                        delays.append(time.monotonic() - t0)
                        time.sleep(0.5)
                browser.close()
    finally:
        st.terminate()
        st.wait(timeout=20)
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(20)
        cluster.stop()
    delays.sort()
    p95 = delays[max(0, int(round(0.95 * len(delays))) - 1)]
    print(f"events: {len(delays)} (model load / unload-all alternating) on one instance, one browser on /Fleet")
    print(f"event -> visible on the Fleet page: p50 {statistics.median(delays):.2f} s, p95 {p95:.2f} s, "
          f"max {delays[-1]:.2f} s   (target p95 < 3 s)")


if __name__ == "__main__":
    main()
