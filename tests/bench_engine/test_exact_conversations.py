"""Exact lengths for requests with messages before the user's (llama-server on the generated tiny model): the
shared-prefix workload (one system prompt for the point) and the multi-turn workload (each turn carries the
earlier turns as they were sent) — every request's ``usage.prompt_tokens`` is exactly its target."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.bench.host import OpenAIHost
from engines.bench.runner import BenchSpec, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.service import make_client
from engines.bench.workload import LengthDist, MultiTurnWorkload, SharedPrefixWorkload, Workload
from tests.support.llamaserver import require_llama_server, run_llama_server

pytestmark = [pytest.mark.anyio, pytest.mark.llama_server]

WORKLOADS: dict[str, Workload] = {
    "shared-prefix": SharedPrefixWorkload(LengthDist(40, 20, 1, 120), LengthDist(4), prefix_tokens=300),
    "multi-turn": MultiTurnWorkload(LengthDist(40, 20, 1, 120), LengthDist(6), turns=3),
}


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
async def test_exact_lengths_with_system_prompts_and_earlier_turns(kind: str, tmp_path: Path) -> None:
    from tests.support.tinymodel import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=1)
    spec = BenchSpec(levels=(1, 2), requests_per_point=9, workload=WORKLOADS[kind], warmup_requests=1,
                     saturation=SaturationPolicy.disabled())
    with run_llama_server(model, parallel=2, ctx=4096, binary=require_llama_server()) as base:
        async with make_client(spec) as bc:
            out = await run_sweep(OpenAIHost(base, bc), "tiny", spec, bc, confirm_takeover=True, provider_id="direct")
    assert out.status == "completed" and out.exact_lengths
    recs = [r for p in out.points for r in p.records]
    assert len(recs) == 18 and all(r.ok for r in recs)
    assert all(r.prompt_tokens is not None for r in recs)
    assert [r.prompt_tokens for r in recs] == [r.target_input_tokens for r in recs]  # every request, exactly
    assert [(p.summary.length_mismatches, p.summary.length_max_abs_error) for p in out.points] == [(0, 0), (0, 0)]
    targets = [r.target_input_tokens or 0 for r in recs]
    if kind == "shared-prefix":
        assert min(targets) > 300 * 0.8  # the system prompt (≈ 300 tokens) is inside every count
    else:
        # turn k of a conversation carries turns 0..k-1: within a conversation the targets grow
        for p in out.points:
            t = [r.target_input_tokens or 0 for r in sorted(p.records, key=lambda r: r.index)]
            for c in range(0, 9, 3):  # conversations of 3 turns
                assert t[c] < t[c + 1] < t[c + 2]
