"""Exact-length prompts checked against llama-server itself (the generated tiny model): the prompt built with the
server's tokenizer is counted by the server, in its ``usage``, as exactly the target — on every request."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from engines.bench.exact import ServerTokenizer, exact_text, probe, prompt_tokens
from engines.bench.host import LlamaSwapHost, OpenAIHost
from engines.bench.runner import BenchSpec, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.service import make_client
from engines.bench.workload import LengthDist, SyntheticWorkload
from tests.support.llamaserver import require_llama_server, run_llama_server

pytestmark = [pytest.mark.anyio, pytest.mark.llama_server]

WIDE = SyntheticWorkload(LengthDist(96, 48, 1, 300), LengthDist(4))


async def _usage(c: httpx.AsyncClient, url: str, text: str) -> int:
    resp = await c.post(url, json={"messages": [{"role": "user", "content": text}], "max_tokens": 1})
    resp.raise_for_status()
    return int(resp.json()["usage"]["prompt_tokens"])


async def test_exact_prompts_token_for_token_against_llama_server(tmp_path: Path) -> None:
    from tests.support.tinymodel import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=1)
    with run_llama_server(model, parallel=2, ctx=4096, binary=require_llama_server()) as base:
        async with httpx.AsyncClient(timeout=60) as c:
            tok = ServerTokenizer(c, base, {})
            frame = await probe(tok)
            assert frame == ("<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n")  # the tiny model's template
            rng = random.Random(11)
            template = await prompt_tokens(tok, frame, "")
            targets = [template + 1, template + 2, 17, 64, 255, 256, 257, 1000, *(rng.randint(20, 600) for _ in range(20))]
            for i, n in enumerate(targets):
                text = await exact_text(tok, frame, rng, n, f"{rng.getrandbits(32):08x}-exact-{i:05d}:")
                assert await _usage(c, base + "/v1/chat/completions", text) == n, (n, text[:60])
                # token for token: the content's tokens inside the framed prompt are the ones the server reads
                framed = await tok.tokenize(frame[0] + text + frame[1], add_special=True)
                assert len(framed) == n
            # A sweep on the direct host: every request's usage equals its target, stored per request
            spec = BenchSpec(levels=(1, 2), requests_per_point=8, workload=WIDE, warmup_requests=2,
                             saturation=SaturationPolicy.disabled())  # fmt: skip
            # the engine's own client (LeanTransport), as run_bench uses it: its kept-alive connections close after
            # streamed answers, and the tokenizer calls between points must cope
            async with make_client(spec) as bc:
                out = await run_sweep(OpenAIHost(base, bc), "tiny", spec, bc, confirm_takeover=True,
                                      provider_id="direct")  # fmt: skip
            assert out.status == "completed" and out.exact_lengths and out.extra()["exact_lengths"] is True
            recs = [r for p in out.points for r in p.records]
            assert len(recs) == 16 and all(r.ok for r in recs)
            assert [r.prompt_tokens for r in recs] == [r.target_input_tokens for r in recs]
            assert len({r.prompt_tokens for r in recs}) > 8  # a real spread of lengths, each one exact
            assert [(p.summary.length_mismatches, p.summary.length_max_abs_error) for p in out.points] == [(0, 0), (0, 0)]
            assert min(r.target_input_tokens or 0 for r in recs) >= template + 1  # short draws raised above the template


@pytest.mark.real_llamaswap
async def test_exact_prompts_through_llama_swap_upstream(swap_lab: object) -> None:
    from connectors.llama_swap_api import LlamaSwapAPI
    from core.providers import Provider

    from .conftest import TINY

    async with httpx.AsyncClient(timeout=120) as c:
        api = LlamaSwapAPI(Provider("lab", "lab", swap_lab.base_url), c)  # type: ignore[attr-defined]
        await api.unload_all()
        try:
            host = LlamaSwapHost(api)
            spec = BenchSpec(levels=(2,), requests_per_point=8, workload=WIDE, warmup_requests=2,
                             saturation=SaturationPolicy.disabled())  # fmt: skip
            out = await run_sweep(host, TINY, spec, c, confirm_takeover=True, provider_id="lab")
            assert out.status == "completed" and out.exact_lengths
            recs = out.points[0].records
            assert all(r.ok for r in recs)
            assert [r.prompt_tokens for r in recs] == [r.target_input_tokens for r in recs]
        finally:
            await api.unload_all()
