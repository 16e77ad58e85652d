"""The simulator must answer like the real llama-swap recorded in tests/fixtures/llama_swap/ (no binary needed).

The recordings were made by ``scripts/record_llama_swap.py`` against real llama-swap builds; the same scenario
(``demo.contract.run_scenario``) runs here against a simulated instance served over HTTP, and ``compare``
checks statuses, headers, JSON keys and types, protocol constants, SSE framing, envelopes and event order.
Deviations kept on purpose are listed in ``DEVIATIONS`` with the reason; a test checks each is still needed.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo import GroupSpec, ModelSpec, SimulatedInstance, serve_instances
from demo.contract import ScenarioConfig, compare, load_recording, order_tokens, run_scenario
from tests.support.llamaswap import HOW_TO_PROVIDE, find_llama_swap

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llama_swap"
NEWEST = "v250-5-g0bdb372"
CFG = ScenarioConfig(perf_timeout_s=10.0, event_timeout_s=10.0)

# path prefix in the comparison -> why the simulator keeps answering differently
DEVIATIONS: dict[str, str] = {
    "exchanges.version.body.json": "the recording is a plain source build ('0', 'abcd1234', 'unknown'); "
                                   "the simulator reports a release-style version on purpose",
    "exchanges.hardware.body.json.simulated": "the simulator says it is one (a key real llama-swap never sends; "
                                              "BooControl labels simulated providers and runs by it)",
    "exchanges.hardware.body.json.accelerators": "the recording host has no GPU; the simulator always "
                                                 "simulates one so the cockpit has GPU data",
    "exchanges.hardware.body.json.cpu": "host facts: the simulator describes a GPU server, not this machine",
    "exchanges.hardware.body.json.environment": "host facts (container name)",
    "exchanges.performance.body.json.gpu_stats": "same: no GPU on the recording host",
}
# the recording's upstream is simple-responder; with the simulator's llama-server upstream these differ too
LLAMA_SERVER_UPSTREAM: dict[str, str] = {
    "exchanges.chat_*.headers.content-type": "llama-server's JSON answers say 'application/json; "
                                             "charset=utf-8'; simple-responder's do not",
    "exchanges.*.body.json.data[*].resp_content_type": "same: the activity row keeps the upstream's type",
    "exchanges.warm.headers.content-type": "the warm call returns the model server's page: llama-server's is "
                                           "HTML, simple-responder's is text",
}
UPSTREAMS = {"simple-responder": DEVIATIONS, "llama-server": DEVIATIONS | LLAMA_SERVER_UPSTREAM}


def models(upstream: str) -> list[ModelSpec]:
    """The recorder's two models; ``simple-responder``: the simulator answers like the recording's upstream."""
    fast: dict[str, Any] = {"load_s": 0.05, "gen_tps": 100.0, "prompt_tps": 5000.0, "group": "responders"}
    a, b = ({"respond": "from-a"}, {"respond": "from-b"}) if upstream == "simple-responder" else ({}, {})
    return [ModelSpec(CFG.model_a, aliases=(CFG.alias_a,), **fast, **a), ModelSpec(CFG.model_b, **fast, **b)]


GROUPS = [GroupSpec("responders", swap=True, exclusive=True)]
OPTIONS: dict[str, Any] = {"api_keys": (CFG.api_key,), "metrics_max_in_memory": CFG.ring,
                           "capture_buffer_mb": 1.0, "perf_every_s": 0.3}


async def record_simulator(upstream: str) -> dict[str, Any]:
    sim = SimulatedInstance(models(upstream), GROUPS, jitter=0.0, unload_s=0.02, utc_offset_s=0, **OPTIONS)
    fleet = await serve_instances([sim])

    async def reload() -> None:
        await sim.reload(models(upstream), GROUPS, **OPTIONS)

    try:
        async with httpx.AsyncClient() as client:
            return await run_scenario(client, fleet.base_urls[0], CFG, reload=reload)
    finally:
        await fleet.stop()


@pytest.fixture(scope="module", params=sorted(UPSTREAMS))
def upstream(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def simulated(upstream: str) -> dict[str, Any]:
    return asyncio.run(asyncio.wait_for(record_simulator(upstream), 90))


@pytest.fixture(scope="module")
def newest() -> dict[str, Any]:
    return load_recording(FIXTURES / NEWEST)


def test_simulator_matches_the_newest_recording(simulated: dict[str, Any], newest: dict[str, Any],
                                                upstream: str) -> None:
    diffs = compare(newest, simulated, UPSTREAMS[upstream])
    assert not diffs, "simulator drifted from the real llama-swap recording:\n" + "\n".join(diffs)


def test_every_listed_deviation_is_still_needed(simulated: dict[str, Any], newest: dict[str, Any],
                                                upstream: str) -> None:
    allowed = UPSTREAMS[upstream]
    stale = [path for path in allowed
             if not compare(newest, simulated, {k: v for k, v in allowed.items() if k != path})]
    assert not stale, f"these deviations no longer occur; remove them from DEVIATIONS: {stale}"


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda r: r["exchanges"]["activity_default"]["body"]["json"].pop("total_pages"),
     "exchanges.activity_default.body.json.total_pages: missing in simulator"),
    (lambda r: r["exchanges"]["activity_default"]["body"]["json"]["data"][0].__setitem__("id", "5"),
     "exchanges.activity_default.body.json.data[0].id: recorded number"),
    (lambda r: r["exchanges"]["auth_missing"]["headers"].pop("www-authenticate"),
     "exchanges.auth_missing.headers.www-authenticate"),
    (lambda r: r["exchanges"]["hardware"]["body"]["json"].__setitem__("captured_at", "2026-12-02 10:25:10"),
     "exchanges.hardware.body.json.captured_at: recorded time.frac"),
    (lambda r: r["events"]["framing"].__setitem__("block_layouts", [["event: message", "data:{json}"]]),
     "events.framing"),
    (lambda r: r["events"]["messages"].reverse(), "events.order.connect"),
    (lambda r: r["events"].__setitem__("messages", [
        m for m in r["events"]["messages"] if not (m["step"] == "chat_load" and m["type"] == "modelStatus")]),
     "events.order.chat_load"),
    (lambda r: r["events"].__setitem__("messages", [
        m for m in r["events"]["messages"] if not (m["step"] == "chat_stream" and m["type"] == "activity")]),
     "events.order.chat_stream"),
    (lambda r: [m["data"].pop("requests", None) for m in r["events"]["messages"]
                if m["type"] == "inflight" and m["data"].get("operation") == "snapshot"] and None,
     None),
])
def test_the_comparison_catches_drift(simulated: dict[str, Any], newest: dict[str, Any], upstream: str,
                                      mutate: Any, expected: str | None) -> None:
    broken = copy.deepcopy(simulated)
    mutate(broken)
    diffs = compare(newest, broken, UPSTREAMS[upstream])
    if expected is None:  # the snapshot with no requests omits the key: removing it changes nothing
        assert not diffs, diffs
    else:
        assert any(d.startswith(expected) for d in diffs), diffs


def test_event_order_tokens_are_exact_for_a_cold_load(newest: dict[str, Any]) -> None:
    assert order_tokens(newest["events"]["messages"], "chat_load") == [
        "inflight:upsert", "inflight:remove", "activity",
        "responder-a: stopped > starting > ready"]


def _recording(label: str) -> dict[str, Any]:
    return load_recording(FIXTURES / label)


def test_v250_differs_from_newest_in_error_bodies_and_activity_filters(newest: dict[str, Any]) -> None:
    v250 = _recording("v250")
    diffs = compare(newest, v250, {})
    assert "exchanges.chat_unknown_model.body.json.error: recorded object" in " ".join(diffs)
    assert v250["exchanges"]["chat_unknown_model"]["body"]["json"] == {
        "src": "llama-swap", "error": "no router for requested model"}
    # min_id is ignored (every row still in the ring of 3, newest first) and min_id=0 is not rejected
    assert [r["id"] for r in v250["exchanges"]["activity_min_id"]["body"]["json"]["data"]] == [3, 4, 5]
    assert [r["id"] for r in newest["exchanges"]["activity_min_id"]["body"]["json"]["data"]] == [4, 5]
    assert v250["exchanges"]["activity_bad_min_id"]["status"] == 200
    assert newest["exchanges"]["activity_bad_min_id"]["status"] == 400
    # a repeated model filter: v250 uses the first value only
    assert [r["model"] for r in v250["exchanges"]["activity_models"]["body"]["json"]["data"]] == [
        "responder-b", "responder-b"]


def test_v239_has_no_hardware_full_inflight_lists_and_no_ui_config() -> None:
    v239 = _recording("v239")
    assert v239["exchanges"]["hardware"]["status"] == 404
    snapshot = [m["type"] for m in v239["events"]["messages"] if m["step"] == "connect"]
    assert snapshot == ["logData", "logData", "modelStatus", "inflight"]
    lists = [m["data"] for m in v239["events"]["messages"] if m["type"] == "inflight"]
    assert all("operation" not in d for d in lists)
    assert "meta" not in v239["exchanges"]["models_cold"]["body"]["json"]["data"][0]
    assert v239["facts"]["reload_keeps_boot_marker"] is None


def test_fixtures_stay_small_and_hold_no_secret_or_local_path() -> None:
    for path in FIXTURES.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert path.stat().st_size < 40_000, path
            assert CFG.api_key not in text and "/root/" not in text and "/home/" not in text, path
            if path.suffix == ".json":
                json.loads(text)


@pytest.mark.real_llamaswap
def test_the_real_llama_swap_still_answers_as_recorded(tmp_path: Path, newest: dict[str, Any]) -> None:
    """Re-record the newest build with the recorder script and compare without any allowance: the recording
    is reproducible (the comparison's tolerances cover llama-swap's own races, nothing more)."""
    binary = find_llama_swap("newest")
    if binary is None:
        pytest.skip(f"REAL LLAMA-SWAP NOT FOUND: {HOW_TO_PROVIDE}")
    script = Path(__file__).resolve().parents[2] / "scripts" / "record_llama_swap.py"
    done = subprocess.run([sys.executable, str(script), "--label", "rerun", "--out", str(tmp_path)],
                          env=os.environ | {"BOOCONTROL_LLAMA_SWAP_BIN": str(binary)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    diffs = compare(newest, load_recording(tmp_path / "rerun"), {})
    assert not diffs, "\n".join(diffs)
