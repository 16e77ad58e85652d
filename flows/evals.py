"""Eval flow. Deployed for manual triggering only (an eval keeps a host busy): see docs/evals.md.

The ``eval-run`` flow's parameters are ``model``, the takeover confirmation and every field of
`engines.evals.options.EvalOptions` (the same declaration ``boocontrol eval run``'s options come from); the
``judge-calibration`` flow's are the fields of `engines.evals.options.CalibrationOptions` (those of
``boocontrol eval calibrate-judge``).
"""

from __future__ import annotations

import inspect
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from engines.bench.options import BenchParam
from engines.evals.options import RUN_PARAMS, calibration_params, eval_params, is_required
from flows.bench import MODEL_HELP, _parameter
from tasks.evals import calibrate_judge_task, run_eval_task


def _eval_run(model: str, confirm_takeover: bool = False, **options: Any) -> dict[str, Any]:
    """Ask ``provider/model`` an eval suite (see the ``suite`` parameter) and store answers and scores.

    Refuses unless ``confirm_takeover`` is true and the host has no request in flight. A run that stopped
    (cancelled, crashed, lease lost) is continued by running the same parameters again.
    """
    return run_eval_task(model, options, confirm_takeover, requested_by=f"prefect:{flow_run.get_id()}")


def _declare(fn: Any, declared: tuple[BenchParam, ...], model_help: str | None = None) -> Any:
    """Give ``fn`` the declared parameters (after ``model`` when ``model_help`` is given) as its signature,
    annotations and ``Args:`` docs: Prefect builds the deployment's parameter schema, descriptions and validation
    from them. A declared parameter without a default is a required one."""
    lead = [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)] if model_help else []
    params = [*lead, *(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=p.annotation)
                       if is_required(p) else _parameter(p) for p in declared)]  # fmt: skip
    fn.__signature__ = inspect.Signature(params, return_annotation=dict[str, Any])
    fn.__annotations__ = {**({"model": str} if model_help else {}), **{p.name: p.annotation for p in declared},
                          "return": dict[str, Any]}  # fmt: skip
    args = "\n".join([*([f"    model: {model_help}"] if model_help else []), *(f"    {p.name}: {p.help}" for p in declared)])
    fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nArgs:\n{args}\n"
    return fn


eval_run = flow(name="eval-run")(
    _declare(_eval_run, (*RUN_PARAMS, *eval_params()), MODEL_HELP.replace("benchmark", "evaluate"))
)


def _judge_calibration(**options: Any) -> dict[str, Any]:
    """Measure a judge's (``provider/model``) agreement with human pairwise labels (a JSON-lines file on the
    worker) and store it; it is marked trusted only at >= 80 % non-tie agreement on >= 10 non-tie pairs."""
    return calibrate_judge_task(options)


judge_calibration = flow(name="judge-calibration")(_declare(_judge_calibration, calibration_params()))
