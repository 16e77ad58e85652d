"""The eval run engine (plain asyncio; the CLI and the Prefect task are thin shells around `run_eval`).

One run = one suite asked of one provider/model, ``samples`` answers per item, stored as they arrive:

1. the takeover confirmation and the host lease (`warehouse.lease.LeaseKeeper`, scope ``host``), then the
   bench's idle gate under the lease (`engines.bench.gate.check_takeover` after
   `engines.bench.runner.wait_until_idle`): an eval keeps the host busy like a benchmark does;
2. the host is warmed and described (llama-server ``/props`` through llama-swap's ``/upstream`` or
   directly): the model file (``model_path``), the server version and the parallel slots (``total_slots``,
   else 1) — the run asks that many items at once;
3. the suite's version (content hash) and items are registered; the newest unfinished run with the same
   settings (provider/model, suite version, sampling, samples, items, harness) is continued — only the
   (item, sample) pairs without a stored answer are asked, answers stored but not yet scored are scored —
   unless ``fresh``; earlier scores computed under another model file, server, harness, suite version,
   sampling or judge are marked stale (`stale_reasons`);
4. each answer is stored at once, then scored: HumanEval code runs in the sandbox
   (`engines.evals.sandbox`), instruction items through their checks (`engines.evals.ifeval`);
5. when every pair has an answer, the scores (pass@k / prompt- and instruction-level accuracy) are written;
6. the host is left as found (the bench's cleanup: the run's leftover requests cancelled, a model it loaded
   unloaded, evicted ones re-loaded, never while someone else's request is in flight).

Sampling is deterministic: temperature 0 and a fixed seed by default (sample i of an item uses seed + i), and
stored with the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import Engine

from connectors.llama_swap_api import auth_headers
from core.providers import Provider
from engines.bench.gate import BENCH_HEADER, TakeoverRefused, check_takeover, require_takeover_confirmation
from engines.bench.runner import BenchSpec, RunOutcome, leave_host_as_found, wait_until_idle
from engines.bench.runner import Progress as BenchProgress
from engines.bench.service import make_host
from engines.bench.signals import cancel_on_sigterm
from engines.evals import agentic, chat, ifeval, needle, scoring, utility
from engines.evals.chat import JudgeModel
from engines.evals.completions import Answer, ModelClient, ask
from engines.evals.options import EvalOptions
from engines.evals.sandbox import SandboxBackend, SandboxJob, SandboxLimits, SandboxOutcome, SandboxPool
from engines.evals.suites import SANDBOXED_KINDS, Item, Suite, needle_suite
from warehouse import eval_store, lease

log = logging.getLogger(__name__)

JUDGED_KINDS = ("chat", "utility")
"""Suites asked of a judge: chat (graded 1-10 per turn) and utility (the content rubric beside the format checks)."""

HARNESS_VERSION = "evals-1"
"""The scoring code's version: bump when prompts are built or answers scored differently (scores of the old
version become stale)."""

OUTPUT_CAP = 16 * 1024  # bytes of the sandbox's stdout and of its stderr kept per answer


class EvalRefused(RuntimeError):
    """The run did not start: no confirmation, the host lease is held elsewhere, or the host is busy."""


class EvalLeaseLost(RuntimeError):
    """The host lease was broken or taken over while the run ran; it stopped (resumable)."""


@dataclass(frozen=True)
class EvalProgress:
    phase: str  # gate | warm | resume | answer | score | done | cleanup
    done: int = 0
    total: int = 0
    message: str = ""


@dataclass
class EvalOutcome:
    run_id: int
    run_uid: str
    suite: str
    suite_version: str
    status: str
    resumed: bool
    asked: int  # requests sent by this invocation
    reused: int  # answers found stored (a resumed run)
    total: int  # (item, sample) pairs of the run
    parallel: int
    model_file: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    failed_requests: int = 0
    stale_marked: int = 0
    cleanup: list[str] = field(default_factory=list)
    engine_cpu_s: float = 0.0  # this process's CPU time for the whole run (the sandbox's children excluded)
    wall_s: float = 0.0


# ------------------------------------------------------------------------------------------- identity


def config_key(
    provider_id: str,
    model_id: str,
    suite: Suite,
    sampling: Mapping[str, Any],
    item_keys: Sequence[str],
    judge: str | None = None,
) -> str:
    """What must be equal for a stopped run to be continued by a new invocation."""
    blob = json.dumps(
        {"p": provider_id, "m": model_id, "s": suite.name, "v": suite.version, "sampling": dict(sampling),
         "items": list(item_keys), "judge": judge, "h": HARNESS_VERSION},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ScoreIdentity:
    """What a score depends on besides the answers."""

    model_file: str | None
    server_version: str | None
    harness_version: str
    suite_name: str
    suite_version: str
    sampling: Mapping[str, Any]
    judge: str | None = None


def stale_reasons(
    score: Mapping[str, Any], now: ScoreIdentity, metrics: Sequence[str] | None = None
) -> list[str]:
    """Why a stored score (an ``eval_scores`` row) no longer describes the model as it is ``now``.

    The model file and the server version count only when ``now`` knows them (a provider without ``/props``
    says nothing about its file). Suite version, sampling and judge are compared for the same suite; sampling
    and judge only for the metrics ``now`` produces (a pass@10 run does not make a pass@1 score stale)."""
    why = []
    if now.model_file is not None and score.get("model_file") != now.model_file:
        why.append(f"model file changed: {score.get('model_file')} -> {now.model_file}")
    if now.server_version is not None and score.get("server_version") != now.server_version:
        why.append(f"server version changed: {score.get('server_version')} -> {now.server_version}")
    if score.get("harness_version") != now.harness_version:
        why.append(f"harness changed: {score.get('harness_version')} -> {now.harness_version}")
    if score.get("suite_name") == now.suite_name:
        if score.get("suite_version") != now.suite_version:
            why.append(f"suite {now.suite_name} changed: {score.get('suite_version')} -> {now.suite_version}")
        if metrics is not None and score.get("metric") in metrics:
            if dict(score.get("sampling") or {}) != dict(now.sampling):
                why.append("sampling changed")
            if score.get("judge") != now.judge:
                why.append(f"judge changed: {score.get('judge')} -> {now.judge}")
    return why


def mark_stale(
    engine: Engine,
    provider_id: str,
    model_id: str,
    now: ScoreIdentity,
    metrics: Sequence[str] | None = None,
    exclude_run: int | None = None,
) -> int:
    """Mark the provider/model's fresh scores that `stale_reasons` finds stale; returns how many."""
    with engine.begin() as conn:
        marks = []
        for s in eval_store.fresh_scores(conn, provider_id, model_id):
            if s["run_id"] == exclude_run:
                continue
            why = stale_reasons(s, now, metrics)
            if why:
                marks.append((int(s["id"]), "; ".join(why)))
        return eval_store.set_stale(conn, marks)


