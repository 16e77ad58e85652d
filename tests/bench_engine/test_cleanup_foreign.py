"""A benchmark's Ctrl-C cleanup must never kill another client's request.

The issue: the model was not loaded before the run; while the run was being stopped, another client's request
for that model was in flight (the run had even counted it as foreign), and cleanup unloaded the model anyway:
the other client got an empty 502. Now cleanup reads the run's live ``/api/events`` watch, waits (bounded) for
requests it did not send, and leaves the model loaded when they outlast the wait.

Run against the in-process demo simulator (every machine) and against the REAL llama-swap with
simple-responder from the cache (skipped, with the reason, when the binaries are missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.llama_swap_api import LlamaSwapAPI
from core.providers import Provider
from demo import GroupSpec, ModelSpec, SimulatedInstance, serve_instances
from engines.bench.gate import read_inflight_snapshot
from engines.bench.host import HostInfo, LlamaSwapHost
from engines.bench.runner import BenchSpec, PointResult, RunHeader, RunOutcome, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.workload import LengthDist, SyntheticWorkload
from tests.support.llamaswap import (
    LlamaSwapProcess,
    find_llama_swap,
    free_port,
    free_port_block,
    responder_config,
    run_llama_swap,
    simple_responder_path,
)

from .conftest import v239_dir

pytestmark = pytest.mark.anyio

SPEC = BenchSpec(levels=(1,), requests_per_point=2, workload=SyntheticWorkload(LengthDist(20), LengthDist(4)),
                 saturation=SaturationPolicy.disabled(), seed=1)  # fmt: skip


@dataclass
class Lab:
    base_url: str
    model: str
    foreign_path: str  # a request of another client that takes about 3 s
    foreign_body: dict[str, Any]
    events_opened: Callable[[], int] | None = None  # /api/events connections so far (the simulator counts)


class LastOutcome:
    def __init__(self) -> None:
        self.outcome: RunOutcome | None = None

    def run_started(self, header: RunHeader) -> None:
        pass

    def point_finished(self, header: RunHeader, point: PointResult) -> None:
        pass

    def run_finished(self, header: RunHeader, outcome: RunOutcome) -> None:
        self.outcome = outcome


class ForeignThenCtrlC(LlamaSwapHost):
    """The real `LlamaSwapHost`; right after the model is loaded, another client's slow request arrives and the
    operator presses Ctrl-C (the run's task is cancelled) while that request is in flight."""

    def __init__(self, api: LlamaSwapAPI, lab: Lab) -> None:
        super().__init__(api)
        self.lab = lab
        self.foreign: asyncio.Task[httpx.Response] | None = None
        self.events_before_cleanup: int | None = None

    async def describe(self, model_id: str, tag: str | None = None) -> HostInfo:
        info = await super().describe(model_id, tag)
        self.foreign = asyncio.create_task(
            self.client.post(self.base + self.lab.foreign_path, json=self.lab.foreign_body, timeout=60.0)
        )
        for _ in range(200):
            if (await read_inflight_snapshot(self.client, self.base)).foreign(tag):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the other client's request never showed up in flight")
        if self.lab.events_opened is not None:
            self.events_before_cleanup = self.lab.events_opened()
        task = asyncio.current_task()
        assert task is not None
        task.cancel("Ctrl-C")
        return info


@contextlib.asynccontextmanager
async def sim_lab() -> AsyncIterator[Lab]:
    # 60 tokens at 20 tokens/s: the other client's request takes about 3 s
    sim = SimulatedInstance([ModelSpec("m", group="g", load_s=0.05, gen_tps=20.0, prompt_tps=5000.0)],
                            [GroupSpec("g", swap=True, exclusive=False)], jitter=0.0, unload_s=0.01)
    opened = 0
    subscribe = sim.subscribe

    def counting_subscribe() -> asyncio.Queue[bytes | None]:
        nonlocal opened
        opened += 1
        return subscribe()

    sim.subscribe = counting_subscribe  # type: ignore[method-assign]
    fleet = await serve_instances([sim])
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 60}
        yield Lab(fleet.base_urls[0], "m", "/v1/chat/completions", body, lambda: opened)
    finally:
        await fleet.stop()


