"""Every page renders against the real test Postgres: no exception, and the key elements show the data."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, text
from streamlit.testing.v1 import AppTest

from tests.ui import seed
from tests.ui.conftest import run_page
from warehouse.captures import decode_capture, upsert_capture


def metric(at: AppTest, label: str) -> str:
    values = [str(m.value) for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return values[0]


def button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}: {[b.label for b in at.button]}"
    return found[0]


def actions_rows(db: Engine) -> list[tuple[str, str, str | None, str, str | None]]:
    with db.connect() as c:
        return [
            tuple(r)
            for r in c.execute(
                text("SELECT provider_id, action, target, status, requested_by FROM actions ORDER BY id")
            )
        ]


def test_home(live_fleet: datetime) -> None:
    at = run_page("app.py")
    assert not at.exception, at.exception
    assert metric(at, "Providers online") == "2 / 3"
    assert metric(at, "Hottest GPU") == "64 °C"
    assert [c.value for c in at.caption][-1] == "No actions yet."


def test_fleet_page(live_fleet: datetime) -> None:
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    assert metric(at, "Providers online") == "2 / 3"
    assert metric(at, "Models loaded") == "1"
    assert metric(at, "In flight") == "1 req"
    assert metric(at, "GPU power now") == "250 W"
    board = at.dataframe[0].value
    assert list(board["provider_id"]) == ["alpha", "beta", "gamma"]
    assert list(board["loaded_models"])[0] == "qwen (ready)"
    assert list(board["last_error"])[1] == "connect: connection refused"
    # a bounded sparkline (30 two-minute buckets, 31 when "now" falls inside a bucket), not 60 raw samples
    assert len(list(board["cpu_spark"])[0]) in (30, 31)
    # alpha's tiles (first provider selected)
    assert metric(at, "Connection") == "🟢 connected"
    assert metric(at, "Uptime").startswith("4h 59m") or metric(at, "Uptime").startswith("5h 00m")
    assert metric(at, "VRAM of 23.4 GiB") == "11.7 GiB"
    assert metric(at, "RAM of 31.2 GiB") == "15.6 GiB"
    assert metric(at, "Power") == "250 W"
    assert at.dataframe[1].value["request_id"].tolist() == ["11"]


def test_fleet_actions_are_queued_and_destructive_ones_need_confirmation(live_fleet: datetime) -> None:
    at = run_page("pages/1_Fleet.py")
    at.selectbox(key="fleet_alpha_warm_model").set_value("llama")
    button(at, "Warm model").click()
    at.run()
    assert not at.exception, at.exception
    assert button(at, "Unload all").disabled is True
    at.checkbox(key="fleet_alpha_all_ok").check()
    at.run()
    assert button(at, "Unload all").disabled is False
    button(at, "Unload all").click()
    at.run()
    assert not at.exception, at.exception
    queue = at.dataframe[-1].value
    assert queue["action"].tolist() == ["unload_all", "warm"]
    assert queue["status"].tolist() == ["⏳ queued", "⏳ queued"]


def test_fleet_actions_land_in_the_audit_table(live_fleet: datetime, app_env: Engine) -> None:
    at = run_page("pages/1_Fleet.py")
    at.checkbox(key="fleet_alpha_cancel_ok").check()
    at.run()
    button(at, "Cancel request").click()
    at.run()
    assert actions_rows(app_env) == [("alpha", "cancel_inflight", "11", "queued", "ui")]


def test_activity_page(live_fleet: datetime, app_env: Engine) -> None:
    at = run_page("pages/2_Activity.py")
    assert not at.exception, at.exception
    assert at.caption[0].value == "60 requests match · page 1 of 2"
    assert len(at.dataframe[0].value) == 50
    # prompt speeds are 100..6000 tok/s, generation 1..60 tok/s (linear-interpolated percentiles)
    assert metric(at, "Prompt requests") == "60"
    assert metric(at, "Prompt p50") == "3,050 tok/s"
    assert metric(at, "Generation p95") == "57.0 tok/s"
    assert metric(at, "Generation p99") == "59.4 tok/s"
    assert len(at.get("plotly_chart")) == 2
    at.number_input(key="activity_page").set_value(2)
    at.run()
    assert len(at.dataframe[0].value) == 10 and at.caption[0].value == "60 requests match · page 2 of 2"
    at.segmented_control(key="activity_status").set_value("error")
    at.run()
    assert not at.exception, at.exception
    assert at.caption[0].value == "6 requests match · page 1 of 1"
    assert set(at.dataframe[0].value["status_code"]) == {500}


def test_activity_fetch_refused_when_host_unreachable(live_fleet: datetime) -> None:
    at = run_page("pages/2_Activity.py")
    button(at, "Fetch capture from host").click()
    at.run()
    assert not at.exception, at.exception
    (err,) = at.error
    # Markdown source: the host's message is escaped (":" starts Streamlit's :color[…] and :icon: syntax)
    assert err.value.startswith(
        "Capture not fetched (refused): provider alpha is unreachable\\: ConnectError"
    )


def test_activity_capture_viewer_reassembles_stream(live_fleet: datetime, app_env: Engine) -> None:
    import base64
    import json

    body = "".join(
        f"data: {json.dumps({'choices': [{'delta': {'content': w}}]})}\n\n" for w in ("Hel", "lo!")
    )
    row = decode_capture(
        {
            "req_path": "/v1/chat/completions",
            "req_headers": {"Authorization": "Bearer sk-x"},
            "req_body": base64.b64encode(b'{"model":"qwen"}').decode(),
            "resp_headers": {"Content-Type": "text/event-stream"},
            "resp_body": base64.b64encode(body.encode() + b"data: [DONE]\n\n").decode(),
        }
    )
    with app_env.begin() as c:
        upsert_capture(c, "alpha", "ep1", 60, row, live_fleet)
    at = run_page("pages/2_Activity.py")
    assert not at.exception, at.exception
    assert at.code[0].value == "Hello!"
    assert '"model": "qwen"' in at.code[1].value
    assert at.json[0].value == '{"Authorization": "[REDACTED]"}'


def test_logs_page_filter_and_bad_regex(live_fleet: datetime) -> None:
    at = run_page("pages/3_Logs.py")
    assert not at.exception, at.exception
    assert at.code[0].value.splitlines() == [  # newest first by default
        "[INFO] request done",
        "[WARN] upstream slow",
        "[INFO] Health check passed on qwen",
    ]
    at.toggle(key="logs_newest_first").set_value(False)
    at.run()
    assert at.code[0].value.splitlines()[0] == "[INFO] Health check passed on qwen"
    at.text_input(key="logs_pattern").input(r"\bwarn\b")
    at.run()
    assert at.code[0].value == "[WARN] upstream slow"
    at.text_input(key="logs_pattern").input("([unclosed")
    at.run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("Invalid regular expression \\'\\(\\[unclosed\\'")


def test_models_page_favorites_first_and_hidden_when_offline(live_fleet: datetime, app_env: Engine) -> None:
    at = run_page("pages/4_Models.py")
    assert not at.exception, at.exception
    fav = at.dataframe[0].value
    assert list(zip(fav["provider_id"], fav["model_id"], strict=True)) == [("alpha", "qwen")]
    assert "beta/qwen \\(provider offline\\)" in at.caption[0].value  # markdown-escaped
    # provider groups follow; alpha/qwen is in its group too
    assert [len(d.value) for d in at.dataframe[1:]] == [2, 1, 1]
    assert "qwen" in list(at.dataframe[1].value["model_id"])
    assert len(at.expander) == 3
    # alpha/qwen: one timed load of 3 s
    at.selectbox(key="models_pick").set_value("alpha/qwen")
    at.run()
    assert metric(at, "Loads") == "1" and metric(at, "Load time p50") == "3.0 s"
    assert metric(at, "Last used").endswith("ago")
    # favorite a model: persisted for everyone
    at.selectbox(key="models_pick").set_value("gamma/embed")
    at.run()
    button(at, "★ Add to favorites").click()
    at.run()
    assert not at.exception, at.exception
    with app_env.connect() as c:
        favs = sorted(tuple(r) for r in c.execute(text("SELECT provider_id, model_id FROM favorites")))
    assert favs == [("alpha", "qwen"), ("beta", "qwen"), ("gamma", "embed")]
    fav = at.dataframe[0].value
    assert list(fav["model_id"]) == ["qwen", "embed"]


def test_performance_page(live_fleet: datetime, app_env: Engine) -> None:
    at = run_page("pages/5_Performance.py")
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 6
    cpu = json_of(charts[0])
    assert {t["name"] for t in cpu["data"]} == {"alpha", "gamma"}  # beta has no samples
    at.multiselect(key="perf_hosts").set_value([])
    at.run()
    assert at.info[0].value == "Pick one or more hosts."


def json_of(chart) -> dict:  # type: ignore[no-untyped-def]
    import json

    return json.loads(chart.proto.spec)


def test_pages_render_on_an_empty_database(app_env: Engine) -> None:
    for page in (
        "app.py",
        "pages/1_Fleet.py",
        "pages/2_Activity.py",
        "pages/3_Logs.py",
        "pages/4_Models.py",
        "pages/5_Performance.py",
    ):
        at = run_page(page)
        assert not at.exception, (page, at.exception)


def test_offline_provider_favorite_returns_when_it_reconnects(live_fleet: datetime, app_env: Engine) -> None:
    with app_env.begin() as c:
        c.execute(text("UPDATE connector_health SET status = 'connected' WHERE provider_id = 'beta'"))
        seed.perf(c, "beta", live_fleet - timedelta(seconds=30), cpu=1.0)
    at = run_page("pages/4_Models.py")
    fav = at.dataframe[0].value
    assert list(zip(fav["provider_id"], fav["model_id"], strict=True)) == [
        ("alpha", "qwen"),
        ("beta", "qwen"),
    ]


def test_hostile_model_names_flow_through(live_fleet: datetime, app_env: Engine) -> None:
    with app_env.begin() as c:
        seed.model(c, "alpha", 'bad"name<b>*x*', state="ready")
        seed.model(c, "alpha", "org/üñí-模型 v2", state="stopped")
        seed.favorite(c, "alpha", 'bad"name<b>*x*')
    at = run_page("pages/4_Models.py")
    assert not at.exception, at.exception
    assert 'bad"name<b>*x*' in list(at.dataframe[0].value["model_id"])
    at.selectbox(key="models_pick").set_value("alpha/org/üñí-模型 v2")
    at.run()
    assert not at.exception, at.exception
    button(at, "🔥 Warm").click()
    at.run()
    assert actions_rows(app_env) == [("alpha", "warm", "org/üñí-模型 v2", "queued", "ui")]
    fleet = run_page("pages/1_Fleet.py")
    assert not fleet.exception, fleet.exception
    assert 'bad"name<b>*x* (ready)' in list(fleet.dataframe[0].value["loaded_models"])[0]


def test_logs_page_model_log_from_an_unreachable_host(live_fleet: datetime) -> None:
    at = run_page("pages/3_Logs.py")
    assert at.selectbox(key="logs_source").options == ["proxy", "model: llama", "model: qwen"]
    at.selectbox(key="logs_source").set_value("model: qwen")
    at.run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("Cannot read the log of qwen on alpha: provider alpha is unreachable")


def test_activity_shows_the_error_of_failed_requests_and_no_none(live_fleet: datetime) -> None:
    """The error message sits right after the status (it was the 15th column, off-screen), an ok request has
    an empty Error, and unreported numbers read "—" instead of "None"."""
    import json

    at = run_page("pages/2_Activity.py")
    assert not at.exception, at.exception
    table = at.dataframe[0]
    order = list(table.proto.column_order)
    assert order[:5] == ["finished_at", "provider_id", "model_id", "status_code", "error_msg"]
    labels = {k: v.get("label") for k, v in json.loads(table.proto.columns).items()}
    assert labels["error_msg"] == "Error" and labels["gen_tps"] == "Gen speed"
    rows = table.value
    # newest first: ids 60 (500), 59, 58 ... of the seed; id 50 failed too
    assert list(rows["status_code"][:2]) == [500, 200]
    assert list(rows["error_msg"][:2]) == ["500 Internal Server Error", ""]
    assert list(rows["gen_tps"][:2]) == ["60.0 tok/s", "59.0 tok/s"]
    assert list(rows["prompt_tps"][:2]) == ["6,000 tok/s", "5,900 tok/s"]
    assert set(rows["cache_tokens"]) == {"—"}  # llama-swap's -1: not reported
    assert not rows.isna().any().any()


def test_logs_page_hides_boocontrols_own_polling(live_fleet: datetime, app_env: Engine) -> None:
    """About half of a proxy log is BooControl's own polling; hidden by default, one toggle shows it."""
    own = [
        '[INFO] Request 127.0.0.1 "GET /api/captures/12 HTTP/1.1" 200 812 "python-httpx/0.28.1" 1.2ms',
        '[INFO] Request 127.0.0.1 "GET /api/metrics/activity?min_id=40 HTTP/1.1" 200 2 "python-httpx/0.28.1" 0.4ms',
        '[INFO] Request 127.0.0.1 "GET /running HTTP/1.1" 200 90 "python-httpx/0.28.1" 0.3ms',
    ]
    theirs = [
        '[INFO] Request 10.0.0.7 "POST /v1/chat/completions HTTP/1.1" 200 1456 "python-httpx/0.28.1" 812ms',
        '[INFO] Request 10.0.0.8 "GET /api/captures/12 HTTP/1.1" 200 812 "Mozilla/5.0" 1.1ms',
    ]
    with app_env.begin() as c:
        seed.log(c, "alpha", "proxy", live_fleet - timedelta(seconds=1), "\n".join(own + theirs) + "\n")
    at = run_page("pages/3_Logs.py")
    assert not at.exception, at.exception
    shown = at.code[0].value.splitlines()
    assert shown[:2] == theirs[::-1] and not set(own) & set(shown)
    assert len(shown) == 5  # the two above and the seed's three
    assert "3 lines of BooControl's own polling hidden" in at.caption[0].value
    at.toggle(key="logs_hide_own").set_value(False)
    at.run()
    assert len(at.code[0].value.splitlines()) == 8
    assert "hidden" not in at.caption[0].value