# ------------------------------------------------------------------------------------------ requests


# ------------------------------------------------------------------------------------------- scoring


def _sandbox_row(o: SandboxOutcome) -> dict[str, Any]:
    return {
        "backend": o.backend, "exit_code": o.exit_code, "signal": o.signal, "timed_out": o.timed_out,
        "killed_reason": o.killed_reason, "stdout": o.stdout[:OUTPUT_CAP], "stderr": o.stderr[:OUTPUT_CAP],
        "stdout_truncated": o.stdout_truncated or len(o.stdout) > OUTPUT_CAP,
        "stderr_truncated": o.stderr_truncated or len(o.stderr) > OUTPUT_CAP, "duration_s": o.duration_s,
    }  # fmt: skip


def code_job(item: Item, text: str, wall_s: float) -> SandboxJob:
    program = scoring.humaneval_program(item.payload, text)
    limits = SandboxLimits(wall_seconds=wall_s, cpu_seconds=max(1, int(wall_s)), output_bytes=OUTPUT_CAP)
    return SandboxJob(command=("python3", "main.py"), files={"main.py": program}, limits=limits)


async def score_answer(
    suite: Suite, item: Item, text: str | None, pool: SandboxPool | None, wall_s: float
) -> tuple[bool, float, dict[str, Any], dict[str, Any] | None]:
    """(passed, score, detail, sandbox row) of one answer."""
    if text is None:
        return False, 0.0, {"error": "no answer"}, None
    if suite.kind == "code":
        assert pool is not None
        outcome = await asyncio.wrap_future(pool.submit(code_job(item, text, wall_s)))
        ok = outcome.passed
        return (
            ok,
            float(ok),
            {"exit_code": outcome.exit_code, "killed_reason": outcome.killed_reason},
            _sandbox_row(outcome),
        )
    if suite.kind == "needle":
        hit, asked = needle.score_item(text, item.payload)
        p = item.payload
        return hit == asked, hit / asked, {"found": hit, "asked": asked, "length_fraction": p["length_fraction"],
                                           "depth": p["depth"], "target_tokens": p["target_tokens"],
                                           "prompt_tokens": p["prompt_tokens"]}, None  # fmt: skip
    if suite.kind == "utility":
        checks = utility.check(text, utility_item(item))
    else:
        checks = ifeval.run_checks(text, item.payload["checks"])
    ok = all(c.passed for c in checks)
    frac = sum(c.passed for c in checks) / len(checks) if checks else 0.0
    detail: dict[str, Any] = {"checks": [c.as_dict() for c in checks]}
    if suite.kind == "utility":
        detail["task"] = item.payload["task"]
    return ok, frac, detail, None


