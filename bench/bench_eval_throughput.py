"""Eval throughput against llama.cpp's llama-server on the small generated model: items/min with the host's
parallel slots vs one at a time (the ratio), and the eval engine's own CPU per item.

One llama-server (``-np SLOTS``, one thread, as the tests run it) on the generated SMALL model
(tests/support/tinymodel.py, ~50 M params, gibberish answers of exactly ``--max-tokens`` tokens because the
model never emits EOS), a throwaway Postgres, and the real engine (`engines.evals.runner.run_eval`) with the
real store. Each round runs the suite twice on the same server, alternating which goes first: ``parallel =
slots`` (what `eval run` does by default, read from /props) and ``parallel = 1``. The engine's CPU is its
process time (the sandbox's children and llama-server excluded) over the run, per item.

    .venv/bin/python bench/bench_eval_throughput.py                          # ifeval, 32 items, 4 slots
    .venv/bin/python bench/bench_eval_throughput.py --suite humaneval --limit 16   # + the sandbox per item
    .venv/bin/python bench/bench_eval_throughput.py --suite utility --judge        # + the judge rubric per item

``--judge``: the same llama-server model also judges (the utility rubric: one more request per item).
The load average (1/5/15 min) is printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.providers import Provider  # noqa: E402
from engines.evals.chat import judge_for  # noqa: E402
from engines.evals.options import EvalOptions  # noqa: E402
from engines.evals.runner import EvalOutcome, run_eval  # noqa: E402
from engines.evals.sandbox import BubblewrapSandbox  # noqa: E402
from engines.evals.suites import load_suite  # noqa: E402
from tests.support.llamaserver import require_llama_server, run_llama_server  # noqa: E402
from tests.support.tinymodel import SHAPES, write_tiny_gguf  # noqa: E402
from warehouse.cluster import EmbeddedCluster  # noqa: E402
from warehouse.db import make_engine  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="ifeval", choices=["ifeval", "humaneval", "utility"])
    ap.add_argument("--judge", action="store_true", help="the model judges itself (utility rubric)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", default="small", choices=sorted(SHAPES))
    a = ap.parse_args()

    binary = require_llama_server()
    suite = load_suite(a.suite)
    sandbox = BubblewrapSandbox(base_uid=2_100_500_000) if suite.kind == "code" else None
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as d:
        base = Path(d)
        cluster = EmbeddedCluster(base / "pg", free_port(), fast_unsafe=True)
        cluster.start()
        try:
            cluster.ensure_database("bench")
            url = cluster.url("bench")
            upgrade(url)
            engine = make_engine(url, pool_size=8)
            model = write_tiny_gguf(base / f"{a.model}.gguf", seed=0, shape=SHAPES[a.model])
            with run_llama_server(model, parallel=a.slots, ctx=2048 * a.slots, binary=binary,
                                  extra_args=("--slots",)) as srv:  # fmt: skip
                provider = Provider("bench", "bench", srv, kind="openai")

                def once(parallel: int | None) -> EvalOutcome:
                    opts = EvalOptions(suite=a.suite, limit=a.limit, max_tokens=a.max_tokens,  # type: ignore[arg-type]
                                       parallel=parallel, fresh=True, judge="bench/bench" if a.judge else None)  # fmt: skip
                    judge = judge_for(provider, "bench") if a.judge else None
                    return asyncio.run(run_eval(engine, provider, "bench", suite, opts, confirm_takeover=True,
                                                sandbox=sandbox, judge=judge))  # fmt: skip

                once(None)  # warm-up: page the model in, fill caches
                res: dict[str, list[EvalOutcome]] = {"slots": [], "one": []}
                for r in range(a.rounds):
                    order = [("slots", None), ("one", 1)] if r % 2 == 0 else [("one", 1), ("slots", None)]
                    for name, par in order:
                        out = once(par)
                        res[name].append(out)
                        print(f"round {r + 1} {name:5s}: {out.total} items in {out.wall_s:.1f} s "
                              f"({out.total / out.wall_s * 60:.0f}/min), parallel {out.parallel}, "
                              f"engine CPU {out.engine_cpu_s / out.total * 1000:.1f} ms/item", flush=True)  # fmt: skip
            engine.dispose()
        finally:
            cluster.stop("immediate")

    def rate(xs: list[EvalOutcome]) -> float:
        return statistics.median(o.total / o.wall_s * 60 for o in xs)

    def cpu(xs: list[EvalOutcome]) -> float:
        return statistics.median(o.engine_cpu_s / o.total * 1000 for o in xs)

    n = res["slots"][0].total
    load = os.getloadavg()
    print(f"\nload average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)")
    print(f"| {a.suite}{' + judge' if a.judge else ''}, {n} items, {a.max_tokens} tokens each, {a.model} model, "
          f"llama-server -np {a.slots} -t 1 "
          f"| items/min | engine CPU per item |")
    print("|---|---|---|")
    print(f"| parallel = host slots ({res['slots'][0].parallel}) | {rate(res['slots']):.0f} | {cpu(res['slots']):.1f} ms |")
    print(f"| one at a time | {rate(res['one']):.0f} | {cpu(res['one']):.1f} ms |")
    print(f"| **ratio** | **{rate(res['slots']) / rate(res['one']):.2f}** | |")


if __name__ == "__main__":
    main()