@contextlib.contextmanager
def real_process(which: str) -> Iterator[str]:
    if which == "v239":  # not a pinned Go revision: binaries placed by hand (see conftest.swap_lab_v239)
        d = v239_dir()
        if not (d / "llama-swap").exists() or not (d / "simple-responder").exists():
            pytest.skip(f"llama-swap v239 not installed in {d}")
        wd = Path(tempfile.mkdtemp(prefix="llama-swap-v239-"))
        cfg = wd / "config.yaml"
        cfg.write_text(responder_config(d / "simple-responder", start_port=free_port_block()))
        ls = LlamaSwapProcess(d / "llama-swap", cfg, free_port(), wd / "llama-swap.log")
        ls.start()
        try:
            yield ls.base_url
        finally:
            ls.stop()
        return
    responder = simple_responder_path(which)
    if responder is None or find_llama_swap(which) is None:
        pytest.skip(f"REAL LLAMA-SWAP NOT INSTALLED: llama-swap / simple-responder ({which}) not in the cache")
    with run_llama_swap(responder_config(responder, start_port=free_port_block()), which=which) as ls:
        yield ls.base_url


@contextlib.asynccontextmanager
async def real_lab(which: str = "newest") -> AsyncIterator[Lab]:
    with real_process(which) as base:
        body = {"model": "responder-a", "messages": [{"role": "user", "content": "hello"}]}
        yield Lab(base, "responder-a", "/v1/chat/completions?wait=3s", body)


LABS: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Lab]]] = {
    "sim": sim_lab, "real": real_lab, "real-v239": lambda: real_lab("v239")}


async def ctrl_c_with_foreign_request(kind: str, foreign_wait_s: float) -> tuple[RunOutcome, httpx.Response,
                                                                                   set[str] | None]:
    async with LABS[kind]() as lab, httpx.AsyncClient(timeout=60) as c:
        host = ForeignThenCtrlC(LlamaSwapAPI(Provider("lab", "lab", lab.base_url), c), lab)
        assert await host.loaded_models() == set()  # not loaded before the run
        sink = LastOutcome()
        with pytest.raises(asyncio.CancelledError):
            await run_sweep(host, lab.model, SPEC, c, confirm_takeover=True, provider_id="lab", sink=sink,
                            foreign_wait_s=foreign_wait_s)
        assert host.foreign is not None
        foreign = await host.foreign
        if lab.events_opened is not None:  # cleanup read the run's open watch; it never reconnected
            assert host.events_before_cleanup is not None and host.events_before_cleanup >= 3  # gate, watch, hook
            assert lab.events_opened() == host.events_before_cleanup
        loaded = await host.loaded_models()
        assert sink.outcome is not None
        return sink.outcome, foreign, loaded


@pytest.mark.parametrize("kind", ["sim", "real"])
async def test_cleanup_waits_for_another_clients_request_before_unloading(kind: str) -> None:
    out, foreign, loaded = await ctrl_c_with_foreign_request(kind, foreign_wait_s=20.0)
    assert out.status == "cancelled" and out.stop_reason == "cancelled (Ctrl-C)"
    assert out.foreign_requests == 1  # the run saw it ...
    assert foreign.status_code == 200, foreign.text  # ... and it was not cut (before the fix: 502)
    assert foreign.json()["usage"]["completion_tokens"] > 0  # a whole answer (the simulator's or simple-responder's)
    model = "m" if kind == "sim" else "responder-a"
    assert out.cleanup == [f"unloaded {model} (it was not loaded before the run)"]  # once it had finished
    assert loaded == set()


@pytest.mark.parametrize("kind", ["sim", "real"])
async def test_cleanup_leaves_the_model_loaded_when_the_request_outlasts_the_wait(kind: str) -> None:
    out, foreign, loaded = await ctrl_c_with_foreign_request(kind, foreign_wait_s=0.5)
    assert foreign.status_code == 200, foreign.text
    model = "m" if kind == "sim" else "responder-a"
    assert len(out.cleanup) == 1
    assert out.cleanup[0].startswith(
        f"left {model} loaded and nothing re-loaded: after waiting 0.5 s, 1 request(s) the run did not send "
        "were in flight or queued for it ["
    )
    assert loaded == {model}


async def test_v239_without_request_headers_every_request_for_the_model_is_waited_for() -> None:
    """llama-swap v239 lists in-flight requests without headers: the run cannot tell its own from another
    client's, so it counts none as foreign (``None``) and waits for every request for the model."""
    out, foreign, loaded = await ctrl_c_with_foreign_request("real-v239", foreign_wait_s=20.0)
    assert out.foreign_requests is None
    assert foreign.status_code == 200, foreign.text
    assert out.cleanup == ["unloaded responder-a (it was not loaded before the run)"]
    assert loaded == set()