def test_fleet_board_has_units_and_no_none(live_fleet: datetime) -> None:
    """An offline host's missing readings read "—" (they read "None"), readings carry their unit."""
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    rows = {r["provider_id"]: r for r in board.to_dict("records")}
    beta = rows["beta"]
    assert (beta["uptime"], beta["loaded_models"], beta["gpu_temp_c"], beta["cpu_util_pct"]) == ("—",) * 4
    assert beta["last_error"] == "connect: connection refused"
    alpha = rows["alpha"]
    assert (alpha["gpu_temp_c"], alpha["gpu_util_pct"], alpha["gpu_power_w"]) == ("64 °C", "80 %", "250 W")
    assert (alpha["mem_pct"], alpha["last_error"]) == ("50 %", "")
    shown = board.drop(columns=["gpu_util_spark", "cpu_spark", "mem_spark", "vram_pct"])
    assert not shown.isna().any().any()


def test_fleet_strings_in_messages_are_escaped(live_fleet: datetime, app_env: Engine) -> None:
    """A model id with Markdown in it is shown as typed in an error message (it turned text bold/italic)."""
    with app_env.begin() as c:
        seed.model(c, "alpha", "bad*x*<b>", state="stopped")
    at = run_page("pages/3_Logs.py")
    at.selectbox(key="logs_source").set_value("model: bad*x*<b>")
    at.run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("Cannot read the log of bad\\*x\\*\\<b\\> on alpha: provider alpha")


def test_models_page_one_load_gets_a_readable_time_axis(live_fleet: datetime) -> None:
    """alpha/qwen has one timed load (ready 2 h ago): the axis spans ±1 h around it, not a microsecond."""
    at = run_page("pages/4_Models.py")
    at.selectbox(key="models_pick").set_value("alpha/qwen")
    at.run()
    assert not at.exception, at.exception
    loads = next(
        json_of(c) for c in at.get("plotly_chart") if json_of(c)["layout"]["title"]["text"] == "Load times"
    )
    ready = (live_fleet - timedelta(hours=2) + timedelta(seconds=3)).replace(tzinfo=None)
    assert loads["layout"]["xaxis"]["range"] == [
        (ready - timedelta(hours=1)).isoformat(sep=" "),
        (ready + timedelta(hours=1)).isoformat(sep=" "),
    ]