def utility_item(item: Item) -> utility.UtilityItem:
    p = item.payload
    return utility.UtilityItem(item.key, str(p["task"]), str(p["lang"]), str(p["text"]), int(p["max_words"]),
                               int(p["min_words"]))  # fmt: skip


async def _needle_suite(
    http: httpx.AsyncClient,
    provider: Provider,
    model_id: str,
    props: Mapping[str, Any],
    sampling: Mapping[str, Any],
    environ: Mapping[str, str] | None,
    tag: str,
    parallel: int,
) -> Suite:
    """The needle grid on the model's real window (one slot's ``n_ctx`` from ``/props``), prompts sized with
    the model's own ``/tokenize`` (through llama-swap's ``/upstream/<model>`` on a llama-swap provider)."""
    n_ctx = needle.context_window(props)
    if n_ctx is None:
        raise ValueError(f"the needle suite needs {model_id}'s context window, and its server's /props does not "
                         "say n_ctx (a llama-server is needed)")  # fmt: skip
    root = provider.base_url.rstrip("/")
    base = f"{root}/upstream/{quote(model_id, safe='/')}" if provider.spec.host_operations else root
    count = needle.server_counter(http, base, {**auth_headers(provider, environ), BENCH_HEADER: tag})
    try:
        entries = await needle.build_items(n_ctx, int(sampling["max_tokens"]), count, int(sampling["seed"]),
                                           parallel)  # fmt: skip
    except httpx.HTTPError as exc:
        raise ValueError(f"the needle suite needs {base}/tokenize to size its prompts: {exc}") from None
    return needle_suite(entries)


def metrics_of(
    suite: Suite, items: Sequence[Item], answers: Sequence[Mapping[str, Any]], n: int
) -> dict[str, float]:
    """The suite's metrics from the stored, scored answers of a complete run."""
    if suite.kind == "agentic":  # every answer (item, sample) is one multi-turn attempt
        cats = {i.key: i.category for i in items}
        turns = max((int(i.payload["max_turns"]) for i in items), default=agentic.DEFAULT_MAX_TURNS)
        return agentic.solved_metrics(
            [(cats.get(str((a.get("detail") or {}).get("task"))), (a.get("detail") or {}).get("solved_at"))
             for a in answers], turns)  # fmt: skip
    if suite.kind == "needle":
        return needle.metrics_from_details([a.get("detail") or {} for a in answers])
    if suite.kind == "utility":
        details = [a.get("detail") or {} for a in answers]
        return {**utility.utility_metrics({
            f"{a['item_id']}:{a['sample_idx']}": (str(d.get("task")),
                [ifeval.CheckResult(c["type"], bool(c["passed"]), c["detail"]) for c in (d.get("checks") or [])])
            for a, d in zip(answers, details, strict=True)}),
            **utility.rubric_metrics([(str(d.get("task")), d["rubric"]) for d in details if d.get("rubric")])}  # fmt: skip
    by_id: dict[int, list[Mapping[str, Any]]] = {}
    for a in answers:
        by_id.setdefault(int(a["item_id"]), []).append(a)
    if suite.kind == "code":
        return scoring.code_metrics(
            {str(k): [bool(a["passed"]) for a in sorted(v, key=lambda a: int(a["sample_idx"]))]
             for k, v in by_id.items()}, n)  # fmt: skip
    results = {  # every answer (item, sample) is one instruction-following attempt
        f"{a['item_id']}:{a['sample_idx']}": [ifeval.CheckResult(c["type"], bool(c["passed"]), c["detail"])
                                             for c in ((a.get("detail") or {}).get("checks") or [])]
        for a in answers
    }  # fmt: skip
    return scoring.instruction_metrics(results)


