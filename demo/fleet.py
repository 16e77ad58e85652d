"""A fleet of simulated llama-swap instances in one process and one event loop.

All instances share ONE ``uvicorn.Server`` listening on one socket per instance; a tiny ASGI dispatcher
picks the instance by the local port of the connection. One server instead of N avoids N uvicorn
housekeeping loops (each ticks 10x per second), which is what lets 500 instances idle cheaply.
Hosts differ (seeded): GPUs, model sets and groups, load times (1-8 s), speeds, UTC offsets. Model names look
like a real fleet's; hostile names (quotes, markup, a slash, non-ASCII) are for tests (``hostile=True`` puts them
on host 1). Every connection carrying BooControl's benchmark header marks its host taken over
(`demo.traffic.Takeover`): the host's synthetic traffic pauses, so a benchmark finds it idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.types import ASGIApp, Receive, Scope, Send

from demo.instance import GroupSpec, ModelSpec, SimulatedInstance, create_instance_app
from demo.telemetry import GpuSpec, HostSpec
from demo.traffic import BENCH_HEADER, Takeover, TrafficGenerator, TrafficProfile

log = logging.getLogger(__name__)

# id, display name, generation tok/s, prompt tok/s, VRAM MiB, context, capabilities, backend
MODEL_CATALOG: tuple[tuple[str, str, float, float, int, int, tuple[str, ...], str], ...] = (
    ("qwen2.5-7b-instruct", "Qwen2.5 7B Instruct", 95, 2800, 6200, 32768, ("function_calling",), "llama.cpp"),
    ("llama-3.1-8b-instruct", "Llama 3.1 8B", 88, 2500, 6900, 131072, ("function_calling",), "llama.cpp"),
    ("gemma-3-12b-it", "Gemma 3 12B", 52, 1900, 9800, 32768, ("vision",), "llama.cpp"),
    ("mistral-small-3.2-24b", "Mistral Small 3.2", 34, 1200, 15800, 32768, ("vision", "function_calling"), "llama.cpp"),
    ("qwen3-30b-a3b", "Qwen3 30B A3B", 71, 1600, 18500, 40960, ("function_calling",), "llama.cpp"),
    ("gpt-oss-20b", "gpt-oss 20B", 110, 3100, 13100, 131072, ("function_calling",), "openai"),
    ("deepseek-r1-distill-qwen-14b", "", 45, 1500, 10400, 32768, (), "llama.cpp"),
    ("phi-4-mini", "Phi-4 mini", 140, 4200, 3100, 16384, (), "llama.cpp"),
    ("Qwen/Qwen2.5-Coder-32B-Instruct-AWQ", "Qwen Coder 32B (vLLM)", 38, 2200, 21000, 32768, ("function_calling",), "openai"),
    ("llama-3.3-70b-instruct:Q4_K_M", "Llama 3.3 70B", 14, 420, 42000, 8192, (), "llama.cpp"),
    ("smollm2-1.7b", "", 210, 6500, 1400, 8192, (), "llama.cpp"),
)
HOSTILE_MODELS = (
    ModelSpec('bad"name<b>', name='Bad "quoted" <b>bold</b> & <script>alert(1)</script>', description="hostile id",
              load_s=1.0, gen_tps=120, vram_mb=1500, aliases=("bad'alias",)),
    ModelSpec("org/üñí-模型 v2", name="Ünïcode 模型 / with slash", load_s=1.5, gen_tps=80, vram_mb=2500),
)
GPU_CATALOG = (
    ("NVIDIA GeForce RTX 4090", 24564, 450.0, "Ada Lovelace"),
    ("NVIDIA GeForce RTX 3090", 24576, 350.0, "Ampere"),
    ("NVIDIA RTX A6000", 49140, 300.0, "Ampere"),
    ("NVIDIA L40S", 46068, 350.0, "Ada Lovelace"),
    ("NVIDIA H100 80GB HBM3", 81559, 700.0, "Hopper"),
)
UTC_OFFSETS = (0, -7 * 3600, 2 * 3600, 5 * 3600 + 1800, -4 * 3600, 9 * 3600)


def build_demo_instance(index: int, seed: int = 0, perf_every_s: float = 5.0, hostile: bool = False,
                        **overrides: Any) -> SimulatedInstance:
    """The seeded simulated host number ``index`` (extra keyword arguments go to ``SimulatedInstance``)."""
    rng = random.Random(f"{seed}:{index}")
    gpu_kind = rng.choice(GPU_CATALOG)
    gpus = tuple(GpuSpec(gpu_kind[0], gpu_kind[1], gpu_kind[2], gpu_kind[3],
                         f"GPU-{rng.randrange(16**8):08x}-{rng.randrange(16**4):04x}-4{rng.randrange(16**3):03x}-"
                         f"a{rng.randrange(16**3):03x}-{rng.randrange(16**12):012x}")
                 for _ in range(rng.choice((1, 1, 2))))
    cores = rng.choice((8, 16, 24, 32))
    host = HostSpec(cpu_model=rng.choice(("AMD Ryzen 9 7950X 16-Core Processor", "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
                                          "AMD EPYC 7443P 24-Core Processor")),
                    physical_cores=cores // 2, logical_cores=cores, mem_total_mb=rng.choice((32000, 64000, 128000, 257000)),
                    gpus=gpus)
    picks = rng.sample(MODEL_CATALOG, rng.randint(3, 6))
    layout = rng.choice(("default", "groups", "groups"))
    models = []
    for i, (mid, name, tps, ptps, vram, ctx, caps, backend) in enumerate(picks):
        group = "(default)" if layout == "default" else ("big" if vram > 12000 else "small")
        models.append(ModelSpec(
            mid, name=name, group=group, load_s=round(rng.uniform(1, 8), 1), gen_tps=tps * rng.uniform(0.8, 1.2),
            prompt_tps=ptps * rng.uniform(0.8, 1.2), ttl=rng.choice((0, 0, 300, 900)), unlisted=i == 5,
            aliases=(mid.split("-")[0] + "-latest",) if i == 0 else (), capabilities=caps, context_length=ctx,
            backend="openai" if backend == "openai" else "llama.cpp", vram_mb=vram, gpu=i % len(gpus)))
    if hostile:
        models += [replace(m, group="small" if layout == "groups" else "(default)") for m in HOSTILE_MODELS]
    groups = [GroupSpec("big", swap=True, exclusive=False), GroupSpec("small", swap=True, exclusive=False)]
    options: dict[str, Any] = {"seed": rng.randrange(2**32), "host": host, "perf_every_s": perf_every_s,
                               "utc_offset_s": UTC_OFFSETS[index % len(UTC_OFFSETS)],
                               "start_port": 5800 + rng.randrange(0, 40) * 10}
    options.update(overrides)
    return SimulatedInstance(models, groups, **options)


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else ~40 ms per keep-alive request)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


_BENCH_HEADER = BENCH_HEADER.encode()


class _PortDispatcher:
    """Routes each connection to the instance app owning the local port it arrived on; a request carrying the
    benchmark header holds that instance's `Takeover` while it is served (an event stream: while it is open)."""

    def __init__(self, apps: dict[int, ASGIApp], takeovers: dict[int, Takeover] | None = None) -> None:
        self.apps = apps
        self.takeovers = takeovers or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        port = scope["server"][1]
        takeover = self.takeovers.get(port)
        if takeover is None or scope["type"] != "http" or not any(
                k.lower() == _BENCH_HEADER for k, _ in scope.get("headers", ())):
            await self.apps[port](scope, receive, send)
            return
        takeover.enter()
        try:
            await self.apps[port](scope, receive, send)
        finally:
            takeover.leave()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the embedding program owns signals
        yield


