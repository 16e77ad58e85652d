"""``boocontrol eval`` — quality evals of a provider/model, stored in Postgres (see docs/evals.md).

boocontrol eval run gpu-box/qwen-7b --suite humaneval --yes-take-over
boocontrol eval run gpu-box/qwen-7b --suite ifeval --limit 5 --yes-take-over
boocontrol eval run gpu-box/qwen-7b --suite humaneval --samples 10 --yes-take-over   # pass@1, @5, @10
boocontrol eval run gpu-box/qwen-7b --suite chat --judge gpu-box/qwen-32b --yes-take-over
boocontrol eval list
boocontrol eval show 3
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cli.bench import _click_option, _engine, _fmt, _require_known_model, _resolve, _settings, _table
from cli.errors import fail
from core.providers import load_registry
from engines.evals.options import (
    RUN_PARAMS,
    CalibrationOptions,
    EvalOptions,
    calibration_params,
    eval_params,
    is_required,
)


@click.group("eval")
def evals() -> None:
    """Quality evals: HumanEval (code, run in the sandbox) and instruction following (checked by code)."""


def eval_options(f: Any) -> Any:
    for p in reversed((*RUN_PARAMS, *eval_params())):
        f = _click_option(p)(f)
    return f


def sandbox_for(suite: str) -> Any:
    """The bubblewrap sandbox for code suites (a machine that cannot run it is a one-line error)."""
    if suite not in ("humaneval", "agentic"):
        return None
    from engines.evals.sandbox import BubblewrapSandbox, SandboxUnavailable

    sb = BubblewrapSandbox()
    try:
        sb.check()
    except SandboxUnavailable as exc:
        fail(f"cannot run generated code here: {exc}")
    return sb


def _judge(engine: Any, judge: str | None, timeout_s: float = 600.0, required: bool = True) -> Any:
    """The judge the user named, else the default one (the best-scoring local model, announced on stderr);
    neither is a one-line error, or None (said on stderr) when the judge is not ``required``."""
    from engines.evals.chat import judge_for
    from engines.evals.default_judge import NoDefaultJudge, default_judge

    if judge:
        return judge_for(*_resolve(judge), timeout_s=timeout_s)
    with engine.connect() as conn:
        try:
            choice = default_judge(conn, load_registry(_settings().fleet_path).providers)
        except NoDefaultJudge as exc:
            if not required:
                click.echo(f"no judge rubric, format checks only: {exc}", err=True)
                return None
            fail(str(exc))
    click.echo(f"judge: {choice.describe()}", err=True)
    return judge_for(*_resolve(choice.model), timeout_s=timeout_s)


@evals.command("run")
@click.argument("model")
@eval_options
@click.option("--slot-wait", type=float, default=30.0, show_default=True, help="Seconds to wait for the host lease.")
@click.option("--idle-wait", type=float, default=60.0, show_default=True,
              help="Seconds to wait for requests in flight on the host to finish before refusing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run_cmd(model: str, confirm_takeover: bool, slot_wait: float, idle_wait: float, as_json: bool,
            **opts: Any) -> None:
    """Ask MODEL (``provider/model``) a suite and store answers and scores; an interrupted run is continued
    by the same command."""
    import httpx

    from connectors.llama_swap_api import LlamaSwapError
    from engines.evals.chat import suite_of
    from engines.evals.runner import EvalLeaseLost, EvalProgress, EvalRefused, run_eval_sync

    try:
        options = EvalOptions.from_mapping(opts)
        suite = suite_of(options.suite, options.questions)
        items = suite.subset(options.limit, options.item_keys())
    except ValueError as exc:
        fail(str(exc))
    provider, model_id = _resolve(model)
    engine = _engine()
    _require_known_model(engine, provider, model_id, model)
    judge = (_judge(engine, options.judge, options.request_timeout_s, required=options.suite != "utility")
             if options.judge or options.suite in ("chat", "utility") else None)  # fmt: skip
    sandbox = sandbox_for(options.suite)
    total = len(items) * options.samples
    click.echo(f"eval {provider.id}/{model_id}: {suite.name} {suite.version}, {len(items)} items x "
               f"{options.samples} sample(s)", err=True)  # fmt: skip
    bar = click.progressbar(length=total, label="gate", file=sys.stderr, show_pos=True)

    def progress(p: EvalProgress) -> None:
        if p.phase in ("answer", "resume"):
            if p.total and bar.length != p.total:  # the needle suite's items are built on the model's window
                bar.length = p.total
            bar.label = suite.name
            bar.update(p.done - bar.pos)
        else:
            bar.label = p.message if p.phase == "gate" and p.message.startswith("waiting") else p.phase
            bar.render_progress()

    try:
        with bar:
            out = run_eval_sync(engine, provider, model_id, suite, options, confirm_takeover=confirm_takeover,
                                sandbox=sandbox, progress=progress, slot_wait_s=slot_wait, idle_wait_s=idle_wait,
                                requested_by="cli", judge=judge)  # fmt: skip
    except EvalRefused as exc:
        fail(str(exc))
    except ValueError as exc:  # e.g. the needle suite on a server that does not say its context window
        fail(str(exc))
    except (LlamaSwapError, httpx.HTTPError) as exc:  # the host refused or did not answer: one line, no traceback
        fail(f"{provider.id}/{model_id}: {exc or type(exc).__name__} (host {provider.base_url}); answers so far "
             "are stored, the same command continues the run")
    except EvalLeaseLost as exc:
        click.echo(f"\n{exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("\ncancelled: answers so far are stored; the same command continues the run", err=True)
        sys.exit(130)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"run_id": out.run_id, "status": out.status, "suite": out.suite,
                               "suite_version": out.suite_version, "metrics": out.metrics, "asked": out.asked,
                               "reused": out.reused, "resumed": out.resumed, "parallel": out.parallel,
                               "model_file": out.model_file, "stale_marked": out.stale_marked}))  # fmt: skip
        sys.exit(0 if out.status == "completed" else 1)
    what = f"continued run #{out.run_id} ({out.reused} answers reused)" if out.resumed else f"run #{out.run_id}"
    click.echo(f"{what}: {out.status}, {out.asked} asked, {out.parallel} in parallel")
    for m, v in out.metrics.items():
        click.echo(f"  {m}: {v:.3f}")
    if out.failed_requests:
        click.echo(f"  {out.failed_requests} request(s) failed: run the same command again to ask only those")
    if out.stale_marked:
        click.echo(f"  {out.stale_marked} earlier score(s) marked stale (`eval list --scores` says why)")
    if out.status != "completed":
        sys.exit(1)


@evals.command("pairwise")
@click.argument("runs", nargs=-1, type=int, required=True)
@click.option("--judge", help="The judge: a registry model, provider/model (default: the best-scoring local model).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def pairwise_cmd(runs: tuple[int, ...], judge: str | None, as_json: bool) -> None:
    """Compare completed chat RUNS (two or more, different models) pairwise with a judge, both orders, and
    print the Bradley–Terry leaderboard with 95 % intervals; stored verdicts are reused."""
    import asyncio

    import httpx

    from engines.evals.pairwise import PairwiseResult, compare_runs
    from warehouse.eval_store import UnknownEvalRun

    engine = _engine()
    try:
        jm = _judge(engine, judge)

        async def go() -> PairwiseResult:
            async with httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(jm.timeout_s, connect=30.0)) as c:
                return await compare_runs(engine, c, jm, list(runs))

        try:
            res = asyncio.run(go())
        except (ValueError, UnknownEvalRun) as exc:
            fail(str(exc))
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"judge": jm.identity, "asked": res.asked, "reused": res.reused,
                               "inconsistent": res.inconsistent, "unparseable": res.unparseable,
                               "ratings": [r.__dict__ for r in res.ratings]}))  # fmt: skip
        return
    click.echo(f"{len(res.comparisons)} comparisons by {jm.identity} ({res.asked} asked, {res.reused} reused; "
               f"{res.inconsistent} moved with the order = ties, {res.unparseable} unparseable)")  # fmt: skip
    click.echo(_table(["model", "rating", "95% interval", "comparisons", "wins"],
                      [[r.model, f"{r.rating:.0f}", f"{r.low:.0f}..{r.high:.0f}", str(r.comparisons),
                        f"{r.wins:g}"] for r in res.ratings]))  # fmt: skip


def calibration_options(f: Any) -> Any:
    """The `CalibrationOptions` declaration: required fields as arguments (JUDGE LABELS), the others as options."""
    for p in reversed(calibration_params()):
        f = click.argument(p.name)(f) if is_required(p) else _click_option(p)(f)
    return f


@evals.command("calibrate-judge")
@calibration_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def calibrate_cmd(as_json: bool, **opts: Any) -> None:
    """Measure JUDGE's (``provider/model``) agreement with the human pairwise labels in LABELS (JSON lines, see
    docs/evals.md); it is marked trusted only at >= 80 % non-tie agreement (exit 1 when not trusted)."""
    from engines.evals.calibration import load_labels, run_calibration
    from engines.evals.chat import judge_for

    options = CalibrationOptions.from_mapping(opts)
    engine = _engine()
    try:
        jm = judge_for(*_resolve(options.judge), timeout_s=options.request_timeout_s)
        try:
            load_labels(options.labels)
        except ValueError as exc:
            fail(str(exc))
        report, rid = run_calibration(engine, jm, options.labels)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"id": rid, **report.as_dict()}))
    else:
        click.echo(f"calibration #{rid} of {report.judge}: {report.pairs} pairs, {report.parsed} judged, "
                   f"{report.non_tie} non-tie ({report.inconsistent} verdicts moved with the order)")  # fmt: skip
        click.echo(report.reason)
    sys.exit(0 if report.trusted else 1)


@evals.command("list")
@click.argument("model", required=False)
@click.option("--scores", "show_scores", is_flag=True, help="List scores (with why a score is stale).")
def list_cmd(model: str | None, show_scores: bool) -> None:
    """Eval runs (newest first), or their scores."""
    from warehouse import eval_store

    provider_id = model_id = None
    if model:
        provider, model_id = _resolve(model)
        provider_id = provider.id
    engine = _engine()
    try:
        with engine.connect() as conn:
            if show_scores:
                rows = eval_store.scores(conn, provider_id, model_id)
                click.echo(_table(
                    ["run", "model", "suite", "metric", "value", "model file", "stale"],
                    [[str(r["run_id"]), f"{r['provider_id']}/{r['model_id']}", r["suite_name"], r["metric"],
                      _fmt(r["value"], 3), str(r["model_file"] or "-"), r["stale_reason"] or ""] for r in rows],
                ))  # fmt: skip
                return
            runs = eval_store.list_runs(conn, provider_id, model_id)
    finally:
        engine.dispose()
    click.echo(_table(
        ["#", "model", "suite", "status", "answers", "n", "started", "note"],
        [[str(r["id"]), f"{r['provider_id']}/{r['model_id']}", r["suite"], r["status"], str(r["answers"]),
          str(r["samples_per_item"]), r["started_at"].strftime("%Y-%m-%d %H:%M"),
          (f"resumed {r['resumes']}x " if r["resumes"] else "") + (r["stop_reason"] or "")] for r in runs],
    ))  # fmt: skip


@evals.command("show")
@click.argument("run_id", type=int)
def show_cmd(run_id: int) -> None:
    """One run: its identity, scores and every item's verdict."""
    from warehouse import eval_store

    engine = _engine()
    try:
        with engine.connect() as conn:
            try:
                run = eval_store.get_run(conn, run_id)
            except eval_store.UnknownEvalRun as exc:
                fail(f"{exc.args[0]} (see `boocontrol eval list`)")
            scores = [s for s in eval_store.scores(conn) if s["run_id"] == run_id]
            items = eval_store.run_items(conn, run_id)
    finally:
        engine.dispose()
    click.echo(f"run #{run_id} {run['provider_id']}/{run['model_id']}: {run['status']}"
               + (f" ({run['stop_reason']})" if run["stop_reason"] else ""))  # fmt: skip
    click.echo(f"  model file {run['model_file'] or '-'}, server {run['server_version'] or '-'}, "
               f"harness {run['harness_version']}, {run['parallel']} in parallel")  # fmt: skip
    click.echo(f"  sampling {json.dumps(run['sampling'], sort_keys=True)}")
    if run["judge"]:
        cal = (run["extra"] or {}).get("judge_calibration") or {}
        trust = ("trusted" if cal.get("trusted") else f"not trusted: {cal.get('reason', 'unknown')}") if cal else ""
        click.echo(f"  judge {run['judge']}" + (f" ({trust})" if trust else ""))
    for s in scores:
        click.echo(f"  {s['metric']}: {s['value']:.3f}" + (f"  (stale: {s['stale_reason']})" if s["stale_reason"] else ""))
    click.echo(_table(
        ["item", "sample", "verdict", "tokens", "ms", "note"],
        [[r["item_key"], str(r["sample_idx"]), "pass" if r["passed"] else ("fail" if r["passed"] is False else "-"),
          _fmt(r["completion_tokens"]), _fmt(r["latency_ms"], 0),
          r["error"] or (r["killed_reason"] or "") or _failed_checks(r["detail"]) or _judged(r["detail"])]
         for r in items],
    ))  # fmt: skip


def _judged(detail: Any) -> str:
    """A judged chat answer: the judge's rating per turn (``?`` = did not parse)."""
    turns = (detail or {}).get("turns") if (detail or {}).get("judge") else None
    if not turns:
        return ""
    return "judge " + " | ".join(f"t{t['turn']}: {t['score'] if t['parsed'] else '?'}" for t in turns)


def _failed_checks(detail: Any) -> str:
    checks = (detail or {}).get("checks") or []
    return ", ".join(f"{c['type']}: {c['detail']}" for c in checks if not c["passed"])
