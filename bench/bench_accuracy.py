"""Accuracy of the bench engine against llama-server's own ``timings`` on the same requests.

For every request the engine measures from the client side and llama.cpp reports from the inside:

* generation speed: engine ``decode_tps`` = (n_out − 1) / (last − first content chunk)
  vs ``timings.predicted_per_second`` (= predicted_n / predicted_ms);
* prompt time: engine TTFT vs ``timings.prompt_ms`` (TTFT also holds HTTP, templating, tokenizing and
  the first token's sampling, so it is an upper bound that converges as prompts grow; the median gap
  is printed as ``TTFT-pm``, the engine's "TTFT overhead" metric).

Columns are medians over the requests (engine and server figures), and the median and maximum of the
per-request relative error |engine / server − 1|.

Target (issue 5): agreement within 5 %. A random-weight GGUF from ``tests/support/tinymodel.py`` runs
on llama.cpp's llama-server (``-t 1 -tb 1``, one slot), directly or behind a real llama-swap
(``--via-swap``). ``--model small`` (the default, 58 M params) runs at the speed of a real model on one
CPU thread (prefill hundreds, decode tens to ~200 tokens/s); ``--model tiny`` (0.6 M params, prefill
~10 000-50 000 tokens/s) is the stress case where a few milliseconds of fixed overhead dominate short
prompts. On the small model ``--shapes 256x128 1024x512 3000x512 3500x128 --requests 10`` takes 5-7 min.

    .venv/bin/python bench/bench_accuracy.py
    .venv/bin/python bench/bench_accuracy.py --via-swap
    .venv/bin/python bench/bench_accuracy.py --model tiny --shapes 512x256 1500x512 --requests 20
    .venv/bin/python bench/bench_accuracy.py --workloads synthetic shared-prefix multi-turn --text corpus
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.llama_swap_api import LlamaSwapAPI  # noqa: E402
from core.providers import Provider  # noqa: E402
from engines.bench.eventloop import new_event_loop  # noqa: E402
from engines.bench.host import BenchHost, LlamaSwapHost, OpenAIHost  # noqa: E402
from engines.bench.runner import BenchSpec, Progress, run_sweep  # noqa: E402
from engines.bench.saturation import SaturationPolicy  # noqa: E402
from engines.bench.service import make_client  # noqa: E402
from engines.bench.workload import (  # noqa: E402
    LengthDist,
    MultiTurnWorkload,
    SharedPrefixWorkload,
    SyntheticWorkload,
    TextStyle,
    Workload,
)
from tests.support.llamaserver import find_llama_server, llama_server_cmd, run_llama_server  # noqa: E402
from tests.support.tinymodel import SHAPES, write_tiny_gguf  # noqa: E402


@contextlib.contextmanager
def upstream(
    model: Path, name: str, via_swap: bool, ctx: int, extra: Sequence[str] = (), parallel: int = 1
) -> Iterator[tuple[str, str]]:
    """(base URL, kind) of llama-server on ``model``, directly or behind llama-swap."""
    if not via_swap:
        with run_llama_server(model, parallel=parallel, ctx=ctx, extra_args=extra) as base:
            yield base, "openai"
        return
    from tests.support.llamaswap import free_port, run_llama_swap

    binary = find_llama_server()
    assert binary is not None
    cfg = (f"healthCheckTimeout: 60\nstartPort: {free_port()}\nmodels:\n  {name}:\n"
           f"    cmd: {llama_server_cmd(binary, model, parallel=parallel, ctx=ctx, extra_args=extra)}\n    proxy: http://127.0.0.1:${{PORT}}\n")  # fmt: skip
    with run_llama_swap(cfg) as ls:
        yield ls.base_url, "llama-swap"


def rel(a: float, b: float) -> float:
    return a / b - 1.0


COUNTERS = ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total")


def read_counters(url: str) -> dict[str, float]:
    """llama-server's Prometheus counters (``--metrics``); read synchronously between the engine's phases."""
    text = httpx.get(url, timeout=10).text
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in COUNTERS:
            out[name] = float(value)
    return out


def workload_of(kind: str, prompt: int, output: int, text: TextStyle) -> Workload:
    """The workload of a shape: ``synthetic`` (one user message of PROMPT tokens), ``shared-prefix`` (a
    PROMPT-token system prompt shared by the point, then a user message of PROMPT/4), ``multi-turn``
    (conversations of 3 turns, each user message PROMPT/3, each carrying the earlier turns)."""
    if kind == "shared-prefix":
        return SharedPrefixWorkload(LengthDist(max(1, prompt // 4)), LengthDist(output), prefix_tokens=prompt,
                                    text=text)
    if kind == "multi-turn":
        return MultiTurnWorkload(LengthDist(max(1, prompt // 3)), LengthDist(output), turns=3, text=text)
    return SyntheticWorkload(LengthDist(prompt), LengthDist(output), text=text)


async def measure(
    base: str, kind: str, name: str, prompt: int, output: int, requests: int, concurrency: int = 1,
    workload: str = "synthetic", text: TextStyle = "words",
) -> dict[str, float]:
    spec = BenchSpec(levels=(concurrency,), requests_per_point=requests,
                     workload=workload_of(workload, prompt, output, text),
                     saturation=SaturationPolicy.disabled(), warmup_requests=3)  # fmt: skip
    metrics_url = f"{base}/upstream/{name}/metrics" if kind == "llama-swap" else f"{base}/metrics"
    counters: dict[str, dict[str, float]] = {}

    def progress(p: Progress) -> None:  # the point's own requests only: read right before and right after it
        if p.phase == "point":
            counters["before"] = read_counters(metrics_url)
        elif p.phase == "point_done":
            counters["after"] = read_counters(metrics_url)

    async with make_client(spec) as c:  # the engine's own client (LeanTransport), as `run_bench` uses it
        host: BenchHost = (
            LlamaSwapHost(LlamaSwapAPI(Provider("acc", "acc", base), c))
            if kind == "llama-swap"
            else OpenAIHost(base, c)
        )
        out = await run_sweep(host, name, spec, c, confirm_takeover=True, provider_id="acc", progress=progress)
    every = out.points[0].records
    delta = {k: counters["after"][k] - counters["before"][k] for k in COUNTERS}
    len_err = [abs((r.prompt_tokens or 0) - (r.target_input_tokens or 0)) for r in every if r.ok]
    within_1 = sum(1 for e in len_err if e <= 1)
    recs = [r for r in every if r.ok and r.timings and r.decode_tps and r.ttft]
    gen_e = [r.decode_tps or 0.0 for r in recs]
    gen_s = [float(r.timings["predicted_per_second"]) for r in recs if r.timings]
    ttft = [(r.ttft or 0.0) * 1000 for r in recs]
    pms = [float(r.timings["prompt_ms"]) for r in recs if r.timings]
    gen_err = [abs(rel(e, s)) for e, s in zip(gen_e, gen_s, strict=True)]
    pt_err = [abs(rel(t, p)) for t, p in zip(ttft, pms, strict=True)]
    return {
        "n": len(recs),
        "prompt_tokens": statistics.mean(r.prompt_tokens or 0 for r in recs),
        "out_tokens": statistics.mean(r.output_tokens for r in recs),
        "gen_engine": statistics.median(gen_e),
        "gen_server": statistics.median(gen_s),
        "gen_err_med": statistics.median(gen_err),
        "gen_err_max": max(gen_err),
        "ttft_ms": statistics.median(ttft),
        "prompt_ms": statistics.median(pms),
        "overhead_ms": statistics.median(t - p for t, p in zip(ttft, pms, strict=True)),
        "pt_err_med": statistics.median(pt_err),
        "pt_err_max": max(pt_err),
        "ttft_ge_prompt": float(all(t >= p for t, p in zip(ttft, pms, strict=True))),
        "exact_lengths": float(out.exact_lengths),
        "len_err_max": float(max(len_err)),
        "len_within_1": float(within_1),
        "len_n": float(len(len_err)),
        # token totals: the server's counters over the point vs the engine's per-request sums
        "prompt_counter": delta["llamacpp:prompt_tokens_total"],
        "prompt_engine": float(sum(int(r.timings.get("prompt_n", 0)) for r in every if r.timings)),
        "gen_counter": delta["llamacpp:tokens_predicted_total"],
        "gen_engine_total": float(sum(r.output_tokens for r in every if r.ok)),
        # prefill at this concurrency: the server's own rate and the latency-derived figure
        "prefill_server": statistics.median(float(r.timings["prompt_per_second"]) for r in recs if r.timings),
        "prefill_latency": statistics.median(r.prompt_tps or 0.0 for r in recs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["256x128", "1024x512", "3000x512"],
                    help="PROMPTxOUTPUT token shapes")  # fmt: skip
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--via-swap", action="store_true", help="go through a real llama-swap")
    ap.add_argument("--concurrency", type=int, default=1,
                    help="closed-loop workers (and llama-server slots): above 1, compare the server's prefill "
                         "rate with prompt tokens ÷ TTFT")  # fmt: skip
    ap.add_argument("--slots", type=int, default=None,
                    help="llama-server slots (-np; default: --concurrency): fewer than --concurrency makes requests "
                         "queue for a slot, which TTFT includes and the server's prompt time does not")  # fmt: skip
    ap.add_argument("--model", choices=sorted(SHAPES), default="small",
                    help="size of the random-weight GGUF (tests/support/tinymodel.py)")  # fmt: skip
    ap.add_argument("--workloads", nargs="+", default=["synthetic"],
                    choices=["synthetic", "shared-prefix", "multi-turn"],
                    help="run every shape with each: shared-prefix = a PROMPT-token system prompt shared by the "
                         "point + PROMPT/4 of user text; multi-turn = 3-turn conversations of PROMPT/3 per turn")  # fmt: skip
    ap.add_argument("--text", choices=["words", "corpus"], default="words",
                    help="prompt text: random common words or the project's generated sentences")  # fmt: skip
    ap.add_argument("--cache-ram", type=int, metavar="MIB",
                    help="llama-server --cache-ram (default: its own, 8192); 0 disables the host-RAM prompt cache, "
                         "whose save before each new prompt is in TTFT but not in prompt_ms")  # fmt: skip
    a = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in a.shapes]
    ctx = max(p + o for p, o in shapes) * (3 if "multi-turn" in a.workloads else 1) + 512
    with tempfile.TemporaryDirectory() as d:
        shape = SHAPES[a.model]
        model = write_tiny_gguf(Path(d) / f"{a.model}.gguf", seed=0, shape=shape)
        extra: tuple[str, ...] = ("--metrics",) + (() if a.cache_ram is None else ("--cache-ram", str(a.cache_ram)))
        slots = a.slots or a.concurrency
        with upstream(model, a.model, a.via_swap, ctx * slots, extra, slots) as (base, kind):
            print(f"llama-server on the {a.model} GGUF ({shape.describe()}), {slots} slot(s), -t 1 -tb 1, "
                  f"ctx {ctx}{''.join(' ' + x for x in extra)}, {'via llama-swap' if a.via_swap else 'direct'}; "
                  f"load average {os.getloadavg()[0]:.2f}; {a.requests} requests per shape, concurrency {a.concurrency}")  # fmt: skip
            print(f"{'shape':>10} {'n':>3} {'prompt':>7} {'out':>5} | {'gen eng':>8} {'gen srv':>8} {'|err| med':>9} "
                  f"{'|err| max':>9} | {'TTFT ms':>8} {'prompt ms':>9} {'TTFT-pm':>8} {'|err| med':>9} {'|err| max':>9} {'TTFT>=pm':>8}")  # fmt: skip
            for wl, (p, o) in ((w, s) for w in a.workloads for s in shapes):
                with asyncio.Runner(loop_factory=new_event_loop) as runner:  # run_bench's event loop
                    r = runner.run(measure(base, kind, a.model, p, o, a.requests, a.concurrency, wl, a.text))
                if len(a.workloads) > 1 or wl != "synthetic":
                    print(f"-- {wl} ({a.text})")
                print(f"{p:>5}x{o:<4} {r['n']:>3.0f} {r['prompt_tokens']:>7.0f} {r['out_tokens']:>5.0f} | "
                      f"{r['gen_engine']:>8.0f} {r['gen_server']:>8.0f} {r['gen_err_med']:>9.2%} {r['gen_err_max']:>9.2%} | "
                      f"{r['ttft_ms']:>8.2f} {r['prompt_ms']:>9.2f} {r['overhead_ms']:>8.2f} {r['pt_err_med']:>9.2%} {r['pt_err_max']:>9.2%} "
                      f"{'yes' if r['ttft_ge_prompt'] else 'NO':>8}")  # fmt: skip
                print(f"{'':>10} lengths {'exact' if r['exact_lengths'] else 'calibrated'}, max |usage - target| "
                      f"{r['len_err_max']:.0f} tok, within ±1 token on {r['len_within_1']:.0f} of {r['len_n']:.0f} "
                      f"requests; prompt tokens: counter {r['prompt_counter']:.0f} vs engine Σ prompt_n "
                      f"{r['prompt_engine']:.0f}; generated: counter {r['gen_counter']:.0f} vs engine Σ "
                      f"{r['gen_engine_total']:.0f}; prefill tok/s: server {r['prefill_server']:.0f}, "
                      f"prompt÷TTFT {r['prefill_latency']:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