@dataclass
class DemoFleet:
    """Running simulated instances; ``base_urls[i]`` serves ``sims[i]``."""

    sims: list[SimulatedInstance]
    base_urls: list[str]
    server: uvicorn.Server
    serve_task: asyncio.Task[None]
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    takeovers: list[Takeover] = field(default_factory=list)  # takeovers[i]: whether a benchmark holds sims[i]

    async def stop(self) -> None:
        for sim in self.sims:
            await sim.stop()
        self.server.should_exit = True
        await self.serve_task


async def serve_instances(sims: Sequence[SimulatedInstance], host: str = "127.0.0.1",
                          ports: Sequence[int] | None = None, traffic: TrafficProfile | None = None,
                          seed: int = 0) -> DemoFleet:
    """Serve ``sims`` (port 0 or ``ports=None`` = free ports), start them and, if given, their traffic."""
    sockets = [_bind(host, port) for port in (ports if ports is not None else [0] * len(sims))]
    bound = [s.getsockname()[1] for s in sockets]
    takeovers = [Takeover() for _ in sims]
    config = uvicorn.Config(_PortDispatcher({p: create_instance_app(s) for p, s in zip(bound, sims, strict=True)},
                                            dict(zip(bound, takeovers, strict=True))),
                            lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2,
                            timeout_keep_alive=120)  # Go keeps idle connections open; uvicorn would drop them after 5 s
    server = _Server(config)
    task = asyncio.ensure_future(server.serve(sockets))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("demo fleet server exited during startup")
        await asyncio.sleep(0.01)
    for i, sim in enumerate(sims):
        sim.start()
        if traffic is not None and traffic.requests_per_minute > 0:
            sim.spawn(TrafficGenerator(sim, seed * 100_003 + i, traffic, takeovers[i]).run())
    url_host = f"[{host}]" if ":" in host else host
    log.info("demo fleet: %d instances on %s ports %d..%d", len(sims), host, min(bound), max(bound))
    return DemoFleet(list(sims), [f"http://{url_host}:{p}" for p in bound], server, task, takeovers=takeovers)


