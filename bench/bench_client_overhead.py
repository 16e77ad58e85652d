"""Client overhead of the bench engine: CPU per wall-second and TTFT against an upstream that answers instantly.

The upstream (`tests/bench_engine/instant_server.py`, a separate process pinned to the other CPU)
sends the first content chunk as soon as the request is complete, then one chunk every ``--itl-ms``.
Whatever TTFT the engine measures is therefore the client + loopback + upstream-parse overhead, and
the engine's process CPU time over wall time is what driving the streams costs. Runs go through the
engine's own path: `make_client` (LeanTransport) on the event loop `run_bench` uses
(`engines.bench.eventloop.StampingEventLoop`), or the stock asyncio loop for comparison (``--loop``).

Targets (issue 5): with 64 concurrent streams, < 0.5 core and TTFT p99 < 2 ms.

    .venv/bin/python bench/bench_client_overhead.py                  # 64 streams, 20 ms ITL, 128±32 chunks
    .venv/bin/python bench/bench_client_overhead.py --loop stamping asyncio  # engine's loop vs the stock one
    .venv/bin/python bench/bench_client_overhead.py --stamps kernel poll     # kernel receive stamps vs loop stamps
    .venv/bin/python bench/bench_client_overhead.py --stdev 0 --ramp-s 0  # synchronized worst case
    .venv/bin/python bench/bench_client_overhead.py --itl-ms 0       # flood: max chunks/s at 100 % CPU
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.bench.eventloop import new_event_loop  # noqa: E402
from engines.bench.host import OpenAIHost  # noqa: E402
from engines.bench.runner import BenchSpec, Progress, run_sweep  # noqa: E402
from engines.bench.saturation import SaturationPolicy  # noqa: E402
from engines.bench.service import make_client  # noqa: E402
from engines.bench.transport import LeanTransport  # noqa: E402
from engines.bench.workload import LengthDist, SyntheticWorkload  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, itl_ms: float, cpu: int | None) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "tests.bench_engine.instant_server",
        "--port",
        str(port),
        "--itl-ms",
        str(itl_ms),
    ]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("instant server did not start")


async def floor(port: int, n: int = 500, gap_s: float = 0.01) -> tuple[float, float, float]:
    """The machine's own floor: a bare asyncio socket client (no HTTP library, no parsing) sending the
    same request over one keep-alive connection, ``gap_s`` apart; time to the first response bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"max_tokens":1}'
    req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    ts = []
    for _ in range(n):
        await asyncio.sleep(gap_s)
        t0 = time.perf_counter()
        writer.write(req)
        data = await reader.read(65536)
        ts.append((time.perf_counter() - t0) * 1000)
        while not data.endswith(b"0\r\n\r\n"):
            data += await reader.read(65536)
    writer.close()
    ts.sort()
    return ts[n // 2], ts[int(n * 0.99)], ts[-1]


def plain_httpx_client(streams: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=streams + 8, max_keepalive_connections=streams + 8)
    return httpx.AsyncClient(limits=limits, timeout=600, trust_env=False)


async def measure(
    base: str,
    streams: int,
    requests: int,
    tokens: int,
    stdev: float = 0.0,
    ramp_s: float = 0.0,
    transport: str = "lean",
    kernel_stamps: bool = True,
) -> dict[str, float]:
    spec = BenchSpec(
        levels=(streams,),
        requests_per_point=requests,
        workload=SyntheticWorkload(LengthDist(16), LengthDist(tokens, stdev, 1, 100_000)),
        ramp_s=ramp_s,
        warmup_requests=2,
        saturation=SaturationPolicy.disabled(),
        ignore_eos=False,
    )
    marks: dict[str, tuple[float, float]] = {}

    def progress(p: Progress) -> None:
        if p.phase in ("point", "point_done"):
            marks[p.phase] = (time.perf_counter(), time.process_time())

    lags: list[float] = []

    async def probe() -> None:  # event-loop responsiveness: how late a 1 ms sleep wakes up
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t - 0.001)

    probe_task = asyncio.create_task(probe())
    if transport == "httpx":
        client = plain_httpx_client(streams)
    elif kernel_stamps:
        client = make_client(spec)  # what run_bench uses
    else:
        client = httpx.AsyncClient(transport=LeanTransport(kernel_stamps=False), timeout=600, trust_env=False)
    async with client:
        out = await run_sweep(OpenAIHost(base, client), "instant", spec, client, confirm_takeover=True,
                              provider_id="instant", progress=progress)  # fmt: skip
    probe_task.cancel()
    lags.sort()
    (w0, c0), (w1, c1) = marks["point"], marks["point_done"]
    s = out.points[0].summary
    chunks = sum(len(r.chunks) for r in out.points[0].records)
    return {
        "wall_s": w1 - w0,
        "cpu_s": c1 - c0,
        "cores": (c1 - c0) / (w1 - w0),
        "completed": s.completed,
        "chunks_per_s": chunks / (w1 - w0),
        "ttft_p50_ms": s.ttft_ms.p50 or 0.0,
        "ttft_p99_ms": s.ttft_ms.p99 or 0.0,
        "ttft_max_ms": s.ttft_ms.max or 0.0,
        "itl_p50_ms": s.itl_ms.p50 or 0.0,
        "itl_p99_ms": s.itl_ms.p99 or 0.0,
        "peak_concurrency": s.peak_concurrency,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000 if lags else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[64])
    ap.add_argument("--itl-ms", type=float, default=20.0, help="upstream gap between chunks (0 = flood)")
    ap.add_argument("--tokens", type=int, default=128, help="chunks per response (mean)")
    ap.add_argument("--stdev", type=float, default=32.0, help="stdev of chunks per response")
    ap.add_argument(
        "--ramp-s", type=float, default=1.0, help="closed-loop ramp-up of the workers' first requests"
    )
    ap.add_argument("--requests", type=int, default=640, help="requests per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transport", nargs="+", choices=["lean", "httpx"], default=["lean"],
                    help="lean = make_client's LeanTransport (the engine's default); httpx = httpx's own stack")  # fmt: skip
    ap.add_argument("--loop", nargs="+", choices=["stamping", "asyncio"], default=["stamping"],
                    help="stamping = the engine's StampingEventLoop (wire stamps at the I/O poll); asyncio = the "
                         "default loop (stamps when the protocol callback runs)")  # fmt: skip
    ap.add_argument("--stamps", nargs="+", choices=["kernel", "poll"], default=["kernel"],
                    help="kernel = SO_TIMESTAMPNS receive times (the engine's default on Linux); poll = without "
                         "them (the loop's stamp: poll return on the stamping loop, callback time on asyncio)")  # fmt: skip
    ap.add_argument("--no-pin", action="store_true", help="do not pin client and upstream to separate CPUs")
    a = ap.parse_args()
    pin = not a.no_pin and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {0})
    port = free_port()
    server = start_server(port, a.itl_ms, 1 if pin else None)
    try:
        print(f"upstream: instant first chunk, then 1 chunk / {a.itl_ms:g} ms, {a.tokens}±{a.stdev:g} chunks per "
              f"response; ramp {a.ramp_s:g} s; client on CPU 0, upstream on CPU 1: {pin}; "
              f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        f50, f99, fmax = asyncio.run(floor(port))
        print(f"floor (bare asyncio socket, 1 connection, 10 ms gaps, 500 requests): first bytes p50 {f50:.3f} ms, "
              f"p99 {f99:.3f} ms, max {fmax:.3f} ms")  # fmt: skip
        hdr = (f"{'stamps':>6} {'loop':>8} {'client':>6} {'streams':>7} {'run':>3} {'ok':>5} {'wall s':>7} {'cpu s':>6} {'cores':>6} {'chunks/s':>9} "
               f"{'TTFT p50':>9} {'TTFT p99':>9} {'TTFT max':>9} {'ITL p50':>8} {'ITL p99':>8} {'lag p99':>8}")  # fmt: skip
        print(hdr)
        runs = [(st, lp, tr, streams, i) for i in range(a.repeat) for st in a.stamps for lp in a.loop
                for tr in a.transport for streams in a.streams]  # fmt: skip
        for st, lp, tr, streams, i in runs:  # interleaved, so drift on the shared machine hits every variant
            factory = new_event_loop if lp == "stamping" else asyncio.new_event_loop
            with asyncio.Runner(loop_factory=factory) as runner:
                r = runner.run(
                    measure(f"http://127.0.0.1:{port}", streams, a.requests, a.tokens, a.stdev, a.ramp_s, tr,
                            kernel_stamps=st == "kernel")  # fmt: skip
                )
            print(f"{st:>6} {lp:>8} {tr:>6} {streams:>7} {i + 1:>3} {r['completed']:>5.0f} {r['wall_s']:>7.2f} {r['cpu_s']:>6.2f} "
                  f"{r['cores']:>6.3f} {r['chunks_per_s']:>9.0f} {r['ttft_p50_ms']:>9.3f} {r['ttft_p99_ms']:>9.3f} "
                  f"{r['ttft_max_ms']:>9.3f} {r['itl_p50_ms']:>8.3f} {r['itl_p99_ms']:>8.3f} {r['lag_p99_ms']:>8.3f}")  # fmt: skip
        stats = httpx.get(f"http://127.0.0.1:{port}/stats").json()
        print(
            f"upstream saw {stats['connections']} connections for {stats['requests']} requests (keep-alive reuse)"
        )
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
