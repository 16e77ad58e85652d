"""The bench engine against llama.cpp's llama-server directly (an OpenAI-compatible host, no llama-swap): needs the
llama-server binary only, so it is not counted among the real llama-swap tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from engines.bench.host import OpenAIHost
from engines.bench.runner import BenchSpec, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.workload import LengthDist, MultiTurnWorkload, SharedPrefixWorkload, SyntheticWorkload
from tests.support.llamaserver import require_llama_server, run_llama_server

from .test_real import WL

pytestmark = [pytest.mark.anyio, pytest.mark.llama_server]


async def test_direct_llama_server_host(tmp_path: Path) -> None:
    binary = require_llama_server()
    from tests.support.tinymodel import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=1)
    with run_llama_server(model, parallel=2, ctx=4096, binary=binary, extra_args=("--slots",)) as base:
        async with httpx.AsyncClient(timeout=60) as c:
            host = OpenAIHost(base, c)
            spec = BenchSpec(
                levels=(1, 2), requests_per_point=4, workload=WL, saturation=SaturationPolicy.disabled()
            )
            out = await run_sweep(host, "tiny", spec, c, confirm_takeover=True, provider_id="direct")
            assert out.status == "completed" and [p.summary.completed for p in out.points] == [4, 4]
            for r in (r for p in out.points for r in p.records):
                assert r.output_tokens == r.usage["completion_tokens"] == r.target_output_tokens  # type: ignore[index]
                assert (
                    r.ttft is not None and r.timings is not None and r.ttft * 1000 >= r.timings["prompt_ms"]
                )
            assert out.host is not None and out.host.props is not None
            # cancel mid-generation: no slot keeps processing
            long = BenchSpec(levels=(2,), requests_per_point=8, workload=SyntheticWorkload(LengthDist(32), LengthDist(1500)),
                             warmup_requests=2, saturation=SaturationPolicy.disabled())  # fmt: skip
            task = asyncio.create_task(
                run_sweep(host, "tiny", long, c, confirm_takeover=True, provider_id="direct")
            )
            for _ in range(400):
                snap = await host.inflight()
                if len(snap.requests) >= 2:
                    break
                await asyncio.sleep(0.02)
            assert len(snap.requests) >= 2
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):  # llama-server notices the closed connection at its next token
                if not (await host.inflight()).requests:
                    break
                await asyncio.sleep(0.05)
            assert (await host.inflight()).requests == ()


async def test_shared_prefix_and_multi_turn_reuse_llama_servers_prompt_cache(tmp_path: Path) -> None:
    """On one slot, every shared-prefix request after the point's first finds the system prompt in the cache,
    and every later turn of a conversation finds the earlier turns up to its previous user message."""
    binary = require_llama_server()
    from tests.support.tinymodel import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=1)
    with run_llama_server(model, parallel=1, ctx=4096, binary=binary) as base:
        async with httpx.AsyncClient(timeout=60) as c:
            host = OpenAIHost(base, c)
            shared = SharedPrefixWorkload(LengthDist(24), LengthDist(4), prefix_tokens=400, text="corpus")
            spec = BenchSpec(levels=(1,), requests_per_point=5, workload=shared, warmup_requests=1, seed=3,
                             saturation=SaturationPolicy.disabled())  # fmt: skip
            out = await run_sweep(host, "tiny", spec, c, confirm_takeover=True, provider_id="direct")
            assert out.status == "completed", out.error
            recs = sorted(out.points[0].records, key=lambda r: r.send)
            assert (recs[0].cached_tokens or 0) < 50  # the prefix is new to the slot
            assert all((r.cached_tokens or 0) >= 300 for r in recs[1:])  # the ~400-token system prompt reused
            # calibrated on the corpus text itself (the warm-up sends the workload's text): within 10 % of 400 + 24
            assert all(abs((r.prompt_tokens or 0) - 424) <= 42 for r in recs)
            s = out.points[0].summary
            assert s.ttft_first_ms is not None and s.ttft_rest_p50_ms is not None
            turns = MultiTurnWorkload(LengthDist(40), LengthDist(8), turns=3)
            spec = BenchSpec(levels=(1,), requests_per_point=3, workload=turns, warmup_requests=1, seed=4,
                             saturation=SaturationPolicy.disabled())  # fmt: skip
            out = await run_sweep(host, "tiny", spec, c, confirm_takeover=True, provider_id="direct")
            assert out.status == "completed", out.error
            recs = sorted(out.points[0].records, key=lambda r: r.index)
            prompts = [r.prompt_tokens or 0 for r in recs]
            assert prompts[0] < prompts[1] < prompts[2]
            # turn k reuses at least turn k − 1's prompt minus its last user message (~40 tokens) and template
            assert (recs[1].cached_tokens or 0) >= prompts[0] - 60 and (recs[2].cached_tokens or 0) >= prompts[1] - 60
