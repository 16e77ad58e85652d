"""Prefect task around one benchmark run (no retries: a benchmark is not idempotent)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from core.providers import load_registry
from core.settings import get_settings
from engines.bench.gate import DEFAULT_IDLE_WAIT_S
from engines.bench.options import BenchOptions, CapacityOptions
from engines.bench.runner import Progress
from engines.bench.service import build_spec, run_bench, run_capacity
from engines.bench.unattended import BenchSkipped
from warehouse.db import make_engine


@task(name="bench-run", retries=0, tags=["bench"])
def run_bench_sweep(
    model: str, options: dict[str, Any], confirm_takeover: bool, requested_by: str | None = None,
    unattended: bool = False,
) -> dict[str, Any]:
    """Resolve ``provider/model``, run the sweep under the host lease, store it; returns a run summary.

    ``unattended`` (a schedule): the run needs the lease at once and an idle host
    (``bench_unattended_idle_seconds``); when it is skipped the summary says so and the task succeeds."""
    logger = get_run_logger()
    settings = get_settings()
    registry = load_registry(settings.fleet_path)
    ref = registry.resolve(model)
    provider = registry.get(ref.provider_id)
    engine = make_engine(settings.resolved_database_url(), pool_size=2)
    try:
        opts = BenchOptions.from_mapping(options)
        spec = build_spec(engine, provider.id, ref.model_id, opts)

        def progress(p: Progress) -> None:
            if p.phase in ("gate", "warm", "warmup", "cleanup", "done"):
                logger.info("%s: %s", p.phase, p.message)
            elif p.phase == "point_done":
                logger.info(
                    "point %s=%g done (%d/%d requests)%s",
                    spec.mode, p.level or 0, p.done, p.total, f" — saturated: {p.message}" if p.message else "",
                )  # fmt: skip

        try:
            outcome = run_bench(
                engine,
                provider,
                ref.model_id,
                spec,
                confirm_takeover=confirm_takeover,
                progress=progress,
                requested_by=requested_by,
                unattended_idle_s=settings.bench_unattended_idle_seconds if unattended else None,
                idle_wait_s=DEFAULT_IDLE_WAIT_S,
            )
        except BenchSkipped as exc:
            logger.info("%s", exc)
            return {"run_uid": None, "status": "skipped", "stop_reason": str(exc), "points": [], "cleanup": []}
        return {
            "run_id": outcome.run_id,  # the number `bench show`/`compare` and the Benchmarks page use
            "run_uid": outcome.run_uid,
            "simulated": outcome.simulated,
            "status": outcome.status,
            "stop_reason": outcome.stop_reason,
            "points": [
                {
                    "level": p.level,
                    "completed": p.summary.completed,
                    "output_throughput": p.summary.output_throughput,
                    "ttft_p50_ms": p.summary.ttft_ms.p50,
                    "tpot_p50_ms": p.summary.tpot_ms.p50,
                    "saturated": p.verdict.saturated,
                }
                for p in outcome.points
            ],
            "cleanup": outcome.cleanup,
        }
    finally:
        engine.dispose()


@task(name="bench-capacity", retries=0, tags=["bench"])
def run_capacity_search(
    model: str, options: dict[str, Any], capacity: dict[str, Any], confirm_takeover: bool,
    requested_by: str | None = None,
) -> dict[str, Any]:
    """Resolve ``provider/model`` and run a stored capacity search (each level a stored run); its summary."""
    logger = get_run_logger()
    settings = get_settings()
    registry = load_registry(settings.fleet_path)
    ref = registry.resolve(model)
    provider = registry.get(ref.provider_id)
    engine = make_engine(settings.resolved_database_url(), pool_size=2)
    try:
        opts = BenchOptions.from_mapping({**options, "levels": None, "early_stop": False})
        copts = CapacityOptions(**capacity)
        spec = build_spec(engine, provider.id, ref.model_id, opts)
        out = run_capacity(engine, provider, ref.model_id, spec, copts.targets(), copts.bounds(),
                           confirm_takeover=confirm_takeover, requested_by=requested_by,
                           on_level=lambda lv: logger.info("measuring %s=%g", spec.mode, lv))  # fmt: skip
        cap = out.result
        assert cap is not None
        logger.info("capacity: %s (search #%d)", cap.describe(), out.search_id)
        return {
            "search_id": out.search_id,
            "status": out.status,
            "capacity": cap.interpolated,
            "reached": cap.reached,
            "description": cap.describe(),
            "points": [{"level": p.level, "run_id": out.runs.get(p.level), "meets": p.meets} for p in cap.points],
        }
    finally:
        engine.dispose()
