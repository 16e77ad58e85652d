"""Canary flow: a one-token request to every loaded model of every host, every few minutes (engines/canary.py).

Thin: the registry and the database come from the settings; ``engines.canary.run_cycle`` probes (never a model
that is not loaded, never a host under a lease) and stores the cycle. The Fleet page draws a traffic light per
model from the last probes; the alert flow's ``canary_slo`` rule reads them.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.providers import load_registry
from core.settings import get_settings
from engines.canary import CycleRunning, run_cycle
from tasks.warehouse import warehouse_engine


@task(name="canary-cycle", tags=["postgres"], cache_policy=NO_CACHE)
def canary_cycle(concurrency: int, timeout_s: float) -> dict[str, Any]:
    registry = load_registry(get_settings().fleet_path)
    try:
        cycle_id, cycle = run_cycle(warehouse_engine(), registry.providers, concurrency=concurrency,
                                    timeout_s=timeout_s)
    except CycleRunning as exc:
        return {"cycle_id": None, "hosts": 0, "probed": 0, "failed": 0, "unmatched": 0,
                "skipped": {"*": str(exc)}, "seconds": 0.0}
    probes = cycle.probes
    return {
        "cycle_id": cycle_id,
        "hosts": len(cycle.hosts),
        "probed": len(probes),
        "failed": sum(1 for p in probes if not p.ok),
        "unmatched": sum(1 for p in probes if p.activity_upstream_id is None),
        "skipped": cycle.skipped,
        "seconds": round((cycle.finished_at - cycle.started_at).total_seconds(), 3),
    }


@flow(name="canary")
def canary(concurrency: int = 64, timeout_s: float = 30.0) -> dict[str, Any]:
    """Probe every loaded model of every host once (``concurrency`` hosts at a time; each request given up
    after ``timeout_s``) and store the results."""
    out = canary_cycle(concurrency, timeout_s)
    if out["cycle_id"] is None:
        get_run_logger().warning("canary: %s; nothing done", out["skipped"]["*"])
        return out
    get_run_logger().info("canary cycle %s: %s hosts, %s probes (%s failed, %s unmatched), %s skipped, %.1f s",
                          out["cycle_id"], out["hosts"], out["probed"], out["failed"], out["unmatched"],
                          len(out["skipped"]), out["seconds"])
    return out