# --------------------------------------------------------------------------------------------- run


def _adapt(progress: Callable[[EvalProgress], None]) -> Callable[[BenchProgress], None]:
    return lambda p: progress(EvalProgress("gate", message=p.message))


async def run_eval(
    engine: Engine,
    provider: Provider,
    model_id: str,
    suite: Suite,
    options: EvalOptions,
    *,
    confirm_takeover: bool,
    sandbox: SandboxBackend | None = None,
    client: httpx.AsyncClient | None = None,
    progress: Callable[[EvalProgress], None] | None = None,
    slot_wait_s: float | None = 30.0,
    idle_wait_s: float = 0.0,
    environ: Mapping[str, str] | None = None,
    requested_by: str | None = None,
    lease_ttl_s: float = lease.DEFAULT_TTL_S,
    judge: JudgeModel | None = None,
) -> EvalOutcome:
    """Run (or continue) an eval; see the module docstring. Raises `EvalRefused` before asking anything."""
    emit = progress or (lambda _p: None)
    items = suite.subset(options.limit, options.item_keys())
    if suite.kind in SANDBOXED_KINDS and sandbox is None:
        raise ValueError(f"the {suite.name} suite needs a sandbox backend")
    if suite.kind == "chat" and judge is None:
        raise ValueError("the chat suite is graded by a judge model: give --judge provider/model")
    try:
        require_takeover_confirmation(confirm_takeover)
    except TakeoverRefused:
        raise EvalRefused(
            "refusing to run the eval without an explicit takeover confirmation: it keeps the host's slots busy "
            "and every other client on it sees the slowdown (pass --yes-take-over / confirm_takeover=True)"
        ) from None
    run_uid = uuid.uuid4().hex
    keeper = lease.LeaseKeeper(
        engine.url.render_as_string(hide_password=False), provider.id, lease.SCOPE_HOST,
        f"eval run {run_uid[:12]} ({model_id}, {suite.name})", holder=lease.holder_id("eval"),
        ttl_s=lease_ttl_s, wait_s=slot_wait_s,
    )  # fmt: skip
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(options.request_timeout_s, connect=30.0),
                                       trust_env=False)  # fmt: skip
    try:
        try:
            await keeper.__aenter__()
        except lease.LeaseHeld as exc:
            raise EvalRefused(f"refusing to run the eval: {exc}") from None
        try:
            # a judge on another host keeps that host busy too: hold its lease as well (held elsewhere: refused)
            other = judge is not None and suite.kind in JUDGED_KINDS and judge.provider_id != provider.id
            judge_host = (chat.judge_lease(engine, judge, f"judge of eval run {run_uid[:12]} ({model_id})", slot_wait_s)
                          if other and judge is not None else contextlib.nullcontext())  # fmt: skip
            try:
                await judge_host.__aenter__()
            except ValueError as exc:
                raise EvalRefused(str(exc)) from None
            try:
                return await _with_lease(
                    engine,
                    provider,
                    model_id,
                    suite,
                    items,
                    options,
                    keeper,
                    http,
                    emit,
                    sandbox,
                    run_uid,
                    idle_wait_s,
                    environ,
                    requested_by,
                    confirm_takeover,
                    judge if suite.kind in JUDGED_KINDS else None,
                )
            finally:
                await judge_host.__aexit__(None, None, None)
        finally:
            await keeper.__aexit__(None, None, None)
    finally:
        if own:
            await http.aclose()


