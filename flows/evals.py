"""Eval flow. Deployed for manual triggering only (an eval keeps a host busy): see docs/evals.md.

The flow's parameters are ``model``, the takeover confirmation and every field of
`engines.evals.options.EvalOptions` (the same declaration ``boocontrol eval run``'s options come from).
"""

from __future__ import annotations

import inspect
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from engines.evals.options import RUN_PARAMS, eval_params
from flows.bench import MODEL_HELP, _parameter
from tasks.evals import calibrate_judge_task, run_eval_task


def _eval_run(model: str, confirm_takeover: bool = False, **options: Any) -> dict[str, Any]:
    """Ask ``provider/model`` an eval suite (HumanEval or instruction following) and store answers and scores.

    Refuses unless ``confirm_takeover`` is true and the host has no request in flight. A run that stopped
    (cancelled, crashed, lease lost) is continued by running the same parameters again.
    """
    return run_eval_task(model, options, confirm_takeover, requested_by=f"prefect:{flow_run.get_id()}")


def _declare(fn: Any) -> Any:
    declared = (*RUN_PARAMS, *eval_params())
    params = [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
              *(_parameter(p) for p in declared)]  # fmt: skip
    fn.__signature__ = inspect.Signature(params, return_annotation=dict[str, Any])
    fn.__annotations__ = {"model": str, **{p.name: p.annotation for p in declared}, "return": dict[str, Any]}
    args = "\n".join(f"    {p.name}: {p.help}" for p in declared)
    fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nArgs:\n    model: {MODEL_HELP.replace('benchmark', 'evaluate')}\n{args}\n"
    return fn


eval_run = flow(name="eval-run")(_declare(_eval_run))


@flow(name="judge-calibration")
def judge_calibration(judge: str, labels: str) -> dict[str, Any]:
    """Measure a judge's (``provider/model``) agreement with human pairwise labels (a JSON-lines file on the
    worker) and store it; it is marked trusted only at >= 80 % non-tie agreement on >= 10 non-tie pairs."""
    return calibrate_judge_task(judge, labels)