async def start_demo_fleet_in_background(n: int = 2, *, host: str = "127.0.0.1", base_port: int = 0, seed: int = 0,
                                         requests_per_minute: float = 0.0, perf_every_s: float = 5.0,
                                         hostile: bool = False, **overrides: Any) -> DemoFleet:
    """Start ``n`` demo hosts (``base_port=0``: free ports) in the running loop; ``await fleet.stop()`` after.
    ``hostile``: host 1 (host 0 when ``n`` is 1) also carries the hostile model names (for tests)."""
    sims = [build_demo_instance(i, seed, perf_every_s, hostile=hostile and i == 1 % n, **overrides)
            for i in range(n)]
    ports = [base_port + i for i in range(n)] if base_port else None
    return await serve_instances(sims, host, ports, TrafficProfile(requests_per_minute), seed)


async def run_demo_fleet(n: int, host: str = "127.0.0.1", base_port: int = 19400, seed: int = 0,
                         requests_per_minute: float = 6.0, perf_every_s: float = 5.0,
                         ready: asyncio.Event | None = None) -> None:
    """Run ``n`` simulated instances with live traffic until cancelled."""
    fleet = await start_demo_fleet_in_background(n, host=host, base_port=base_port, seed=seed,
                                                 requests_per_minute=requests_per_minute, perf_every_s=perf_every_s)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await fleet.stop()


@contextlib.contextmanager
def demo_fleet_in_thread(n: int = 2, **kwargs: Any) -> Iterator[DemoFleet]:
    """``start_demo_fleet_in_background`` on its own loop in a daemon thread, for synchronous tests."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="demo-fleet", daemon=True)
    thread.start()

    async def start() -> DemoFleet:
        return await start_demo_fleet_in_background(n, **kwargs)

    fleet = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield fleet
    finally:
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def registry_id(index: int, n: int) -> str:
    return f"demo-{index + 1:0{max(2, len(str(n)))}d}"


def write_demo_registry(path: str | Path, n: int, host: str = "127.0.0.1", base_port: int = 19400) -> None:
    """Write a provider-registry YAML listing the ``n`` demo hosts of ``run_demo_fleet``."""
    providers = [{"id": registry_id(i, n), "label": f"Demo host {registry_id(i, n)[5:]}",
                  "base_url": f"http://{f'[{host}]' if ':' in host else host}:{base_port + i}",
                  "kind": "llama-swap", "labels": {"demo": "true"}} for i in range(n)]
    text = yaml.safe_dump({"default_provider": providers[0]["id"] if providers else None, "providers": providers},
                          sort_keys=False, allow_unicode=True)
    Path(path).write_text(text, encoding="utf-8")
