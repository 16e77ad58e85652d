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
from engines.bench.workload import LengthDist, SyntheticWorkload
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
