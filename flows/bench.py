"""Benchmark sweep flow. Deployed for manual triggering only (no schedule): see docs/bench-metrics.md and docs/benchmarks.md."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from prefect.runtime import flow_run

from tasks.bench import run_bench_sweep


@flow(name="bench-sweep")
def bench_sweep(
    model: str,
    confirm_takeover: bool = False,
    mode: Literal["concurrency", "rate"] = "concurrency",
    levels: list[float] | None = None,
    requests_per_point: int = 32,
    workload: Literal["synthetic", "production"] = "synthetic",
    prompt_tokens: int = 256,
    prompt_stdev: float = 0.0,
    output_tokens: int = 128,
    output_stdev: float = 0.0,
    arrival: Literal["constant", "poisson"] = "poisson",
    max_concurrency: int = 10,
    seed: int | None = None,
    slo_ttft_ms: float | None = 200.0,
    slo_tpot_ms: float | None = 50.0,
    early_stop: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """Speed sweep of ``provider/model`` (TTFT, TPOT, ITL, tokens/s vs concurrency or rate).

    Refuses unless ``confirm_takeover`` is true and the host has no request in flight. ``levels``
    defaults to 1,2,4,8 (concurrency) or 0.5,1,2,4 req/s (rate).
    """
    options: dict[str, Any] = {
        "mode": mode,
        "levels": levels,
        "requests_per_point": requests_per_point,
        "workload": workload,
        "prompt_tokens": prompt_tokens,
        "prompt_stdev": prompt_stdev,
        "output_tokens": output_tokens,
        "output_stdev": output_stdev,
        "arrival": arrival,
        "max_concurrency": max_concurrency,
        "seed": seed,
        "slo_ttft_ms": slo_ttft_ms,
        "slo_tpot_ms": slo_tpot_ms,
        "early_stop": early_stop,
        "label": label,
    }
    return run_bench_sweep(model, options, confirm_takeover, requested_by=f"prefect:{flow_run.get_id()}")
