"""Prompt-cache gain measured by the bench engine's shared-prefix and multi-turn workloads, side by side with the
same lengths sent without sharing, on llama.cpp's llama-server (one slot, ``-t 1``) and a random-weight GGUF from
``tests/support/tinymodel.py`` (``--model small``: 58 M params, prefill a few hundred tokens/s on one thread).

Per workload: the median prompt tokens the server counted, the median it found in its cache (``timings.cache_n``),
TTFT of the point's first request and the median TTFT of the rest. ``unique`` sends the shared-prefix lengths
(prefix + own text) as one unique prompt per request: the cache-free reference.

    .venv/bin/python bench/bench_prompt_cache.py --model small --prefix 1024 --requests 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.bench.host import OpenAIHost  # noqa: E402
from engines.bench.runner import BenchSpec, run_sweep  # noqa: E402
from engines.bench.saturation import SaturationPolicy  # noqa: E402
from engines.bench.workload import (  # noqa: E402
    LengthDist,
    MultiTurnWorkload,
    SharedPrefixWorkload,
    SyntheticWorkload,
    Workload,
)
from tests.support.llamaserver import run_llama_server  # noqa: E402
from tests.support.tinymodel import SHAPES, write_tiny_gguf  # noqa: E402


async def measure(base: str, workloads: dict[str, Workload], n: int) -> None:
    async with httpx.AsyncClient(timeout=600) as c:
        host = OpenAIHost(base, c)
        print(f"{'workload':<14}{'prompt':>8}{'cached':>8}{'TTFT first ms':>15}{'TTFT rest p50 ms':>18}")
        for name, wl in workloads.items():
            spec = BenchSpec(levels=(1,), requests_per_point=n, workload=wl, warmup_requests=2, seed=7,
                             saturation=SaturationPolicy.disabled())  # fmt: skip
            out = await run_sweep(host, "m", spec, c, confirm_takeover=True, provider_id="bench")
            recs = out.points[0].records
            s = out.points[0].summary
            prompt = statistics.median(r.prompt_tokens or 0 for r in recs)
            cached = statistics.median(r.cached_tokens or 0 for r in recs)
            print(f"{name:<14}{prompt:>8.0f}{cached:>8.0f}{s.ttft_first_ms or 0:>15.1f}{s.ttft_rest_p50_ms or 0:>18.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(SHAPES), default="small")
    ap.add_argument("--prefix", type=int, default=1024, help="shared system prompt (tokens)")
    ap.add_argument("--prompt", type=int, default=64, help="each request's own text (tokens)")
    ap.add_argument("--output", type=int, default=16)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--turns", type=int, default=4)
    a = ap.parse_args()
    prompt, output = LengthDist(a.prompt), LengthDist(a.output)
    workloads: dict[str, Workload] = {
        "unique": SyntheticWorkload(LengthDist(a.prefix + a.prompt), output, text="corpus"),
        "shared-prefix": SharedPrefixWorkload(prompt, output, prefix_tokens=a.prefix, text="corpus"),
        "multi-turn": MultiTurnWorkload(LengthDist(a.prefix // a.turns), output, turns=a.turns, text="corpus"),
    }
    with tempfile.TemporaryDirectory() as d:
        model = write_tiny_gguf(Path(d) / "m.gguf", seed=1, shape=SHAPES[a.model])
        with run_llama_server(model, parallel=1, ctx=8192, extra_args=("-t", "1", "-tb", "1")) as base:
            asyncio.run(measure(base, workloads, a.requests))


if __name__ == "__main__":
    main()
