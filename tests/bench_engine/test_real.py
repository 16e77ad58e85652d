"""The bench engine against a REAL llama-swap running llama.cpp's llama-server on the tiny GGUF."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.llama_swap_api import LlamaSwapAPI
from core.providers import Provider
from engines.bench.gate import TakeoverRefused, read_inflight_snapshot
from engines.bench.host import LlamaSwapHost
from engines.bench.runner import BenchSpec, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.workload import LengthDist, SyntheticWorkload

from .conftest import RESPONDER, TINY, SwapLab

pytestmark = [pytest.mark.anyio, pytest.mark.llama_server, pytest.mark.real_llamaswap]

WL = SyntheticWorkload(LengthDist(64, 16, 16, 128), LengthDist(32, 8, 8, 64))


@pytest.fixture
async def swap(swap_lab: SwapLab) -> AsyncIterator[tuple[LlamaSwapHost, httpx.AsyncClient]]:
    async with httpx.AsyncClient(timeout=120) as c:
        api = LlamaSwapAPI(Provider("lab", "lab", swap_lab.base_url), c)
        await api.unload_all()
        yield LlamaSwapHost(api), c
        await api.unload_all()


async def test_sweep_counts_match_the_server_and_ttft_covers_prompt_time(
    swap: tuple[LlamaSwapHost, httpx.AsyncClient],
) -> None:
    host, c = swap
    spec = BenchSpec(
        levels=(1, 2, 4), requests_per_point=6, workload=WL, saturation=SaturationPolicy.disabled()
    )
    out = await run_sweep(host, TINY, spec, c, confirm_takeover=True, provider_id="lab")
    assert out.status == "completed"
    assert [(p.level, len(p.records), p.summary.completed) for p in out.points] == [
        (1, 6, 6),
        (2, 6, 6),
        (4, 6, 6),
    ]
    for p in out.points:
        assert p.summary.peak_concurrency <= p.level
        for r in p.records:
            assert r.ok, r.error
            assert r.usage is not None and r.timings is not None
            # token counts are the server's: usage == llama.cpp timings == requested max_tokens (never-EOS model)
            assert (
                r.output_tokens
                == r.usage["completion_tokens"]
                == r.timings["predicted_n"]
                == r.target_output_tokens
            )
            assert r.prompt_tokens == r.usage["prompt_tokens"] == r.timings["prompt_n"] + r.timings["cache_n"]
            assert len(r.chunks) == r.output_tokens  # llama-server streams one token per chunk here
            # the client cannot see a token before the server finished the prompt
            assert r.ttft is not None and r.ttft * 1000.0 >= r.timings["prompt_ms"]
            assert (
                r.cached_tokens or 0
            ) < 10  # unique prefixes: only the chat template's first tokens hit the cache
    assert out.host is not None and out.host.model_entry is not None and out.host.model_entry["id"] == TINY
    assert out.host.props is not None and out.host.props["total_slots"] == 4
    assert out.foreign_requests == 0
    assert await host.loaded_models() == set()  # not loaded before → unloaded after
    assert out.cleanup == [f"unloaded {TINY} (it was not loaded before the run)"]


async def test_models_loaded_before_remain_loaded(swap: tuple[LlamaSwapHost, httpx.AsyncClient]) -> None:
    host, c = swap
    await host.warm(TINY)
    await host.warm(RESPONDER)
    spec = BenchSpec(levels=(1,), requests_per_point=2, workload=WL, saturation=SaturationPolicy.disabled())
    out = await run_sweep(host, TINY, spec, c, confirm_takeover=True, provider_id="lab")
    assert out.status == "completed" and out.cleanup == []
    assert await host.loaded_models() == {TINY, RESPONDER}


async def test_gate_refuses_a_host_with_a_request_in_flight(
    swap: tuple[LlamaSwapHost, httpx.AsyncClient], swap_lab: SwapLab
) -> None:
    host, c = swap
    body = {"model": RESPONDER, "messages": [{"role": "user", "content": "hi"}]}
    busy = asyncio.create_task(c.post(swap_lab.base_url + "/v1/chat/completions?wait=10s", json=body))
    try:
        for _ in range(200):
            snap = await read_inflight_snapshot(c, swap_lab.base_url)
            if snap.requests:
                break
            await asyncio.sleep(0.05)
        assert snap.requests, "the long request never showed up in flight"
        with pytest.raises(TakeoverRefused, match=r"1 request\(s\) in flight"):
            await run_sweep(host, TINY, BenchSpec(workload=WL), c, confirm_takeover=True, provider_id="lab")
        assert TINY not in (await host.loaded_models() or set())  # refused before warming anything
    finally:
        for r in (await read_inflight_snapshot(c, swap_lab.base_url)).requests:
            await host.api.cancel_inflight(str(r["id"]))
        busy.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await busy


async def test_cancelled_run_leaves_no_request_behind(
    swap: tuple[LlamaSwapHost, httpx.AsyncClient], swap_lab: SwapLab
) -> None:
    host, c = swap
    spec = BenchSpec(levels=(4,), requests_per_point=16, workload=SyntheticWorkload(LengthDist(32), LengthDist(1800)),
                     warmup_requests=2, saturation=SaturationPolicy.disabled())  # fmt: skip
    task = asyncio.create_task(run_sweep(host, TINY, spec, c, confirm_takeover=True, provider_id="lab"))
    for _ in range(600):
        snap = await read_inflight_snapshot(c, swap_lab.base_url)
        if len(snap.requests) >= 4:
            break
        await asyncio.sleep(0.05)
    assert len(snap.requests) >= 4 and all(r.get("req_headers") for r in snap.requests)
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped_in = time.monotonic() - t0
    after = await read_inflight_snapshot(c, swap_lab.base_url)
    assert after.known and after.requests == ()
    assert await host.loaded_models() == set()
    assert stopped_in < 30.0  # generous: includes unloading the model


async def test_pre_v240_full_lists_gate_and_run(swap_lab_v239: SwapLab) -> None:
    base = swap_lab_v239.base_url
    async with httpx.AsyncClient(timeout=120) as c:
        host = LlamaSwapHost(LlamaSwapAPI(Provider("old", "old", base), c))
        await host.api.unload_all()
        idle = await host.inflight()
        assert idle.known and not idle.headers_known and idle.requests == ()
        body = {"model": RESPONDER, "messages": [{"role": "user", "content": "hi"}]}
        busy = asyncio.create_task(c.post(base + "/v1/chat/completions?wait=3s", json=body))
        for _ in range(200):
            if (await host.inflight()).requests:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(TakeoverRefused, match="in flight"):
            await run_sweep(host, TINY, BenchSpec(workload=WL), c, confirm_takeover=True, provider_id="old")
        await busy
        await host.api.unload_all()
        spec = BenchSpec(
            levels=(1, 2), requests_per_point=3, workload=WL, saturation=SaturationPolicy.disabled()
        )
        out = await run_sweep(host, TINY, spec, c, confirm_takeover=True, provider_id="old")
        assert out.status == "completed" and [p.summary.completed for p in out.points] == [3, 3]
        assert (
            out.foreign_requests is None
        )  # a v239 list has no headers: foreign traffic cannot be told apart
        assert out.cleanup == [f"unloaded {TINY} (it was not loaded before the run)"]
        assert (await host.inflight()).requests == ()
