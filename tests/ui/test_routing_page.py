"""The Routing page (AppTest) on the known routing fleet: the tester's pick and table, every policy, escaping."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.gateway.routing_seed import bench_run, eval_score, known_fleet
from tests.ui import seed
from tests.ui.conftest import run_page
from ui import data
from ui.format import md

EVIL = "**x**<img src=x onerror=alert(1)>[a](b)"


def test_tester_picks_for_30k_and_lists_every_policy(app_env: Engine) -> None:
    now = data.now()
    known_fleet(app_env, now)
    at = run_page("pages/10_Routing.py")
    assert not at.exception
    assert [s.value for s in at.success] == [
        f"{md('auto:code')} would pick **{md('cloud/gpt-x')}** (score 1.000) for a 30,000-token prompt with 512 "
        "output tokens"]
    tried = at.dataframe[0].value
    assert tried["target"].tolist() == ["cloud/gpt-x", "gpu/qwen-coder"]
    assert tried["score"].tolist() == [1.0, 0.635499]
    assert tried["quality"].tolist() == [1.0, 0.666667]
    assert tried["speed"].tolist() == [1.0, 0.541997]
    assert tried["expected_s"].tolist() == [13.68, 25.24]
    skipped = at.dataframe[1].value
    assert skipped["target"].tolist() == ["cpu/qwen-coder", "down/qwen-coder", "gpu/llama-8b", "gpu/nomic-embed"]
    assert skipped["why"].tolist()[1] == "provider down is offline"
    labels = [e.label for e in at.expander]
    assert labels == [f"{md(p)} → {md(t)}" for p, t in (
        ("auto:fast", "cloud/gpt-x"), ("auto:best", "cloud/gpt-x"), ("auto:code", "cloud/gpt-x"),
        ("auto:long", "cloud/gpt-x"), ("auto:efficient", "gpu/llama-8b"))]

    at.number_input(key="routing_tokens").set_value(1000).run()
    at.selectbox(key="routing_policy").set_value("auto:efficient").run()
    # llama-8b: 500 + 512 x 10 + 5 000 (cold) = 10 620 ms against cloud's 200 + 512 x 15 = 7 880 ms; the only J/token
    assert [s.value for s in at.success] == [
        f"{md('auto:efficient')} would pick **{md('gpu/llama-8b')}** (score 0.935) for a 1,000-token prompt with "
        "512 output tokens"]
    assert at.dataframe[0].value["target"].tolist() == ["gpu/llama-8b", "cloud/gpt-x", "gpu/qwen-coder"]


def test_hostile_names_are_escaped_and_a_bad_policy_file_is_reported(
        app_env: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = data.now()
    known_fleet(app_env, now)
    with app_env.begin() as c:
        seed.model(c, "cloud", EVIL, state=None, context_length=131072)
        bench_run(c, "cloud", EVIL, now - timedelta(hours=1), ttft=(10.0, 10.0), tpot=1.0, prompt_tokens=10000)
        eval_score(c, "cloud", EVIL, "humaneval", "pass@1", 0.99)
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  auto:x:\n    description: <b>x</b>\n    weight: 1\n")
    monkeypatch.setenv("BOOCONTROL_GATEWAY_POLICIES_FILE", str(policies))
    at = run_page("pages/10_Routing.py")
    assert not at.exception
    assert at.success[0].value.startswith(f"{md('auto:code')} would pick **cloud/{md(EVIL)}** (score 1.000)")
    assert "<img" not in at.success[0].value.replace("\\<img", "")
    assert at.dataframe[0].value["target"].tolist()[0] == f"cloud/{EVIL}"  # a table cell is text, never markup
    why = (f"{policies}:4: policies.auto:x.weight: unknown field (allowed: description, capability, local_only, "
           "min_context, quality_floor, latency, quality_suites, weights, residency, live_load)")
    assert [e.value for e in at.error] == [
        f"Policy file not loaded: {md(why)} (the policies below are the last good ones)"]


def test_empty_fleet_says_nothing_can_serve(app_env: Engine) -> None:
    at = run_page("pages/10_Routing.py")
    assert not at.exception
    assert [w.value for w in at.warning] == [
        f"{md('auto:code')}: nothing in the fleet may serve a 30,000-token prompt right now"]
    assert [e.label for e in at.expander] == [f"{md(p)} → nothing" for p in (
        "auto:fast", "auto:best", "auto:code", "auto:long", "auto:efficient")]
    assert len(at.dataframe[0].value) == 0
