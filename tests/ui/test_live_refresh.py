"""The cockpit stays in step with the fleet: what a page's refresh (its fragments only, `tests.ui.live.refresh`)
redraws, against the real test Postgres — seeded rows, and rows landed by the real connector from the demo
fleet with the real action executor running the actions clicked on the page."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import streamlit as st
from sqlalchemy import Engine, text
from streamlit.testing.v1 import AppTest

from actions.executor import drain_once, run_forever
from actions.queue import enqueue
from core.providers import Provider
from demo.fleet import DemoFleet, demo_fleet_in_thread
from tests.support.connector import ConnectorThread, query, registry_for, wait_until
from tests.ui import seed
from tests.ui.conftest import run_page
from tests.ui.live import refresh
from warehouse import lease
from warehouse.db import psycopg_dsn

REFRESH_S = 2.0  # run_every of the Fleet provider and Models fragments


def metrics(at: AppTest, label: str) -> list[str]:
    return [str(m.value) for m in at.metric if m.label == label]


def frame_with(at: AppTest, column: str):  # type: ignore[no-untyped-def]
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a {column!r} column was redrawn"
    return found[0]


def status_lines(at: AppTest) -> list[str]:
    """The action status lines drawn (info / success / error boxes starting with the action id)."""
    return [e.value for e in (*at.info, *at.success, *at.error) if str(e.value).startswith("\\#")]


def button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}: {[b.label for b in at.button]}"
    return found[0]


def test_fleet_refresh_redraws_the_cancel_choices_from_the_inflight_table(live_fleet: datetime,
                                                                         app_env: Engine) -> None:
    """Cancel offered request 12 while the live table showed 14 and 16: the form was built once at page load."""
    at = run_page("pages/1_Fleet.py")
    assert at.selectbox(key="fleet_alpha_cancel_id").options == ["11"]
    with app_env.begin() as c:  # request 11 finished, 14 and 16 came in
        seed.inflight(c, "alpha", live_fleet + timedelta(seconds=1), [
            {"id": "14", "model": "qwen", "req_path": "/v1/chat/completions", "method": "POST", "elapsed_ms": 900},
            {"id": "16", "model": "llama", "req_path": "/v1/completions", "method": "POST", "elapsed_ms": 2500},
        ])  # fmt: skip
    st.cache_data.clear()  # a refresh interval later (live reads are cached for 1 s)
    refresh(at)
    assert not at.exception, at.exception
    table = frame_with(at, "request_id")
    assert table["request_id"].tolist() == ["16", "14"]  # longest running first
    assert at.selectbox(key="fleet_alpha_cancel_id").options == ["16", "14"]
    assert metrics(at, "In flight") == ["2 req", "2 req"]  # the fleet tile and alpha's tile


def test_in_flight_tiles_count_what_the_tables_beside_them_list(live_fleet: datetime, app_env: Engine) -> None:
    """The In-flight tile said 0 next to a table listing a request. Two reads of the fleet can disagree (a
    snapshot lands between them; here alpha's count column says 0 while it lists request 11); the tile now
    counts the table's rows. And the fleet tile, which sums connected providers only, equals the board's
    column: a provider being reconnected (gamma, with a snapshot listing one request) shows 0 there too."""
    with app_env.begin() as c:
        c.execute(text("UPDATE inflight_snapshots SET count = 0 WHERE provider_id = 'alpha'"))
        c.execute(text("UPDATE connector_health SET status = 'reconnecting' WHERE provider_id = 'gamma'"))
        seed.inflight(c, "gamma", live_fleet - timedelta(seconds=2), [{"id": "3", "model": "embed"}])
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    fleet_tile, alpha_tile = metrics(at, "In flight")
    assert fleet_tile == f"{int(board['inflight'].sum())} req" == "0 req"
    assert frame_with(at, "request_id")["request_id"].tolist() == ["11"]
    assert alpha_tile == "1 req"


def test_activity_refresh_shows_new_requests(live_fleet: datetime, app_env: Engine) -> None:
    """Activity did not refresh: the table (and the window it reads) were fixed at page load."""
    at = run_page("pages/2_Activity.py")
    assert at.caption[0].value == "60 requests match · page 1 of 2"
    with app_env.begin() as c:
        seed.activity(c, "alpha", "ep1", 61, live_fleet + timedelta(seconds=2), model_id="qwen", pps=50.0, tps=5.0)
    st.cache_data.clear()
    refresh(at)
    assert not at.exception, at.exception
    assert at.caption[0].value == "61 requests match · page 1 of 2"
    assert at.dataframe[0].value["upstream_id"].tolist()[0] == 61


def test_models_page_shows_an_unload_within_the_refresh_interval(live_fleet: datetime, app_env: Engine) -> None:
    """After a successful Unload the Models page still said 'ready' 30 s later: the catalog was drawn once
    (and cached for 10 s). The connector lands the new state; one refresh interval later the page shows it."""
    at = run_page("pages/4_Models.py")
    at.selectbox(key="models_pick").set_value("alpha/qwen")
    at.run()
    assert metrics(at, "State") == ["🟢 ready"]
    with app_env.begin() as c:  # what the connector writes when llama-swap reports the unload
        c.execute(text("UPDATE models SET state = 'stopped' WHERE provider_id = 'alpha' AND model_id = 'qwen'"))
        seed.transition(c, "alpha", "qwen", live_fleet, "stopped", "ready")
    time.sleep(REFRESH_S)  # no cache cleared: what the page reads must be no older than its refresh interval
    refresh(at)
    assert not at.exception, at.exception
    assert metrics(at, "State") == ["⚫ stopped"]
    favorites, alpha_group = at.dataframe[0].value, at.dataframe[1].value
    assert favorites.loc[favorites["model_id"] == "qwen", "state"].tolist() == ["⚫ stopped"]
    assert dict(zip(alpha_group["model_id"], alpha_group["state"], strict=True)) == {
        "llama": "⚫ stopped", "qwen": "⚫ stopped"}  # fmt: skip


def test_status_line_where_warm_was_clicked_says_what_it_waits_for(live_fleet: datetime, app_env: Engine,
                                                                    db_url: str) -> None:
    """A warm that waits says why (here: a benchmark holds the host), then its outcome, at the button."""
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as conn:
        lease.try_acquire(conn, "alpha", lease.SCOPE_HOST, "bench@box:7:abc", "bench run 1f2e", ttl_s=300)
    at = run_page("pages/1_Fleet.py")
    at.selectbox(key="fleet_alpha_warm_model").set_value("llama")
    button(at, "Warm model").click()
    at.run()
    assert not at.exception, at.exception
    (line,) = status_lines(at)
    assert re.fullmatch(
        r"\\#(\d+) warm llama\\: queued for \d+\\\.\d s\\: waiting for the host lease held by "
        r"bench@box\\:7\\:abc \\\(bench run 1f2e\\\) for \d+\\\.\d s", line), line  # fmt: skip
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as conn:
        assert lease.release(conn, "alpha", lease.SCOPE_HOST, "bench@box:7:abc")
    assert drain_once(app_env, registry_for(Provider("alpha", "Alpha", "http://127.0.0.1:9"))) == 1
    st.cache_data.clear()
    refresh(at)
    (done,) = status_lines(at)
    assert done.startswith(r"\#") and r"warm llama\: refused\: provider alpha is unreachable\: ConnectError" in done
    assert [e.value for e in at.error] == [done]


# --- the demo fleet, the real connector and the real executor ----------------------------------------------


@pytest.fixture()
def demo_cockpit(app_env: Engine, db_url: str, tmp_path: Path) -> Iterator[tuple[DemoFleet, Provider]]:
    """One demo host (real load times: 1-8 s) followed by the real connector; the executor is started by the
    test (so the first action is seen queued)."""
    with demo_fleet_in_thread(2, perf_every_s=1.0) as fleet:
        provs = [Provider(id=f"demo-{i}", label=f"Demo {i}", base_url=u) for i, u in enumerate(fleet.base_urls)]
        with ConnectorThread(registry_for(*provs), db_url, tmp_path / "spool"):
            wait_until(lambda: query(db_url, "SELECT count(*) FROM connector_health WHERE status='connected'")
                       == [(2,)], what="both connected")  # fmt: skip
            wait_until(lambda: query(db_url, "SELECT count(*) FROM models WHERE provider_id = 'demo-0'")
                       == [(len(fleet.sims[0].models),)], what="demo-0's models known")  # fmt: skip
            yield fleet, provs[0]


def _phase(line: str) -> str:
    for phase in ("queued", "running", "done", "failed", "refused"):
        if f"\\: {phase}" in line:
            return phase
    return line


def test_warm_then_unload_on_the_demo_fleet_from_the_models_page(demo_cockpit: tuple[DemoFleet, Provider],
                                                                 app_env: Engine, db_url: str) -> None:
    """Warm a model clicked on the Models page: its status line moves queued → running → done where it was
    clicked, naming what it waits for; then Unload: once the connector has landed the state, one refresh
    interval later the page says stopped."""
    fleet, prov = demo_cockpit
    sim = fleet.sims[0]
    model = max(sim.models, key=lambda m: sim.models[m].spec.load_s)  # the slowest load: 'running' is visible
    at = run_page("pages/4_Models.py")
    at.selectbox(key="models_pick").set_value(f"demo-0/{model}")
    at.run()
    assert metrics(at, "State") == ["⚫ stopped"]
    button(at, "🔥 Warm").click()
    at.run()
    assert not at.exception, at.exception
    phases = [_phase(line) for line in status_lines(at)]
    stop = threading.Event()
    executor = threading.Thread(target=run_forever, args=(app_env, registry_for(prov), None, stop), daemon=True)
    executor.start()
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and phases[-1] not in ("done", "failed", "refused"):
            time.sleep(0.3)
            refresh(at)
            assert not at.exception, at.exception
            lines += status_lines(at)
            phases += [_phase(x) for x in status_lines(at)]
        seen = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
        assert seen == ["queued", "running", "done"], lines
        assert any(re.search(r"running for [\d\\.]+ s\\: (loading for|asking llama\\-swap)", x) for x in lines), lines
        assert lines[-1].endswith("is ready"), lines
        # the same refresh's queue table agrees with the line (its reads are not older than the action's end)
        log = frame_with(at, "action")
        assert log.loc[log["action"] == "warm", "status"].tolist() == ["✅ succeeded"]
        # Unload it (destructive: ticked first), then the page follows the connector
        at.run()
        at.selectbox(key="models_pick").set_value(f"demo-0/{model}")
        at.run()
        at.checkbox(key=f"models_demo-0_{model}_unload_ok").check()
        at.run()
        button(at, "⏏️ Unload").click()
        at.run()
        wait_until(lambda: query(db_url, "SELECT status FROM actions ORDER BY id DESC LIMIT 1") == [("succeeded",)],
                   timeout=60, what="the unload to finish")  # fmt: skip
        wait_until(lambda: query(db_url, "SELECT state FROM models WHERE provider_id = 'demo-0' AND model_id = %s",
                                 (model,)) == [("stopped",)], what="the connector to land 'stopped'")  # fmt: skip
        time.sleep(REFRESH_S)
        refresh(at)
        assert not at.exception, at.exception
        assert metrics(at, "State") == ["⚫ stopped"]
        assert any(_phase(x) == "done" and "unload" in x for x in status_lines(at)), status_lines(at)
        # Warm it again: now its first load is measured, and the line compares the load with it
        at.run()
        at.selectbox(key="models_pick").set_value(f"demo-0/{model}")
        at.run()
        button(at, "🔥 Warm").click()
        at.run()
        again: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("warm" in x and _phase(x) == "done" for x in again):
            time.sleep(0.3)
            refresh(at)
            again += [x for x in status_lines(at) if " warm " in x]
        assert any(re.search(r"loading for [\d\\.]+ s of a measured \\~[\d\\.]+ s", x) for x in again), again
    finally:
        stop.set()
        executor.join(timeout=30)


def test_home_refresh_redraws_the_action_queue(live_fleet: datetime, app_env: Engine) -> None:
    """The home page's pending actions were drawn once: an action queued elsewhere never appeared."""
    at = run_page("app.py")
    assert [c.value for c in at.caption][-1] == "No actions yet."
    enqueue(app_env, "alpha", "warm", "llama", requested_by="cli")
    st.cache_data.clear()
    refresh(at)
    assert not at.exception, at.exception
    log = frame_with(at, "action")
    assert (log["provider_id"].tolist(), log["action"].tolist(), log["status"].tolist()) == (
        ["alpha"], ["warm"], ["⏳ queued"])  # fmt: skip


def test_a_tick_confirms_only_the_request_it_was_given_for(live_fleet: datetime, app_env: Engine) -> None:
    """'Abort it' was ticked for request 11; 11 finished and the choices moved to 16 and 14: the refresh clears
    the tick instead of letting one click cancel a request nobody confirmed."""
    at = run_page("pages/1_Fleet.py")
    at.checkbox(key="fleet_alpha_cancel_ok").check()
    at.run()
    assert button(at, "Cancel request").disabled is False
    with app_env.begin() as c:
        seed.inflight(c, "alpha", live_fleet + timedelta(seconds=1), [
            {"id": "14", "model": "qwen", "elapsed_ms": 900}, {"id": "16", "model": "qwen", "elapsed_ms": 2500}])  # fmt: skip
    st.cache_data.clear()
    refresh(at)
    assert at.selectbox(key="fleet_alpha_cancel_id").value == "16"
    assert at.checkbox(key="fleet_alpha_cancel_ok").value is False
    assert button(at, "Cancel request").disabled is True
    at.checkbox(key="fleet_alpha_cancel_ok").check()
    at.run()
    button(at, "Cancel request").click()
    at.run()
    with app_env.connect() as c:
        assert c.execute(text("SELECT action, target FROM actions")).all() == [("cancel_inflight", "16")]
