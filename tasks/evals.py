"""Prefect task around one eval run (no retries: a stopped run is continued by running it again, which is
what a retry would do, but only a person should decide to keep a host busy for longer)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from core.providers import load_registry
from core.settings import get_settings
from engines.bench.gate import DEFAULT_IDLE_WAIT_S
from engines.evals.calibration import run_calibration
from engines.evals.chat import judge_for, suite_of
from engines.evals.default_judge import NoDefaultJudge, default_judge
from engines.evals.options import CalibrationOptions, EvalOptions
from engines.evals.runner import JUDGED_KINDS, EvalProgress, run_eval_sync
from engines.evals.sandbox import BubblewrapSandbox
from engines.evals.suites import SANDBOXED_KINDS
from warehouse.db import make_engine


@task(name="judge-calibration", retries=0, tags=["eval"])
def calibrate_judge_task(options: dict[str, Any]) -> dict[str, Any]:
    """Resolve the judge ``provider/model``, measure its agreement with the labels file, store it."""
    opts = CalibrationOptions.from_mapping(options)
    settings = get_settings()
    registry = load_registry(settings.fleet_path)
    ref = registry.resolve(opts.judge)
    jm = judge_for(registry.get(ref.provider_id), ref.model_id, timeout_s=opts.request_timeout_s)
    engine = make_engine(settings.resolved_database_url(), pool_size=2)
    try:
        report, rid = run_calibration(engine, jm, opts.labels)
    finally:
        engine.dispose()
    get_run_logger().info("judge %s: %s", report.judge, report.reason)
    return {"id": rid, **report.as_dict()}


@task(name="eval-run", retries=0, tags=["eval"])
def run_eval_task(model: str, options: dict[str, Any], confirm_takeover: bool,
                  requested_by: str | None = None) -> dict[str, Any]:
    """Resolve ``provider/model``, run (or continue) the eval under the host lease, store it; returns a summary."""
    logger = get_run_logger()
    settings = get_settings()
    registry = load_registry(settings.fleet_path)
    ref = registry.resolve(model)
    provider = registry.get(ref.provider_id)
    opts = EvalOptions.from_mapping(options)
    suite = suite_of(opts.suite, opts.questions)
    sandbox = None
    if suite.kind in SANDBOXED_KINDS:
        sandbox = BubblewrapSandbox()
        sandbox.check()
    engine = make_engine(settings.resolved_database_url(), pool_size=4)
    step = max(1, len(suite.subset(opts.limit, opts.item_keys())) * opts.samples // 10)

    def progress(p: EvalProgress) -> None:
        if p.phase != "answer" or p.done % step == 0 or p.done == p.total:
            logger.info("%s: %d/%d %s", p.phase, p.done, p.total, p.message)

    try:
        judge = None
        judge_model = opts.judge
        if not judge_model and suite.kind in JUDGED_KINDS:  # the best-scoring local model (default_judge)
            try:
                with engine.connect() as conn:
                    choice = default_judge(conn, registry.providers)
            except NoDefaultJudge as exc:
                if suite.kind != "utility":
                    raise
                logger.info("no judge rubric, format checks only: %s", exc)
            else:
                logger.info("judge: %s", choice.describe())
                judge_model = choice.model
        if judge_model:
            jref = registry.resolve(judge_model)
            judge = judge_for(registry.get(jref.provider_id), jref.model_id, timeout_s=opts.request_timeout_s)
        out = run_eval_sync(engine, provider, ref.model_id, suite, opts, confirm_takeover=confirm_takeover,
                            sandbox=sandbox, progress=progress, requested_by=requested_by,
                            idle_wait_s=DEFAULT_IDLE_WAIT_S, judge=judge)  # fmt: skip
    finally:
        engine.dispose()
    return {"run_id": out.run_id, "status": out.status, "suite": out.suite, "suite_version": out.suite_version,
            "metrics": out.metrics, "asked": out.asked, "reused": out.reused, "resumed": out.resumed,
            "parallel": out.parallel, "model_file": out.model_file, "stale_marked": out.stale_marked}  # fmt: skip
