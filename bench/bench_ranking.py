"""What routing costs the gateway per ``auto:*`` request: `gateway.ranking.rank` over fleets of N models.

The gateway ranks every ``auto:*`` request in its event loop (the facts are re-read in the background), so
rank() is on the added-latency budget of issue 12 (p50 <= 1 ms added). This measures, in one run, the time of
one rank() call per policy for fleets of 10, 50, 200 and 1 000 models (a mix of loaded/cold, local/cloud,
measured/unmeasured, some leased, some skipped for their context window), and the CPU time per
model between the sizes (rank() is linear in the fleet: one pass to filter, one to score, one sort).

    PYTHONPATH=. .venv/bin/python bench/bench_ranking.py
    PYTHONPATH=. .venv/bin/python bench/bench_ranking.py --explain 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime

from gateway.facts import FleetFacts, ModelFacts, Speed
from gateway.policies import PolicyBook
from gateway.ranking import Need, rank


def fleet(n: int) -> FleetFacts:
    models = []
    for i in range(n):
        sp = Speed(source="bench run 1", samples=10, ttft_ms={"p50": 300.0 + i % 7, "p90": 500.0},
                   tpot_ms={"p50": 10.0 + i % 13}, gen_tps={"p50": 80.0}, prefill_tps=1500.0 + 10 * (i % 11))
        models.append(ModelFacts(
            provider_id=f"host{i // 4}", model_id=f"model-{i}", kind="llama-swap" if i % 9 else "openai",
            local=bool(i % 9), provider_online=bool(i % 17), state="ready" if i % 3 == 0 else "stopped",
            context_length=(8192, 32768, 131072)[i % 3], endpoints=frozenset({"chat", "completions"}),
            load_ms=4000.0 + i if i % 2 else None,
            quality={"humaneval": {"pass@1": (i % 10) / 10}} if i % 4 else {},
            live=sp if i % 5 == 0 else None, bench=sp if i % 5 else None,
            j_per_token=0.3 + (i % 6) / 10 if i % 3 else None,
            lease="bench run 1 by x until 12:00:00 UTC" if i % 23 == 0 else None,
        ))  # fmt: skip
    return FleetFacts(datetime.now(UTC), tuple(models))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200, 1000])
    ap.add_argument("--calls", type=int, default=1000, help="rank() calls per policy and size (fewer for 1 000)")
    ap.add_argument("--explain", type=int, default=None,
                    help="reasons for the first N candidates only (the gateway's hot path); default: all")
    args = ap.parse_args()
    book = PolicyBook.builtin()
    need = Need("chat", 2000, 512)
    print(f"load average {os.getloadavg()[0]:.2f} (2 shared cores); reasons for "
          + ("every candidate" if args.explain is None else f"the first {args.explain} candidates"))
    print(f"{'models':>7} {'policy':<15} {'p50 µs':>9} {'p99 µs':>9} {'CPU µs':>9} {'CPU µs/model':>12} "
          f"{'candidates':>10} {'skipped':>8}")
    per_model: dict[int, float] = {}
    for n in args.sizes:
        facts = fleet(n)
        inflight = {m.key: i % 3 for i, m in enumerate(facts.models[::5])}
        cooling = [m.key for m in facts.models[::31]]
        calls = max(50, args.calls * 50 // max(n, 50))
        p50s = []
        for p in book.policies:
            times = []
            cpu0 = time.thread_time_ns()
            for _ in range(calls):
                t0 = time.perf_counter_ns()
                r = rank(p, need, facts, inflight, cooling, explain=args.explain)
                times.append((time.perf_counter_ns() - t0) / 1000)
            cpu = (time.thread_time_ns() - cpu0) / 1000 / calls
            times.sort()
            p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
            p50s.append(cpu)
            print(f"{n:>7} {p.name:<15} {p50:>9.0f} {p99:>9.0f} {cpu:>9.0f} {cpu / n:>12.2f} {len(r.candidates):>10} "
                  f"{len(r.skipped):>8}")
        per_model[n] = statistics.median(p50s) / n
    base = args.sizes[0]
    print("CPU per model relative to", base, "models:",
          ", ".join(f"{n}: {per_model[n] / per_model[base]:.2f}x" for n in args.sizes))


if __name__ == "__main__":
    main()
