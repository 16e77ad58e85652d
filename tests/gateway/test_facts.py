"""load_facts on known rows in a real Postgres: every measured fact the ranking reads, exact."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from gateway.facts import FleetFacts, endpoints_of, is_local, load_facts
from tests.gateway.routing_seed import known_fleet


@pytest.fixture()
def facts(db: Engine) -> FleetFacts:
    now = datetime.now(UTC).replace(microsecond=0)
    known_fleet(db, now)
    return load_facts(db, now)


def test_catalog_state_context_online_and_location(facts: FleetFacts) -> None:
    rows = {m.key: (m.kind, m.local, m.provider_online, m.state, m.loaded, m.context_length, sorted(m.endpoints))
            for m in facts.models}  # fmt: skip
    assert rows == {
        "cloud/gpt-x": ("openai", False, True, None, True, 131072, ["chat", "completions"]),
        "cpu/qwen-coder": ("llama-swap", True, True, "ready", True, 65536, ["chat", "completions"]),
        "down/qwen-coder": ("llama-swap", True, False, "ready", True, 32768, ["chat", "completions"]),
        "gpu/llama-8b": ("llama-swap", True, True, "stopped", False, 8192, ["chat", "completions"]),
        "gpu/nomic-embed": ("llama-swap", True, True, "ready", True, 8192, ["embeddings"]),
        "gpu/qwen-coder": ("llama-swap", True, True, "ready", True, 32768, ["chat", "completions"]),
    }


def test_load_time_quality_energy_lease(facts: FleetFacts) -> None:
    by = {m.key: m for m in facts.models}
    assert by["gpu/llama-8b"].load_ms == 5000.0  # median of 4 s and 6 s
    assert by["gpu/qwen-coder"].load_ms is None
    assert {k: m.quality for k, m in by.items() if m.quality} == {
        "cloud/gpt-x": {"humaneval": {"pass@1": 0.9}},
        "gpu/llama-8b": {"humaneval": {"pass@1": 0.4}},  # the stale 0.95 does not count
        "gpu/qwen-coder": {"humaneval": {"pass@1": 0.6}},
    }
    assert {k: m.j_per_token for k, m in by.items() if m.j_per_token is not None} == {"gpu/llama-8b": 0.5}
    lease = by["cpu/qwen-coder"].lease
    assert lease is not None and lease.startswith("bench run 7 by bench@box:1 until ")
    assert [k for k, m in by.items() if m.lease] == ["cpu/qwen-coder"]  # gpu's lease expired
    assert {k: m.canary_ok for k, m in by.items() if m.canary_ok is not None} == {
        "cpu/qwen-coder": False, "gpu/qwen-coder": True}


def test_live_speed_from_activity(facts: FleetFacts) -> None:
    m = facts.get("gpu/qwen-coder")
    assert m is not None and m.live is not None and m.bench is None
    assert m.live.source == "live activity (24 h, 10 requests)"
    assert m.live.samples == 10
    assert dict(m.live.ttft_ms) == {"p50": 500.0, "p90": 500.0, "p95": 500.0, "p99": 500.0}
    assert dict(m.live.tpot_ms) == {"p50": 20.0, "p90": 20.0, "p95": 20.0, "p99": 20.0}
    assert dict(m.live.e2e_ms)["p50"] == 3000.0
    assert dict(m.live.gen_tps) == {"p50": 50.0}
    assert m.live.prefill_tps == 2000.0
    assert m.speed is m.live


def test_bench_speed_newest_run_lowest_level(facts: FleetFacts) -> None:
    m = facts.get("gpu/llama-8b")
    assert m is not None and m.live is None and m.bench is not None
    assert m.bench.source.startswith("bench run ") and m.bench.samples == 4
    assert dict(m.bench.ttft_ms) == {"p50": 300.0, "p90": 400.0, "p95": 400.0, "p99": 400.0}
    assert dict(m.bench.tpot_ms) == {"p50": 10.0, "p90": 10.0}
    assert dict(m.bench.gen_tps) == {"p50": 100.0}
    assert m.bench.prefill_tps == 2000.0
    cloud = facts.get("cloud/gpt-x")
    assert cloud is not None and cloud.bench is not None and cloud.bench.prefill_tps == 5000.0


def test_location_and_endpoints_rules() -> None:
    assert is_local(False, "http://127.0.0.1:8000", {}) and is_local(False, "http://192.168.1.9", {})
    assert is_local(False, "http://vllm-box:8000", {}) and is_local(False, "http://gpu.lan:8000", {})
    assert not is_local(False, "https://api.openai.com", {})
    assert not is_local(True, "http://10.0.0.5", {"location": "cloud"})
    assert is_local(False, "https://my.example.com", {"location": "local"})
    assert endpoints_of("bge-m3-embedding", {}) == {"embeddings"}
    assert endpoints_of("m", {"embeddings": True}) == {"embeddings"}
    assert endpoints_of("qwen", {"vision": True}) == {"chat", "completions"}


def test_auto_code_for_a_30k_prompt_on_the_known_fleet(facts: FleetFacts) -> None:
    from gateway.policies import PolicyBook
    from gateway.ranking import Need, rank

    code = PolicyBook.builtin().get("auto:code")
    assert code is not None
    r = rank(code, Need("chat", 30000, 512), facts, {}, ())
    assert [(c.key, c.score) for c in r.candidates] == [("cloud/gpt-x", 1.0), ("gpu/qwen-coder", 0.635499)]
    assert [k for k, _ in r.skipped] == ["cpu/qwen-coder", "down/qwen-coder", "gpu/llama-8b", "gpu/nomic-embed"]
    assert dict(r.skipped)["gpu/llama-8b"] == "context window 8,192 < 30,512 tokens needed (prompt + max_tokens)"


def test_live_speed_reads_only_the_newest_requests_per_model(db: Engine) -> None:
    from datetime import timedelta

    from tests.ui import seed
    from warehouse.queries.routing import live_speed

    now = datetime.now(UTC).replace(microsecond=0)
    known_fleet(db, now)
    with db.begin() as c:  # three newer, slower requests: with a sample of 3 they are all that counts
        for i in range(3):
            seed.activity(c, "gpu", "ep1", 200 + i, now - timedelta(seconds=10 + i), model_id="qwen-coder",
                          pps=1000.0, tps=25.0, inp=1000, out=100, duration_ms=6000)
    rows = live_speed(db, now - timedelta(hours=24), now, 1, per_model=3).to_dicts()
    assert [(r["provider_id"], r["model_id"], r["requests"], r["ttft_p50"], r["tpot_p99"]) for r in rows] == [
        ("gpu", "qwen-coder", 3, 1000.0, 40.0)]
    assert live_speed(db, now - timedelta(hours=24), now, 1, per_model=200).to_dicts()[0]["requests"] == 13
