"""The gateway's cost: added latency vs calling the upstream directly, and many concurrent streams.

Modes (all measured side by side in one run, requests interleaved round-robin across the targets so the shared
machine's noise falls on all of them alike):

``stacks``  picks the server + upstream-client stack by measuring: minimal pass-through proxies (no routing, no
            attribution) on each stack in front of one instant upstream (`tests/gateway/upstream.py`):
            starlette/uvicorn (uvloop + httptools, or asyncio + h11) with httpx or aiohttp as the upstream
            client, and aiohttp's own server + client.
``latency`` the real gateway (`boocontrol gateway`, a separate process with its Postgres) vs the upstream
            directly: an instant upstream and, with ``--llama-server``, a real llama-server on the tiny test
            model, same run. Added latency = gateway percentile - direct percentile (non-streaming chat), added
            TTFT = the same for the first content byte of a streaming chat.
``streams`` N concurrent streaming chats through the gateway against an instant upstream that sends one chunk
            every ``--itl-ms``: errors, chunks/s and the gateway process's CPU per 1,000 chunks/s.
``connect`` the cost of opening one upstream connection on uvloop: aiohttp's own way (aiohappyeyeballs, then
            ``sock_connect``, which resolves the numeric address again in libuv's thread pool) vs the gateway's
            `gateway.upstream.DirectConnector` (one ``create_connection``), interleaved, several rounds.

    .venv/bin/python bench/bench_gateway.py stacks --n 2000
    .venv/bin/python bench/bench_gateway.py latency --n 2000 --llama-server [--llama-swap]
    .venv/bin/python bench/bench_gateway.py latency --n 1000 --litellm /tmp/litellm-venv/bin/litellm
    .venv/bin/python bench/bench_gateway.py streams --streams 1000 --itl-ms 50 --tokens 100
    .venv/bin/python bench/bench_gateway.py connect --n 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST_CONTENT = re.compile(rb'"(content|text)":"[^"]')
CHAT = {"model": "instant", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_upstream(port: int, itl_ms: float = 0.0) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-m", "tests.gateway.upstream", "--port", str(port), "--itl-ms",
                          str(itl_ms)], cwd=ROOT)
    wait_port(port)
    return p


# --- minimal pass-through proxies, one per stack (run in a child process: `_proxy`) ---------------------------

def _starlette_app(upstream: str, client_kind: str) -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    state: dict[str, Any] = {}

    async def handler(request: Request) -> Response:
        body = await request.body()
        url = upstream + request.url.path
        if client_kind == "httpx":
            import httpx

            client = state.get("c")
            if client is None:
                client = state["c"] = httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=None))
            r = await client.send(client.build_request("POST", url, content=body,
                                                       headers={"content-type": "application/json"}), stream=True)
            return StreamingResponse(r.aiter_raw(), status_code=r.status_code,
                                     media_type=r.headers.get("content-type"), background=BackgroundTask(r.aclose))
        session = state.get("s")
        if session is None:
            session = state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                         auto_decompress=False)
        resp = await session.post(url, data=body, headers={"content-type": "application/json"})
        return StreamingResponse(resp.content.iter_any(), status_code=resp.status,
                                 media_type=resp.headers.get("content-type"),
                                 background=BackgroundTask(resp.release))

    return Starlette(routes=[Route("/v1/chat/completions", handler, methods=["POST"])])


def _aiohttp_app(upstream: str) -> Any:
    from aiohttp import web

    async def on_startup(app: web.Application) -> None:
        app["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app["s"].post(upstream + request.path, data=body,
                                         headers={"content-type": "application/json"}) as up:
            out = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers.get("content-type", "")})
            await out.prepare(request)
            async for data in up.content.iter_any():
                await out.write(data)
            await out.write_eof()
            return out

    app = web.Application()
    app.on_startup.append(on_startup)
    app.router.add_post("/v1/chat/completions", handler)
    return app


def run_proxy(stack: str, port: int, upstream: str) -> None:
    if stack == "aiohttp":
        import uvloop
        from aiohttp import web

        uvloop.install()
        web.run_app(_aiohttp_app(upstream), host="127.0.0.1", port=port, access_log=None, print=None)
        return
    import uvicorn

    server, client = stack.split("+")  # e.g. "uvicorn-uvloop+httpx"
    fast = server == "uvicorn-uvloop"
    uvicorn.run(_starlette_app(upstream, client), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, loop="uvloop" if fast else "asyncio", http="httptools" if fast else "h11")


STACKS = ("uvicorn-uvloop+httpx", "uvicorn-uvloop+aiohttp", "uvicorn-h11+aiohttp", "aiohttp")


# --- the load: sequential requests, one keep-alive connection per target --------------------------------------

async def one_plain(session: aiohttp.ClientSession, base: str, body: dict[str, Any], headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    async with session.post(base + "/v1/chat/completions", json=body, headers=headers) as r:
        await r.read()
        assert r.status == 200, r.status
    return (time.perf_counter() - t0) * 1000


async def one_ttft(session: aiohttp.ClientSession, base: str, body: dict[str, Any], headers: dict[str, str]) -> float:
    """Time to the first content chunk (a ``data:`` line with ``"content"``) of a streaming chat, ms."""
    t0 = time.perf_counter()
    ttft = None
    buf = b""
    async with session.post(base + "/v1/chat/completions", json={**body, "stream": True}, headers=headers) as r:
        assert r.status == 200, r.status
        async for data in r.content.iter_any():
            if ttft is None:
                buf += data
                if FIRST_CONTENT.search(buf):
                    ttft = (time.perf_counter() - t0) * 1000
    return ttft if ttft is not None else (time.perf_counter() - t0) * 1000


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def interleaved(targets: dict[str, tuple[str, dict[str, Any], dict[str, str]]], n: int, warm: int,
                      fn: Callable[[aiohttp.ClientSession, str, dict[str, Any], dict[str, str]], Awaitable[float]],
                      ) -> dict[str, list[float]]:
    sessions = {k: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for k in targets}
    out: dict[str, list[float]] = {k: [] for k in targets}
    try:
        for i in range(n + warm):
            for k, (base, body, headers) in targets.items():
                ms = await fn(sessions[k], base, body, headers)
                if i >= warm:
                    out[k].append(ms)
    finally:
        for s in sessions.values():
            await s.close()
    return out


def report(title: str, res: dict[str, list[float]], direct_key: str) -> dict[str, dict[str, float]]:
    d = res[direct_key]
    rows: dict[str, dict[str, float]] = {}
    print(f"\n{title} (ms; n={len(d)} each)")
    print(f"{'target':34} {'p50':>8} {'p99':>8} {'mean':>8} {'added p50':>10} {'added p99':>10}")
    for k, xs in res.items():
        row = {"p50": pct(xs, 0.5), "p99": pct(xs, 0.99), "mean": statistics.fmean(xs),
               "added_p50": pct(xs, 0.5) - pct(d, 0.5), "added_p99": pct(xs, 0.99) - pct(d, 0.99)}
        rows[k] = row
        print(f"{k:34} {row['p50']:8.3f} {row['p99']:8.3f} {row['mean']:8.3f} {row['added_p50']:10.3f} "
              f"{row['added_p99']:10.3f}")
    return rows


def cmd_stacks(a: argparse.Namespace) -> None:
    up_port = free_port()
    procs = [start_upstream(up_port)]
    upstream = f"http://127.0.0.1:{up_port}"
    targets: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {"direct": (upstream, CHAT, {})}
    try:
        for stack in STACKS:
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, __file__, "_proxy", "--stack", stack, "--port", str(port),
                                           "--upstream", upstream], cwd=ROOT))
            wait_port(port)
            targets[stack] = (f"http://127.0.0.1:{port}", CHAT, {})
        print(f"load: {os.getloadavg()}")
        plain = asyncio.run(interleaved(targets, a.n, 200, one_plain))
        report("non-streaming chat, end to end", plain, "direct")
        ttft = asyncio.run(interleaved(targets, a.n, 200, one_ttft))
        report("streaming chat, time to first content chunk", ttft, "direct")
        print(f"load after: {os.getloadavg()}")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


# --- the real gateway ----------------------------------------------------------------------------------------

def _gateway_env(tmp: Path, registry: str, db_url: str, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    fleet = tmp / "fleet.yaml"
    fleet.write_text(registry)
    env = {**os.environ, "BOOCONTROL_DATA_DIR": str(tmp / "data"), "BOOCONTROL_FLEET_FILE": str(fleet),
           "BOOCONTROL_DATABASE_URL": db_url, "BOOCONTROL_GATEWAY_PORT": str(port),
           "BOOCONTROL_GATEWAY_HOST": "127.0.0.1"}
    env.update(extra or {})
    return env


def start_gateway(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([str(ROOT / ".venv/bin/boocontrol"), "gateway"], cwd=ROOT, env=env)
    wait_port(port, 60)
    return p


class Postgres:
    """A throwaway embedded cluster for the gateway's attribution rows (the project's own cluster code)."""

    def __enter__(self) -> str:
        import tempfile

        from warehouse.cluster import EmbeddedCluster
        from warehouse.migrate import upgrade

        self.base = Path(tempfile.mkdtemp(prefix="bench-gw-pg-"))
        self.cluster = EmbeddedCluster(self.base, free_port(), fast_unsafe=True)
        self.cluster.start()
        self.cluster.ensure_database("gw")
        url = self.cluster.url("gw")
        upgrade(url)
        return url

    def __exit__(self, *exc: object) -> None:
        self.cluster.stop("immediate")


def cmd_latency(a: argparse.Namespace) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _latency(a, procs)
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def _latency(a: argparse.Namespace, procs: list[subprocess.Popen[bytes]]) -> None:
    import tempfile
    from contextlib import ExitStack

    up_port = free_port()
    procs.append(start_upstream(up_port))
    upstream = f"http://127.0.0.1:{up_port}"
    with ExitStack() as stack, Postgres() as db_url:
        registry = f"providers:\n  - id: instant\n    base_url: {upstream}\n    kind: openai\n"
        llama_base = None
        if a.llama_server:
            from tests.support.llamaserver import run_llama_server
            from tests.support.tinymodel import write_tiny_gguf

            model = write_tiny_gguf(Path(tempfile.mkdtemp(prefix="bench-gw-tiny-")) / "tiny.gguf", seed=0)
            llama_base = stack.enter_context(run_llama_server(model, extra_args=("--alias", "tiny")))
            registry += f"  - id: llama\n    base_url: {llama_base}\n    kind: vllm\n"
        swap_base = None
        if a.llama_swap:
            from tests.support.llamaserver import llama_server_cmd, require_llama_server
            from tests.support.llamaswap import find_llama_swap, free_port_block, run_llama_swap
            from tests.support.tinymodel import write_tiny_gguf

            if find_llama_swap() is None:
                sys.exit("--llama-swap: no llama-swap binary (BOOCONTROL_LLAMA_SWAP_BIN or the cache; see README)")
            swap_model = write_tiny_gguf(Path(tempfile.mkdtemp(prefix="bench-gw-tiny-")) / "tiny.gguf", seed=0)
            cfg = (f"healthCheckTimeout: 60\nstartPort: {free_port_block()}\nmodels:\n  tiny:\n"
                   f"    cmd: {llama_server_cmd(require_llama_server(), swap_model)}\n"
                   "    proxy: http://127.0.0.1:${PORT}\n")
            swap_base = stack.enter_context(run_llama_swap(cfg, kind="real")).base_url
            registry += f"  - id: swap\n    base_url: {swap_base}\n    kind: llama-swap\n"
        port = free_port()
        tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
        gw = start_gateway(_gateway_env(tmp, registry, db_url, port), port)
        procs.append(gw)
        gwu = f"http://127.0.0.1:{port}"
        try:
            targets: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
                "instant direct": (upstream, CHAT, {}),
                "instant via gateway": (gwu, {**CHAT, "model": "instant/instant"}, {"X-Boo-Source": "bench"}),
            }
            if a.litellm:
                targets["instant via LiteLLM proxy"] = (start_litellm(a.litellm, upstream, tmp, procs), CHAT,
                                                         {"Authorization": f"Bearer {LITELLM_KEY}"})
            print(f"load: {os.getloadavg()}")
            plain = asyncio.run(interleaved(targets, a.n, 200, one_plain))
            report("instant upstream: non-streaming chat, end to end", plain, "instant direct")
            ttft = asyncio.run(interleaved(targets, a.n, 200, one_ttft))
            report("instant upstream: streaming chat, time to first content chunk", ttft, "instant direct")
            if llama_base is not None:
                body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                        "temperature": 0}
                lt: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
                    "llama-server direct": (llama_base, body, {}),
                    "llama-server via gateway": (gwu, {**body, "model": "llama/tiny"}, {"X-Boo-Source": "bench"}),
                }
                n = max(50, a.n // 10)
                plain = asyncio.run(interleaved(lt, n, 10, one_plain))
                report("llama-server: non-streaming chat (4 tokens), end to end", plain, "llama-server direct")
                ttft = asyncio.run(interleaved(lt, n, 10, one_ttft))
                report("llama-server: streaming chat, time to first content chunk", ttft, "llama-server direct")
            if swap_base is not None:
                body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                        "temperature": 0}
                st: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
                    "llama-swap direct": (swap_base, body, {}),
                    "llama-swap via gateway": (gwu, {**body, "model": "swap/tiny"}, {"X-Boo-Source": "bench"}),
                }
                n = max(50, a.n // 10)
                asyncio.run(interleaved(st, 1, 0, one_plain))  # llama-swap starts llama-server on first use
                plain = asyncio.run(interleaved(st, n, 10, one_plain))
                report("real llama-swap + llama-server: non-streaming chat (4 tokens), end to end", plain,
                       "llama-swap direct")
                ttft = asyncio.run(interleaved(st, n, 10, one_ttft))
                report("real llama-swap + llama-server: streaming chat, time to first content chunk", ttft,
                       "llama-swap direct")
            print(f"load after: {os.getloadavg()}")
        finally:
            for p in procs:
                p.terminate()
                p.wait()


LITELLM_KEY = "sk-bench-anchor-" + "0123456789abcdef" * 2  # a throwaway key it insists on; nothing secret


def start_litellm(binary: str, upstream: str, tmp: Path, procs: list[subprocess.Popen[bytes]]) -> str:
    """LiteLLM's proxy (from its own throwaway venv, never the project's) in front of the same upstream."""
    port = free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text("model_list:\n  - model_name: instant\n    litellm_params:\n      model: openai/instant\n"
                   f"      api_base: {upstream}/v1\n      api_key: none\n")
    log = open(tmp / "litellm.log", "wb")  # noqa: SIM115 - lives as long as the process
    procs.append(subprocess.Popen([binary, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": LITELLM_KEY}))
    wait_port(port, 180)
    return f"http://127.0.0.1:{port}"


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def cmd_streams(a: argparse.Namespace) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _streams(a, procs)
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def _streams(a: argparse.Namespace, procs: list[subprocess.Popen[bytes]]) -> None:
    import tempfile

    up_port = free_port()
    procs.append(start_upstream(up_port, a.itl_ms))
    upstream = f"http://127.0.0.1:{up_port}"
    with Postgres() as db_url:
        registry = f"providers:\n  - id: instant\n    base_url: {upstream}\n    kind: openai\n"
        port = free_port()
        tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
        env = _gateway_env(tmp, registry, db_url, port, {"BOOCONTROL_GATEWAY_FIRST_BYTE_TIMEOUT_SECONDS": "60"})
        gw = start_gateway(env, port)
        procs.append(gw)
        gwu = f"http://127.0.0.1:{port}"
        body = {**CHAT, "model": "instant/instant", "max_tokens": a.tokens, "stream": True}
        errors: list[str] = []
        chunks = 0

        async def one(session: aiohttp.ClientSession, delay: float) -> None:
            nonlocal chunks
            await asyncio.sleep(delay)
            try:
                async with session.post(gwu + "/v1/chat/completions", json=body,
                                        headers={"X-Boo-Source": "bench"}) as r:
                    if r.status != 200:
                        errors.append(f"status {r.status}")
                        return
                    n = 0
                    tail = b""
                    async for line in r.content:
                        if line.startswith(b"data: {") and b'"content":" tok"' in line:
                            n += 1
                        tail = line if line.strip() else tail
                    chunks += n
                    if n != a.tokens or b"[DONE]" not in tail:
                        errors.append(f"{n} chunks, last line {tail[:60]!r}")
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}")

        async def main() -> tuple[float, float, float]:
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=None)) as s:
                cpu0, t0 = _cpu_s(gw.pid), time.perf_counter()
                await asyncio.gather(*(one(s, i * a.ramp_s / a.streams) for i in range(a.streams)))
                return _cpu_s(gw.pid) - cpu0, time.perf_counter() - t0, t0

        try:
            print(f"load: {os.getloadavg()}")
            cpu, wall, _ = asyncio.run(main())
            rate = chunks / wall
            print(f"\n{a.streams} concurrent streams x {a.tokens} chunks every {a.itl_ms} ms through the gateway")
            print(f"errors: {len(errors)} {errors[:5]}")
            print(f"wall {wall:.2f} s, content chunks {chunks}, {rate:.0f} chunks/s")
            print(f"gateway CPU {cpu:.2f} s = {cpu / wall:.2f} cores; per 1,000 chunks/s: "
                  f"{(cpu / wall) / (rate / 1000):.3f} cores")
            print(f"load after: {os.getloadavg()}")
        finally:
            for p in procs:
                p.terminate()
                p.wait()


def cmd_connect(a: argparse.Namespace) -> None:
    import uvloop
    from yarl import URL

    from gateway.upstream import DirectConnector

    async def run() -> dict[str, list[float]]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
        out: dict[str, list[float]] = {"aiohttp (aiohappyeyeballs)": [], "DirectConnector": []}
        conns = {"aiohttp (aiohappyeyeballs)": aiohttp.TCPConnector(limit=0, force_close=True),
                 "DirectConnector": DirectConnector(limit=0, force_close=True)}
        req = aiohttp.client_reqrep.ClientRequest("GET", URL(url), loop=asyncio.get_running_loop())
        timeout = aiohttp.ClientTimeout(total=10)
        for i in range(a.n + 50):
            for name, conn in conns.items():
                t0 = time.perf_counter()
                c = await conn.connect(req, [], timeout)
                ms = (time.perf_counter() - t0) * 1000
                c.close()
                if i >= 50:
                    out[name].append(ms)
        for conn in conns.values():
            await conn.close()
        server.close()
        return out

    print(f"load: {os.getloadavg()}")
    res = uvloop.run(run())
    print(f"\nopen one upstream connection on uvloop (ms; n={a.n} each)")
    base = statistics.median(res["aiohttp (aiohappyeyeballs)"])
    for name, xs in res.items():
        print(f"{name:30} p50 {statistics.median(xs):7.3f}  p99 {pct(xs, 0.99):7.3f}  "
              f"ratio to aiohttp {statistics.median(xs) / base:5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stacks")
    s.add_argument("--n", type=int, default=2000)
    s = sub.add_parser("latency")
    s.add_argument("--n", type=int, default=2000)
    s.add_argument("--llama-server", action="store_true")
    s.add_argument("--llama-swap", action="store_true",
                   help="also a real llama-swap (binary from BOOCONTROL_LLAMA_SWAP_BIN or the cache) in front of "
                        "llama-server: the deployment BooControl is for")
    s.add_argument("--litellm", default=None, help="path of a `litellm` proxy binary (a throwaway venv): anchor")
    s = sub.add_parser("streams")
    s.add_argument("--streams", type=int, default=1000)
    s.add_argument("--tokens", type=int, default=100)
    s.add_argument("--itl-ms", type=float, default=50.0)
    s.add_argument("--ramp-s", type=float, default=2.0)
    s = sub.add_parser("connect")
    s.add_argument("--n", type=int, default=500)
    s = sub.add_parser("_proxy")
    s.add_argument("--stack", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--upstream", required=True)
    a = ap.parse_args()
    if a.cmd == "_proxy":
        run_proxy(a.stack, a.port, a.upstream)
    else:
        {"stacks": cmd_stacks, "latency": cmd_latency, "streams": cmd_streams, "connect": cmd_connect}[a.cmd](a)


if __name__ == "__main__":
    main()
