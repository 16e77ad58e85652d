"""Shared-prefix, multi-turn and generated-corpus workloads: exact request bodies for a seed, the options that
select them, and one run against the instant test server that stores the workload definition."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from core.settings import get_settings
from engines.bench.host import OpenAIHost
from engines.bench.load import ChatTarget
from engines.bench.metrics import RequestRecord, first_vs_rest_ttft
from engines.bench.options import BenchOptions, bench_params
from engines.bench.runner import BenchSpec, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.service import StoreSink
from engines.bench.workload import (
    LengthDist,
    MultiTurnWorkload,
    ReplayWorkload,
    RequestSpec,
    SharedPrefixWorkload,
    TokenCalibration,
    build_requests,
    corpus_text,
)
from warehouse.schema_bench import bench_points, bench_runs

from . import instant_server

CAL = TokenCalibration(overhead=10.0, per_word=1.0)
TARGET = ChatTarget(url="http://h/v1/chat/completions", model="m", tag="bc-t")


def bodies(specs: list[RequestSpec]) -> list[dict[str, Any]]:
    return [json.loads(TARGET.body(s)) for s in specs]


def test_corpus_text_is_fixed_by_the_seed_and_reads_like_sentences() -> None:
    a = corpus_text(random.Random(7), 40)
    assert a == corpus_text(random.Random(7), 40) and a != corpus_text(random.Random(8), 40)
    assert len(a.split()) == 40 and a[0].isupper() and a.endswith(".")
    sentences = [x for x in a.split(". ") if x]
    assert all(x[0].isupper() for x in sentences)
    assert corpus_text(random.Random(1), 0) == ""


def test_shared_prefix_bodies_share_the_system_prompt_byte_for_byte() -> None:
    wl = SharedPrefixWorkload(LengthDist(20), LengthDist(5), prefix_tokens=110, text="corpus")
    specs = build_requests(wl, 4, seed=3, tag="bc-t-p0", calibration=CAL)
    assert specs == build_requests(wl, 4, seed=3, tag="bc-t-p0", calibration=CAL)  # exact for a seed
    b = bodies(specs)
    systems = {x["messages"][0]["content"] for x in b}
    assert len(systems) == 1
    system = systems.pop()
    assert [m["role"] for m in b[0]["messages"]] == ["system", "user"]
    assert system.startswith("bc-t-p0-system: ") and len(system.split()) == 100  # (110 − 10) / 1.0 words
    users = [x["messages"][1]["content"] for x in b]
    assert len(set(users)) == 4 and all(len(u.split()) == 10 for u in users)  # unique, (20 − 10) words each
    assert [s.input_tokens for s in specs] == [130] * 4 and [x["max_tokens"] for x in b] == [5] * 4
    # Serialised bodies: the bytes up to the end of the system prompt are the same in every request.
    raw = [TARGET.body(s) for s in specs]
    cut = raw[0].index(system.encode()) + len(system.encode())
    assert len({r[:cut] for r in raw}) == 1
    # Another point (tag) has its own prefix: the first request of every point is cold.
    other = build_requests(wl, 1, seed=3, tag="bc-t-p1", calibration=CAL)[0]
    assert other.system != system


def test_multi_turn_turn_k_carries_turns_1_to_k_minus_1() -> None:
    wl = MultiTurnWorkload(LengthDist(15), LengthDist(6), turns=3)
    specs = build_requests(wl, 6, seed=11, tag="bc-t-p0", calibration=CAL)
    assert specs == build_requests(wl, 6, seed=11, tag="bc-t-p0", calibration=CAL)
    b = bodies(specs)
    assert [len(x["messages"]) for x in b] == [1, 3, 5, 1, 3, 5]  # two conversations of three turns
    for conv in (0, 3):
        for k in (1, 2):
            msgs, prev = b[conv + k]["messages"], b[conv + k - 1]["messages"]
            # turn k starts with every message of turn k − 1 (its user text), then that turn's answer
            assert msgs[: len(prev)] == prev and msgs[len(prev)]["role"] == "assistant"
            assert len(msgs[len(prev)]["content"].split()) == 6  # the answer: output length in words
            assert msgs[-1] == {"role": "user", "content": specs[conv + k].prompt}
    assert b[3]["messages"][0]["content"] != b[0]["messages"][0]["content"]  # conversations are distinct
    # targets: turn 1 = 15; turn 2 = 15 + 6 + 15; turn 3 = 36 + 6 + 15
    assert [s.input_tokens for s in specs[:3]] == [15, 36, 57]


def test_the_workload_options_reach_both_shells_and_build_the_workload() -> None:
    names = {p.name: p for p in bench_params()}
    assert names["workload"].choices == ("synthetic", "production", "shared-prefix", "multi-turn")
    assert names["text"].choices == ("words", "corpus")
    assert names["shared_prefix_tokens"].flag == "--shared-prefix-tokens" and names["turns"].kind is int
    o = BenchOptions.from_mapping({"workload": "shared-prefix", "shared_prefix_tokens": 512, "text": "corpus"})
    assert o.spec().workload.describe() == {
        "kind": "shared-prefix", "prompt": {"mean": 256, "stdev": 0.0, "min": 1, "max": None},
        "output": {"mean": 128, "stdev": 0.0, "min": 1, "max": None}, "prefix_tokens": 512, "text": "corpus",
    }  # fmt: skip
    assert BenchOptions(workload="multi-turn", turns=2).spec().workload == MultiTurnWorkload(
        LengthDist(256), LengthDist(128), turns=2
    )
    # the default synthetic workload describes itself as before (earlier runs keep their workload key)
    assert "text" not in BenchOptions().spec().workload.describe()


def test_first_vs_rest_ttft() -> None:
    def rec(i: int, send: float, ttft: float | None) -> RequestRecord:
        if ttft is None:
            return RequestRecord(index=i, send=send, status=500, error="boom", end=send + 1)
        return RequestRecord(index=i, send=send, status=200, end=send + 1, chunks=[send + ttft])

    first, rest = first_vs_rest_ttft([rec(1, 0.5, 0.010), rec(0, 0.0, 0.200), rec(2, 0.7, 0.030)])
    assert first == pytest.approx(200.0) and rest == pytest.approx(20.0)
    first, rest = first_vs_rest_ttft([rec(0, 0.0, None), rec(1, 0.1, 0.010)])
    assert first is None and rest == pytest.approx(10.0)
    assert first_vs_rest_ttft([rec(0, 0.0, 0.1)]) == (100.0, None)


def test_a_shared_prefix_run_on_the_instant_server_stores_its_workload(
    db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wl = SharedPrefixWorkload(LengthDist(8), LengthDist(4), prefix_tokens=64, text="corpus")
    spec = BenchSpec(levels=(1, 2), requests_per_point=4, warmup_requests=1, workload=wl, seed=9,
                     saturation=SaturationPolicy.disabled())  # fmt: skip

    async def go() -> int:
        instant_server.STATS.update(connections=0, requests=0)
        instant_server.ACTIVE["streams"] = 0
        server = await asyncio.get_running_loop().create_server(
            lambda: instant_server.Upstream(0.0), "127.0.0.1", 0
        )
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            async with httpx.AsyncClient(timeout=30) as c:
                sink = StoreSink(db, requested_by="test")
                out = await run_sweep(OpenAIHost(base, c), "instant", spec, c, confirm_takeover=True,
                                      provider_id="instant", sink=sink)  # fmt: skip
                assert out.status == "completed", out.error
                assert sink.run_id is not None
                return sink.run_id
        finally:
            server.close()

    run_id = asyncio.run(go())
    assert instant_server.STATS["requests"] >= 8 + 2  # every point's requests and the warm-up (+ warm)
    with db.connect() as conn:
        run = conn.execute(select(bench_runs).where(bench_runs.c.id == run_id)).mappings().one()
        points = conn.execute(select(bench_points).where(bench_points.c.run_id == run_id)).mappings().all()
    assert run["params"]["workload"] == wl.describe() == {
        "kind": "shared-prefix", "prompt": {"mean": 8, "stdev": 0.0, "min": 1, "max": None},
        "output": {"mean": 4, "stdev": 0.0, "min": 1, "max": None}, "prefix_tokens": 64, "text": "corpus",
    }  # fmt: skip
    assert run["extra"]["exact_lengths"] is False
    assert len(points) == 2
    for p in points:
        s = p["summary"]
        assert s["completed"] == 4 and s["ttft_first_ms"] is not None and s["ttft_rest_p50_ms"] is not None
    # bench show names the workload and the first-vs-rest TTFT of every point
    from cli.bench import bench

    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(tmp_path / "no-fleet.yaml"))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(bench, ["show", str(run_id)])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "  workload: shared-prefix, prompt 8 output 4 tokens, shared prefix 64, text corpus" in lines
    by_level = {float(p["level"]): p["summary"] for p in points}
    for level in (1.0, 2.0):
        s = by_level[level]
        assert (f"  prompt cache at {level:g}: TTFT first {s['ttft_first_ms']:.1f} ms, "
                f"rest p50 {s['ttft_rest_p50_ms']:.1f} ms") in lines  # fmt: skip


@pytest.mark.parametrize("kind", ["shared-prefix", "multi-turn"])
def test_spec_params_store_the_definition(kind: str) -> None:
    spec = BenchOptions(workload=kind, turns=5, shared_prefix_tokens=300).spec()  # type: ignore[arg-type]
    wl = spec.params()["workload"]
    assert wl["kind"] == kind and (wl.get("turns") == 5 or wl.get("prefix_tokens") == 300)


def test_replay_takes_the_text_style_and_keeps_its_old_description() -> None:
    wl = ReplayWorkload(((30, 5), (50, 7)))
    assert "text" not in wl.describe()  # earlier production runs keep their workload key
    corpus = ReplayWorkload(((30, 5), (50, 7)), text="corpus")
    assert corpus.describe()["text"] == "corpus"
    a, b = (build_requests(w, 3, seed=2, tag="t", calibration=CAL) for w in (wl, corpus))
    assert [s.input_tokens for s in a] == [s.input_tokens for s in b]  # same lengths drawn
    assert all(s.prompt.endswith(".") for s in b) and not any(s.prompt.endswith(".") for s in a)