async def _with_lease(
    engine: Engine,
    provider: Provider,
    model_id: str,
    suite: Suite,
    items: Sequence[Item],
    options: EvalOptions,
    keeper: lease.LeaseKeeper,
    http: httpx.AsyncClient,
    emit: Callable[[EvalProgress], None],
    sandbox: SandboxBackend | None,
    run_uid: str,
    idle_wait_s: float,
    environ: Mapping[str, str] | None,
    requested_by: str | None,
    confirm_takeover: bool,
    judge: JudgeModel | None = None,
) -> EvalOutcome:
    tag = f"ev-{run_uid[:12]}"
    host = make_host(provider, http, environ)
    host.identify(tag)
    emit(EvalProgress("gate", message="checking that the host is idle"))
    snapshot = await wait_until_idle(host, idle_wait_s, _adapt(emit))
    try:
        check_takeover(confirm_takeover, snapshot)
    except TakeoverRefused as exc:
        raise EvalRefused(str(exc).replace("refusing to benchmark", "refusing to run the eval")) from None
    loaded = await host.loaded_models()
    if loaded is None and snapshot.loaded_models is not None:
        loaded = set(snapshot.loaded_models)
    before = tuple(sorted(loaded)) if loaded is not None else None
    cleanup = RunOutcome(run_uid=run_uid)
    me = asyncio.current_task()
    assert me is not None
    lost = False

    async def watch_lease() -> None:
        nonlocal lost
        await keeper.lost.wait()
        lost = True
        me.cancel("the host lease was lost")

    watcher = asyncio.get_running_loop().create_task(watch_lease())
    result: EvalOutcome | None = None
    try:
        async with host.watch_foreign(tag) as watch:
            try:
                emit(EvalProgress("warm", message=f"loading {model_id}"))
                await host.warm(model_id)
                info = await host.describe(model_id, tag)
                result = await _ask_all(engine, provider, model_id, suite, items, options, http, emit, sandbox,
                                        run_uid, tag, environ, requested_by, info.props, info.version, host.kind,
                                        before, judge)  # fmt: skip
            finally:
                emit(EvalProgress("cleanup", message="restoring the host"))
                spec = BenchSpec(restore_host=options.restore_host)
                await asyncio.shield(leave_host_as_found(host, model_id, tag, before, spec, cleanup, watch))
                for note in cleanup.cleanup:
                    log.info("eval %s cleanup: %s", run_uid[:12], note)
        result.cleanup = list(cleanup.cleanup)
        with engine.begin() as conn:
            eval_store.merge_extra(conn, result.run_id, {"cleanup": result.cleanup})
        return result
    except asyncio.CancelledError:
        if lost and me.uncancel() == 0:
            raise EvalLeaseLost("eval stopped: the host lease was lost (run it again to continue)") from None
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _ask_all(
    engine: Engine,
    provider: Provider,
    model_id: str,
    suite: Suite,
    items: Sequence[Item],
    options: EvalOptions,
    http: httpx.AsyncClient,
    emit: Callable[[EvalProgress], None],
    sandbox: SandboxBackend | None,
    run_uid: str,
    tag: str,
    environ: Mapping[str, str] | None,
    requested_by: str | None,
    props: Mapping[str, Any] | None,
    version: Mapping[str, Any],
    host_kind: str,
    before: tuple[str, ...] | None,
    judge: JudgeModel | None = None,
) -> EvalOutcome:
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    props = dict(props or {})
    model_file = str(props["model_path"]) if props.get("model_path") else None
    # the inference engine's build (llama-server build_info) decides the answers; else the server's own version
    server_version = str(props["build_info"]) if props.get("build_info") else (
        str(version.get("version")) if version.get("version") else None)  # fmt: skip
    slots = props.get("total_slots")
    parallel = options.parallel or (int(slots) if isinstance(slots, int) and slots > 0 else 1)
    sampling = options.sampling()
    n = options.samples
    if suite.kind == "needle":  # its items are generated on this model's window
        suite = await _needle_suite(http, provider, model_id, props, sampling, environ, tag, parallel)
        items = suite.subset(options.limit, options.item_keys())
    keys = [i.key for i in items]
    judge_id = None if judge is None else utility.rubric_identity(judge) if suite.kind == "utility" else judge.identity
    ckey = config_key(provider.id, model_id, suite, sampling, keys, judge_id)
    now = datetime.now(UTC)

    with engine.begin() as conn:
        suite_id, item_ids = eval_store.ensure_suite(
            conn, suite.name, suite.version, suite.kind,
            [{"key": i.key, "idx": i.idx, "category": i.category, "payload": {"prompt": i.prompt, **i.payload}}
             for i in suite.items],
            {"source": suite.source},
        )  # fmt: skip
        resumable = None if options.fresh else eval_store.find_resumable(conn, ckey)
        identity_fields = {"model_file": model_file, "server_version": server_version, "server_props": props or None,
                           "parallel": parallel, "host_kind": host_kind}  # fmt: skip
        if resumable is not None:
            run_id = int(resumable["id"])
            run_uid = str(resumable["run_uid"])
            eval_store.mark_resumed(conn, run_id, now, identity_fields)
        else:
            run_id = eval_store.insert_run(conn, {
                "run_uid": run_uid, "suite_id": suite_id, "provider_id": provider.id, "model_id": model_id,
                "status": "running", "config_key": ckey, "harness_version": HARNESS_VERSION,
                "sampling": sampling, "samples_per_item": n, "judge": judge_id, "item_keys": keys,
                "params": options.as_mapping(), "requested_by": requested_by, "started_at": now,
                "extra": {"loaded_before": list(before) if before is not None else None}, **identity_fields,
            })  # fmt: skip
        stored = eval_store.stored_answers(conn, run_id)
        if judge is not None:  # what is known of the judge's agreement with people (`eval calibrate-judge`)
            cal = eval_store.latest_calibration(conn, judge.provider_id, judge.model_id)
            eval_store.merge_extra(conn, run_id, {"judge_calibration": chat.calibration_note(cal)})
    identity = ScoreIdentity(model_file, server_version, HARNESS_VERSION, suite.name, suite.version, sampling,
                             judge_id)  # fmt: skip
    stale = await asyncio.to_thread(mark_stale, engine, provider.id, model_id, identity, None, run_id)
    outcome = EvalOutcome(run_id, run_uid, suite.name, suite.version, "running", resumable is not None, 0, 0,
                          len(items) * n, parallel, model_file, stale_marked=stale)  # fmt: skip
    by_id = {item_ids[i.key]: i for i in items}
    have = {(int(a["item_id"]), int(a["sample_idx"])) for a in stored if a["error"] is None}
    unscored = [a for a in stored if a["error"] is None and a["scored_at"] is None]
    retry = [a for a in stored if a["error"] is not None]
    if suite.kind == "agentic":  # a conversation stopped between its answer and its verdict is asked again
        retry += unscored
        have -= {(int(a["item_id"]), int(a["sample_idx"])) for a in unscored}
        unscored = []
    outcome.reused = len(have)
    if resumable is not None:
        emit(EvalProgress("resume", len(have), outcome.total,
                          f"continuing run #{run_id}: {len(have)} of {outcome.total} answers stored"))  # fmt: skip
    todo = [(i, s) for i in items for s in range(n) if (item_ids[i.key], s) not in have]
    url = provider.spec.openai_base_url(provider.base_url) + "/chat/completions"
    headers = {**auth_headers(provider, environ), BENCH_HEADER: tag}
    pool = (
        SandboxPool(sandbox, workers=parallel)
        if sandbox is not None and suite.kind in SANDBOXED_KINDS
        else None
    )
    sem = asyncio.Semaphore(parallel)
    done = len(have)
    status, stop_reason, error = "running", None, None

    if judge is not None:  # the judge's requests carry the run's tag too (it may share the host)
        judge = chat.with_run(judge, {**judge.headers, BENCH_HEADER: tag}, model_file, provider.id, model_id)

    async def score_and_store(answer_id: int, item: Item, text: str | None) -> None:
        if judge is not None and suite.kind == "utility":  # format checks by code, content by the judge's rubric
            ok, sc, detail, _ = await score_answer(suite, item, text, pool, options.sandbox_wall_s)
            rows: list[dict[str, Any]] = []
            if text and text.strip():
                rubric = await utility.judge_answer(http, judge, utility_item(item), text.strip())
                if rubric.failed:  # left unscored: the same command judges it again
                    outcome.failed_requests += 1
                    return
                detail["rubric"] = rubric.as_detail(judge)
                rows = [rubric.as_row(answer_id, judge)]
            await asyncio.to_thread(_store_rubric, engine, answer_id, ok, sc, detail, rows)
            return
        if judge is not None:
            detail, js, sc_or_none = await chat.grade(http, judge, item, text, provider.id, model_id, answer_id)
            if chat.judge_failed(js):  # left unscored: the same command judges it again
                outcome.failed_requests += 1
                return
            await asyncio.to_thread(_store_judged, engine, answer_id, sc_or_none, detail, js)
            return
        ok, sc, detail, box = await score_answer(suite, item, text, pool, options.sandbox_wall_s)
        await asyncio.to_thread(_store_verdict, engine, answer_id, ok, sc, detail, box)

    async def one(item: Item, sample: int) -> None:
        nonlocal done
        if suite.kind == "agentic":
            await one_agentic(item, sample)
            return
        async with sem:
            if suite.kind == "chat":
                ans = await chat.ask_conversation(http, url, headers, model_id, item.payload["turns"], sampling,
                                                  int(sampling["seed"]) + sample, options.request_timeout_s)  # fmt: skip
            else:
                ans = await ask(http, url, headers, model_id, item.prompt, sampling, int(sampling["seed"]) + sample,
                                options.request_timeout_s)  # fmt: skip
            outcome.asked += 1
        row = {"run_id": run_id, "item_id": item_ids[item.key], "sample_idx": sample,
               "seed": int(sampling["seed"]) + sample, "text": ans.text, "finish_reason": ans.finish_reason,
               "prompt_tokens": ans.prompt_tokens, "completion_tokens": ans.completion_tokens,
               "latency_ms": ans.latency_ms, "timings": ans.timings, "error": ans.error,
               "answered_at": datetime.now(UTC)}  # fmt: skip
        answer_id = await asyncio.to_thread(_store_answer, engine, row)
        if ans.error is not None:
            outcome.failed_requests += 1
        elif answer_id is not None:
            await score_and_store(answer_id, item, ans.text)
        done += 1
        emit(EvalProgress("answer", done, outcome.total, item.key))

    async def one_agentic(item: Item, sample: int) -> None:
        """The multi-turn attempt: one stored answer (the last turn's text, tokens and latency summed over the
        turns), its verdict (solved at which turn, every turn's text and test output) and the last sandbox run."""
        nonlocal done
        assert pool is not None
        seed = int(sampling["seed"]) + sample
        answers: list[Answer] = []

        model = ModelClient(http, url, model_id, sampling, seed, options.request_timeout_s, headers)

        async def chat_turn(messages: list[dict[str, str]]) -> Answer:
            a = await model(messages)
            answers.append(a)
            outcome.asked += 1
            return a

        task = agentic.Task(item.key, item.category or "", int(item.payload["difficulty"]), "",
                            str(item.payload["tests"]), str(item.payload["starter"]))  # fmt: skip
        async with sem:
            res = await agentic.solve(task, chat_turn, agentic.pool_runner(pool), int(item.payload["max_turns"]),
                                      options.sandbox_wall_s, first_message=item.prompt)  # fmt: skip
        last = answers[-1]
        error = next((a.error for a in answers if a.error is not None), None)
        row = {"run_id": run_id, "item_id": item_ids[item.key], "sample_idx": sample, "seed": seed,
               "text": res.turns[-1].text, "finish_reason": last.finish_reason,
               "prompt_tokens": sum(a.prompt_tokens or 0 for a in answers),
               "completion_tokens": sum(a.completion_tokens or 0 for a in answers),
               "latency_ms": sum(a.latency_ms for a in answers), "timings": last.timings, "error": error,
               "answered_at": datetime.now(UTC)}  # fmt: skip
        answer_id = await asyncio.to_thread(_store_answer, engine, row)
        if error is not None:
            outcome.failed_requests += 1
        elif answer_id is not None:
            box = res.turns[-1].outcome
            detail = {"task": item.key, "solved_at": res.solved_at, "max_turns": int(item.payload["max_turns"]),
                      "turns": [{"text": t.text, **t.as_dict()} for t in res.turns]}  # fmt: skip
            ok = res.solved_at is not None
            await asyncio.to_thread(_store_verdict, engine, answer_id, ok, float(ok), detail,
                                    _sandbox_row(box) if box is not None else None)  # fmt: skip
        done += 1
        emit(EvalProgress("answer", done, outcome.total, item.key))

    try:
        if retry:
            await asyncio.to_thread(_drop_answers, engine, [int(a["id"]) for a in retry])
        for a in unscored:
            await score_and_store(int(a["id"]), by_id[int(a["item_id"])], a["text"])
        tasks = [asyncio.create_task(one(i, s)) for i, s in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if outcome.failed_requests:
            status = "failed"
            stop_reason = (f"{outcome.failed_requests} request(s) failed; run the same command again to ask "
                           "only those")  # fmt: skip
        else:
            with engine.connect() as conn:
                answers = [a for a in eval_store.stored_answers(conn, run_id) if int(a["item_id"]) in by_id]
                judged = eval_store.run_judgments(conn, run_id) if suite.kind == "chat" else []
            outcome.metrics = (chat.chat_metrics({k: i.category for k, i in by_id.items()}, judged)
                               if suite.kind == "chat" else metrics_of(suite, items, answers, n))  # fmt: skip
            status = "completed"
    except asyncio.CancelledError as exc:
        status, stop_reason = "cancelled", str(exc.args[0]) if exc.args else "cancelled"
        raise
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if pool is not None:
            pool.close()
        outcome.status = status
        outcome.wall_s = time.perf_counter() - t_wall
        outcome.engine_cpu_s = time.process_time() - t_cpu
        _finish(engine, run_id, outcome, suite, identity, provider.id, model_id, stop_reason, error)
    emit(EvalProgress("done", done, outcome.total, status))
    return outcome


def _store_answer(engine: Engine, row: Mapping[str, Any]) -> int | None:
    with engine.begin() as conn:
        return eval_store.insert_answer(conn, row)


def _store_verdict(
    engine: Engine,
    answer_id: int,
    ok: bool,
    sc: float,
    detail: Mapping[str, Any],
    box: Mapping[str, Any] | None,
) -> None:
    with engine.begin() as conn:
        eval_store.record_verdict(conn, answer_id, ok, sc, detail, box)


def _store_rubric(
    engine: Engine, answer_id: int, ok: bool, sc: float, detail: Mapping[str, Any],
    judgments: Sequence[Mapping[str, Any]],
) -> None:  # fmt: skip
    """A utility answer's format verdict and its rubric judgment, together."""
    with engine.begin() as conn:
        eval_store.record_verdict(conn, answer_id, ok, sc, detail)
        eval_store.insert_judgments(conn, judgments)


def _store_judged(
    engine: Engine, answer_id: int, score: float | None, detail: Mapping[str, Any],
    judgments: Sequence[Mapping[str, Any]],
) -> None:  # fmt: skip
    with engine.begin() as conn:
        eval_store.record_judged(conn, answer_id, score, detail, judgments)


def _drop_answers(engine: Engine, ids: Sequence[int]) -> None:
    with engine.begin() as conn:
        eval_store.drop_answers(conn, ids)


def _finish(
    engine: Engine,
    run_id: int,
    o: EvalOutcome,
    suite: Suite,
    identity: ScoreIdentity,
    provider_id: str,
    model_id: str,
    stop_reason: str | None,
    error: str | None,
) -> None:
    with engine.begin() as conn:
        eval_store.finish_run(
            conn, run_id,
            {"status": o.status, "finished_at": datetime.now(UTC), "stop_reason": stop_reason, "error": error},
            {"asked": o.asked, "reused": o.reused, "failed_requests": o.failed_requests,
             "engine_cpu_s": o.engine_cpu_s, "wall_s": o.wall_s, "stale_marked": o.stale_marked},
        )  # fmt: skip
        if o.status == "completed" and o.metrics:
            eval_store.write_scores(conn, run_id, [
                {"metric": m, "value": v, "n_items": o.total // max(1, int(identity.sampling["samples"])),
                 "suite_name": suite.name, "suite_version": suite.version, "provider_id": provider_id,
                 "model_id": model_id, "model_file": identity.model_file, "server_version": identity.server_version,
                 "harness_version": identity.harness_version, "sampling": dict(identity.sampling),
                 "judge": identity.judge}
                for m, v in o.metrics.items()
            ])  # fmt: skip
    if o.status == "completed" and o.metrics:
        o.stale_marked += mark_stale(engine, provider_id, model_id, identity, list(o.metrics), run_id)


def run_eval_sync(
    engine: Engine, provider: Provider, model_id: str, suite: Suite, options: EvalOptions, **kwargs: Any
) -> EvalOutcome:
    """`run_eval` to completion in a fresh event loop; Ctrl-C and SIGTERM cancel it cleanly (the run is stored
    as ``cancelled`` and the next identical command continues it)."""
    with asyncio.Runner() as runner:
        return runner.run(
            cancel_on_sigterm(lambda: run_eval(engine, provider, model_id, suite, options, **kwargs))
        )
