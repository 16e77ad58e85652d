"""Benchmark sweep flow. Deployed for manual triggering only (no schedule): see docs/bench-metrics.md and docs/benchmarks.md.

The flow's parameters are not written out here: they are ``model``, the takeover confirmation and
every field of `engines.bench.options.BenchOptions` (the same declaration ``boocontrol bench run``'s
options come from), as keyword parameters with the declared types, defaults and help.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from engines.bench.options import CONFIRM_TAKEOVER, RUN_PARAMS, BenchParam, bench_params, capacity_params
from tasks.bench import run_bench_sweep, run_capacity_search

MODEL_HELP = "The model to benchmark, as provider/model."


def _parameter(p: BenchParam) -> inspect.Parameter:
    return inspect.Parameter(
        p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=p.annotation
    )


def declare_bench_parameters(fn: Callable[..., Any], run_params: tuple[BenchParam, ...] = RUN_PARAMS,
                             own: tuple[BenchParam, ...] = ()) -> Callable[..., Any]:
    """Give ``fn(model, confirm_takeover, **options)`` the declared signature and an ``Args:`` section
    (Prefect builds the deployment's parameter schema, its descriptions and its validation from them):
    ``run_params``, the flow's ``own`` parameters, then every `BenchOptions` field."""
    declared = (*run_params, *own, *bench_params())
    params = [
        inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
        *(_parameter(p) for p in declared),
    ]
    fn.__signature__ = inspect.Signature(params, return_annotation=dict[str, Any])  # type: ignore[attr-defined]
    fn.__annotations__ = {"model": str, **{p.name: p.annotation for p in declared}, "return": dict[str, Any]}
    args = "\n".join(f"    {p.name}: {p.help}" for p in declared)
    fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nArgs:\n    model: {MODEL_HELP}\n{args}\n"
    return fn


def _bench_sweep(model: str, confirm_takeover: bool = False, unattended: bool = False, **options: Any) -> dict[str, Any]:
    """Speed sweep of ``provider/model`` (TTFT, TPOT, ITL, tokens/s vs concurrency or rate).

    Refuses unless ``confirm_takeover`` is true and the host has no request in flight. ``levels``
    defaults to 1,2,4,8 (concurrency) or 0.5,1,2,4 req/s (rate). A schedule sets ``unattended``: the run is
    then skipped (recorded, and the flow run completes) unless the host lease is free and the host idle.
    """
    return run_bench_sweep(model, options, confirm_takeover, requested_by=f"prefect:{flow_run.get_id()}",
                           unattended=unattended)


bench_sweep = flow(name="bench-sweep")(declare_bench_parameters(_bench_sweep))


def _bench_capacity(model: str, confirm_takeover: bool = False, **params: Any) -> dict[str, Any]:
    """Capacity under SLOs of ``provider/model``: the highest concurrency (or request rate) at which the chosen
    percentile of TTFT and TPOT meets the targets — a bisection of stored single-level runs between ``low`` and
    ``high``, interpolated, stored as a capacity search (Benchmarks page). Refused unless ``confirm_takeover``."""
    own = {p.name for p in capacity_params()}
    return run_capacity_search(model, {k: v for k, v in params.items() if k not in own},
                               {k: v for k, v in params.items() if k in own}, confirm_takeover,
                               requested_by=f"prefect:{flow_run.get_id()}")


bench_capacity = flow(name="bench-capacity")(
    declare_bench_parameters(_bench_capacity, (CONFIRM_TAKEOVER,), capacity_params())
)
