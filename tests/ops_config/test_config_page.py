"""The Config page (AppTest against the real test Postgres): fleet diff, lint findings, a host's stored config
and its history, with exact expectations."""

from __future__ import annotations

from sqlalchemy import Engine

from tests.ui import seed
from tests.ui.conftest import app_env, run_page  # noqa: F401 - the fixture
from warehouse.config_store import record_config
from warehouse.queries.actions import finish_action, insert_action

ALPHA = """\
models:
  qwen: {cmd: "llama-server --port 5800 -m /m/qwen-Q4_K_M.gguf -c 8192", ttl: 300}
peers:
  b: {proxy: "http://beta.test:8080", models: [gemma]}
"""
ALPHA2 = ALPHA.replace("ttl: 300", "ttl: 600")
BETA = """\
models:
  qwen: {cmd: "llama-server --port 5900 -m /m/qwen-Q8_0.gguf -c 8192", ttl: 300}
  gemma: {cmd: "llama-server -m /m/gemma-<b>bold</b>.gguf"}
peers:
  a: {proxy: "http://alpha.test:8080/", models: [qwen]}
"""


def test_config_page(app_env: Engine) -> None:  # noqa: F811
    with app_env.begin() as c:
        seed.provider(c, "alpha")
        seed.provider(c, "beta")
        r1 = record_config(c, "alpha", "mcp", ALPHA)
        r2 = record_config(c, "alpha", "mcp", ALPHA2, cause="edit #4")
        record_config(c, "beta", "ssh", BETA)
        edit = insert_action(c, "alpha", "edit_config", "/etc/ls.yaml", {}, "ops@box", status="running")
        finish_action(c, edit, "failed", {"rolled_back": True, "backup_path": "/etc/ls.yaml.20261202T1Z.bak"},
                      "not healthy after 60 s; rolled back to /etc/ls.yaml.20261202T1Z.bak")
    at = run_page("pages/12_Config.py")
    assert not at.exception, at.exception
    diff = at.dataframe[0].value
    assert diff.to_dict("records") == [
        {"model": "qwen", "field": "cmd", "alpha": "llama-server --port ${PORT} -m /m/qwen-Q4_K_M.gguf -c 8192",
         "beta": "llama-server --port ${PORT} -m /m/qwen-Q8_0.gguf -c 8192"},
        {"model": "qwen", "field": "quantization", "alpha": "Q4_K_M", "beta": "Q8_0"},
        {"model": "qwen", "field": "ttl", "alpha": "600", "beta": "300"},
    ]
    assert at.selectbox(key="config_model").options == ["qwen"]
    side = at.dataframe[1].value
    assert side.to_dict("records") == [
        {"field": "cmd", "alpha": "llama-server --port ${PORT} -m /m/qwen-Q4_K_M.gguf -c 8192",
         "beta": "llama-server --port ${PORT} -m /m/qwen-Q8_0.gguf -c 8192"},
        {"field": "ctx_size", "alpha": "8192", "beta": "8192"},
        {"field": "quantization", "alpha": "Q4_K_M", "beta": "Q8_0"},
        {"field": "ttl", "alpha": "600", "beta": "300"}]
    lint = at.dataframe[2].value
    assert lint[["severity", "provider", "code"]].values.tolist() == [
        ["error", "alpha", "peer-cycle"], ["warning", "beta", "peer-duplicate-id"]]
    assert lint["finding"].tolist()[1] == ("model qwen is local and offered by peer a: the local one shadows the "
                                           "peer's bare name")
    assert at.selectbox(key="config_provider").value == "alpha"
    assert [c.value for c in at.code] == [ALPHA2.rstrip("\n")]
    history = at.dataframe[3].value
    assert history["sha256"].tolist() == [r2.sha256, r1.sha256]
    assert history["cause"].tolist() == ["edit #4", "—"]
    edits = at.dataframe[4].value
    assert edits[["id", "requested_by", "status", "rolled_back", "backup_path"]].values.tolist() == [
        [edit, "ops@box", "failed", True, "/etc/ls.yaml.20261202T1Z.bak"]]
    at.selectbox(key="config_provider").set_value("beta")
    at.run()
    assert not at.exception, at.exception
    assert [c.value for c in at.code] == [BETA.rstrip("\n")]  # shown as code: the <b> is text, never markup


def test_read_now(app_env: Engine, monkeypatch, tmp_path) -> None:  # noqa: F811
    from core.settings import get_settings
    from tests.ops_config.hosts import responder_yaml, watched_host

    with app_env.begin() as c:
        seed.provider(c, "alpha")
        record_config(c, "alpha", "mcp", ALPHA)
    with watched_host("sim", tmp_path, responder_yaml("sim", ("tiny",), 27500)) as host:
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text(f"providers:\n  - {{id: alpha, base_url: '{host.base_url}'}}\n")
        monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet))
        get_settings.cache_clear()
        at = run_page("pages/12_Config.py")
        [b for b in at.button if b.label == "Read now"][0].click()
        at.run()
    assert not at.exception, at.exception
    assert at.toast[0].value == "read via mcp"
    [code] = [c.value for c in at.code]
    assert "  tiny:\n    cmd: simple-responder -port 27500 -respond from-tiny -silent\n" in code
    [history] = [d.value for d in at.dataframe if "cause" in d.value.columns]
    assert history["cause"].tolist() == ["—", "—"]  # two versions: seeded, then read now


def test_empty(app_env: Engine) -> None:  # noqa: F811
    at = run_page("pages/12_Config.py")
    assert not at.exception, at.exception
    assert [c.value for c in at.caption] == [
        "No differences: every model configured on two or more hosts is configured alike.", "No findings."]
    assert [i.value for i in at.info] == [
        "No host config stored yet: `boocontrol config diff --refresh` reads every llama-swap host."]
