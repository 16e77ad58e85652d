"""A canary probe of a real llama.cpp llama-server behind a real llama-swap: a streamed first token, the host's row
for it has exactly one output token, and the model that is not loaded is neither probed nor started."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from core.providers import Provider
from engines.canary import probe_fleet
from tests.bench_engine.conftest import RESPONDER, TINY, swap_config
from tests.ops.test_canary import StateLog
from tests.support.llamaserver import find_llama_server, require_llama_server
from tests.support.llamaswap import HOW_TO_PROVIDE, find_llama_swap, run_llama_swap, simple_responder_path
from tests.support.tinymodel import write_tiny_gguf

pytestmark = [pytest.mark.llama_server, pytest.mark.real_llamaswap]


def test_probe_of_a_loaded_llama_server(tmp_path) -> None:
    server_bin = find_llama_server() or require_llama_server()
    swap, responder = find_llama_swap(), simple_responder_path()
    if swap is None or responder is None:
        pytest.skip(f"REAL LLAMA-SWAP NOT FOUND: {HOW_TO_PROVIDE}")
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=0)
    with run_llama_swap(swap_config(model, server_bin, responder)) as ls:
        assert httpx.get(f"{ls.base_url}/upstream/{TINY}/health", timeout=120).status_code == 200  # tiny loaded

        async def cycle():  # type: ignore[no-untyped-def]
            async with httpx.AsyncClient() as client:
                return await probe_fleet([Provider(id="lab", label="lab", base_url=ls.base_url)], client, leased={})

        with StateLog(ls.base_url) as log:
            result = asyncio.run(cycle())
        (probe,) = result.probes
        assert (probe.model_id, probe.ok, probe.status_code) == (TINY, True, 200)
        assert probe.ttft_ms is not None and probe.total_ms is not None and 0 < probe.ttft_ms <= probe.total_ms
        rows = httpx.get(f"{ls.base_url}/api/metrics/activity", params={"limit": 10}).json()["data"]
        (row,) = rows
        assert (row["id"], row["model"], row["tokens"]["output_tokens"]) == (probe.activity_upstream_id, TINY, 1)
        assert [s for s in log.states if s[1] == "starting"] == []
        running = {r["model"]: r["state"] for r in httpx.get(f"{ls.base_url}/running").json()["running"]}
        assert running == {TINY: "ready"} and RESPONDER not in running
