"""Composition used by both shells (CLI and the Prefect task): lease → gate → sweep → Postgres.

``run_bench`` is what ``boocontrol bench run`` and ``tasks.bench`` call. It

1. refuses (and records the refusal) unless ``confirm_takeover`` is true;
2. takes the provider's host lease (`warehouse.lease`, scope ``host``, heartbeated) for the whole run, so
   no action, eval or other benchmark can start on that host meanwhile (waits at most ``slot_wait_s``; a
   lease held elsewhere refuses the run, naming who holds it for what until when). A lease lost during the
   run (broken by an operator, or expired and taken over) cancels the run (`HostLeaseLost`);
   an unattended (scheduled) run (``unattended_idle_s`` set) does not wait for the lease and also needs the
   host idle for that long (`engines.bench.unattended`); otherwise it is recorded as ``skipped`` with the
   reason and `BenchSkipped` is raised;
3. runs `engines.bench.runner.run_sweep`, which checks the host's in-flight list under the lease,
   warms, runs the points and restores the host;
4. writes the run, each point as it finishes and every measured request through `StoreSink`.

Settings are not read here: the shells pass an Engine, a Provider and plain values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine

from connectors.llama_swap_api import LlamaSwapAPI, auth_headers
from core.kinds import kind_spec
from core.providers import Provider
from engines.bench.capacity import (
    Capacity,
    CapacityPoint,
    SearchBounds,
    SloTargets,
    capacity_point,
    search_sync,
)
from engines.bench.eventloop import new_event_loop
from engines.bench.gate import TakeoverRefused, require_takeover_confirmation
from engines.bench.host import BenchHost, LlamaSwapHost, OpenAIHost
from engines.bench.metrics import PointSummary
from engines.bench.options import BenchOptions
from engines.bench.runner import BenchSpec, PointResult, Progress, RunHeader, RunOutcome, run_sweep
from engines.bench.signals import cancel_on_sigterm
from engines.bench.transport import LeanTransport
from engines.bench.unattended import BenchSkipped, idle_refusal
from engines.bench.workload import ReplayWorkload
from warehouse import bench_store, lease

log = logging.getLogger(__name__)


def make_host(
    provider: Provider, client: httpx.AsyncClient, environ: Mapping[str, str] | None = None
) -> BenchHost:
    if provider.spec.host_operations:  # llama-swap's own API: in-flight list, unload, warm through /upstream
        return LlamaSwapHost(LlamaSwapAPI(provider, client, environ))
    return OpenAIHost(provider.base_url, client, auth_headers(provider, environ))


def replay_workload(
    engine: Engine,
    provider_id: str,
    model_id: str,
    since_days: float | None = 30.0,
    max_prompt: int | None = None,
    max_output: int | None = None,
    limit: int = 5000,
) -> ReplayWorkload:
    """A production-shaped workload from the provider/model's stored activity (newest ``limit`` rows)."""
    since = datetime.now(UTC) - timedelta(days=since_days) if since_days else None
    with engine.connect() as conn:
        pairs = bench_store.activity_length_pairs(conn, provider_id, model_id, since, limit)
    if not pairs:
        raise ValueError(
            f"no stored activity with token counts for {provider_id}/{model_id}"
            + (f" in the last {since_days:g} days" if since_days else "")
            + ": a production-shaped workload needs some history (use a synthetic workload instead)"
        )
    return ReplayWorkload(
        pairs=tuple(pairs),
        source=f"activity {provider_id}/{model_id}" + (f" last {since_days:g}d" if since_days else ""),
        max_prompt=max_prompt,
        max_output=max_output,
    )


def build_spec(engine: Engine, provider_id: str, model_id: str, options: BenchOptions) -> BenchSpec:
    """`BenchOptions` → `BenchSpec`; the production-shaped workload reads the stored activity."""
    if options.workload == "production":
        wl = replay_workload(
            engine,
            provider_id,
            model_id,
            since_days=options.production_days,
            max_prompt=options.prompt_max,
            max_output=options.output_max,
        )
        return options.spec(replace(wl, text=options.text))
    return options.spec()


# ------------------------------------------------------------------------------------------ rows


def _ms(x: float | None) -> float | None:
    return None if x is None else x * 1000.0


def run_row(header: RunHeader, requested_by: str | None = None) -> dict[str, Any]:
    return {
        "run_uid": header.run_uid,
        "provider_id": header.provider_id,
        "model_id": header.model_id,
        "status": "running",
        "mode": header.spec.mode,
        "label": header.spec.label,
        "workload_key": header.spec.workload_key(),
        "seed": header.seed,
        "params": header.spec.params(),
        "host_kind": header.host_kind,
        "loaded_before": list(header.loaded_before) if header.loaded_before is not None else None,
        "requested_by": requested_by,
        "started_at": header.started_at,
    }


def point_row(p: PointResult) -> dict[str, Any]:
    s = p.summary
    row: dict[str, Any] = {
        "idx": p.index,
        "mode": p.mode,
        "level": p.level,
        "arrival": p.arrival,
        "started_at": p.started_at,
        "finished_at": p.finished_at,
        "requests": s.requests,
        "completed": s.completed,
        "failed": s.failed,
        "cancelled": s.cancelled,
        "duration_s": s.duration_s,
        "request_throughput": s.request_throughput,
        "output_throughput": s.output_throughput,
        "total_token_throughput": s.total_token_throughput,
        "prompt_throughput": s.prompt_throughput,
        "goodput": s.goodput,
        "goodput_ratio": s.goodput_ratio,
        "prompt_tokens": s.prompt_tokens,
        "output_tokens": s.output_tokens,
        "peak_concurrency": s.peak_concurrency,
        "mean_concurrency": s.mean_concurrency,
        "decode_tps_mean": s.decode_tps.mean,
        "server_predicted_per_s_mean": s.server_predicted_per_s.mean,
        "schedule_lag_p90_ms": s.schedule_lag_ms.p90,
        "saturated": p.verdict.saturated,
        "saturation_reason": p.verdict.reason,
        "summary": {**s.as_dict(), "planned_requests": p.planned, "ended_by": p.ended_by, "rounds": p.rounds},
    }
    for name, dist in (("ttft", s.ttft_ms), ("tpot", s.tpot_ms), ("itl", s.itl_ms), ("e2e", s.e2e_ms)):
        for stat in ("p50", "p90", "p95", "p99", "mean"):
            row[f"{name}_{stat}_ms"] = getattr(dist, stat)
    return row


def request_rows(p: PointResult) -> list[dict[str, Any]]:
    rows = []
    for r in p.records:
        rows.append(
            {
                "seq": r.index,
                "sent_at": p.anchor.dt(r.send),
                "send_offset_ms": (r.send - p.t0) * 1000.0,
                "scheduled_offset_ms": None if r.scheduled is None else (r.scheduled - p.t0) * 1000.0,
                "ttft_ms": _ms(r.ttft),
                "e2e_ms": _ms(r.e2e),
                "tpot_ms": _ms(r.tpot),
                "decode_tps": r.decode_tps,
                "chunk_ms": [round((c - r.send) * 1000.0, 4) for c in r.chunks],
                "status_code": r.status,
                "error": r.error,
                "finish_reason": r.finish_reason,
                "cancelled": r.cancelled,
                "retries": r.retries,
                "prompt_tokens": r.prompt_tokens,
                "output_tokens": r.output_tokens,
                "cached_tokens": r.cached_tokens,
                "target_input_tokens": r.target_input_tokens,
                "target_output_tokens": r.target_output_tokens,
                "usage": r.usage,
                "timings": r.timings,
            }
        )
    return rows


def outcome_fields(o: RunOutcome) -> dict[str, Any]:
    host = o.host
    version = host.version if host else {}
    return {
        "status": o.status,
        "finished_at": o.finished_at,
        "stop_reason": o.stop_reason,
        "error": o.error,
        "llama_swap_version": (version.get("version") if host and kind_spec(host.kind).host_operations else None),
        "llama_swap_commit": (version.get("commit") if host and kind_spec(host.kind).host_operations else None),
        "version_info": version or None,
        "model_entry": host.model_entry if host else None,
        "server_props": host.props if host else None,
        "hardware": host.hardware if host else None,
        "foreign_requests": o.foreign_requests,
        "energy_j": o.energy_j,
        "j_per_token": o.j_per_token,
        "idle_w": o.idle_w,
        "extra": o.extra(),
        "simulated": o.simulated,
    }


class StoreSink:
    """Writes a run to Postgres progressively (each write in its own short transaction)."""

    def __init__(self, engine: Engine, requested_by: str | None = None,
                 on_stored: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self.requested_by = requested_by
        self.on_stored = on_stored  # called with the run's number once its row exists
        self.run_id: int | None = None  # the run's number (``bench list``/``show``/``compare``), once stored

    def run_started(self, header: RunHeader) -> None:
        with self.engine.begin() as conn:
            self.run_id = bench_store.insert_run(conn, run_row(header, self.requested_by))
        if self.on_stored is not None:
            self.on_stored(self.run_id)

    def point_finished(self, header: RunHeader, point: PointResult) -> None:
        with self.engine.begin() as conn:
            bench_store.insert_point(conn, header.run_uid, point_row(point), request_rows(point))

    def run_finished(self, header: RunHeader, outcome: RunOutcome) -> None:
        with self.engine.begin() as conn:
            bench_store.finish_run(conn, header.run_uid, outcome_fields(outcome))
            for p in outcome.points:
                if p.energy is not None:
                    bench_store.update_point_energy(
                        conn,
                        header.run_uid,
                        p.index,
                        p.energy.joules,
                        p.energy.per_token(p.summary.output_tokens),
                        p.energy.samples,
                    )


def record_refusal(
    engine: Engine,
    provider_id: str,
    model_id: str,
    spec: BenchSpec,
    reason: str,
    run_uid: str,
    requested_by: str | None = None,
    inflight: int | None = None,
    status: str = "refused",
) -> int:
    """A run that never started: ``refused`` (no confirmation, host busy or leased) or ``skipped`` (an
    unattended run whose host was not free and idle), with the reason in ``stop_reason``. Returns its number.
    ``bench list`` and the Benchmarks page leave these attempts out unless asked for them."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        return bench_store.insert_run(
            conn,
            {
                "run_uid": run_uid,
                "provider_id": provider_id,
                "model_id": model_id,
                "status": status,
                "mode": spec.mode,
                "label": spec.label,
                "workload_key": spec.workload_key(),
                "params": spec.params(),
                "requested_by": requested_by,
                "started_at": now,
                "finished_at": now,
                "stop_reason": reason,
                "extra": {"inflight_at_gate": inflight},
            },
        )


def make_client(spec: BenchSpec) -> httpx.AsyncClient:
    """The sweep's HTTP client: `LeanTransport` for ``http://`` hosts (low per-chunk overhead), httpx's
    own pooled transport (one keep-alive connection per concurrent request) for anything else."""
    peak = int(max(spec.levels)) if spec.mode == "concurrency" else spec.max_concurrency
    conns = peak + 8
    fallback = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    )
    return httpx.AsyncClient(
        transport=LeanTransport(fallback=fallback),  # plain http: the lean path; https: httpx's own
        timeout=httpx.Timeout(spec.request_timeout_s, connect=30.0),
        trust_env=False,  # a benchmark goes straight to the host, never through an environment proxy
    )


async def execute(
    engine: Engine,
    provider: Provider,
    model_id: str,
    spec: BenchSpec,
    *,
    confirm_takeover: bool,
    client: httpx.AsyncClient | None = None,
    progress: Callable[[Progress], None] | None = None,
    slot_wait_s: float | None = 30.0,
    requested_by: str | None = None,
    environ: Mapping[str, str] | None = None,
    run_uid: str | None = None,
    unattended_idle_s: float | None = None,
    lease_ttl_s: float = lease.DEFAULT_TTL_S,
    idle_wait_s: float = 0.0,
) -> RunOutcome:
    """Async form of `run_bench` (tests inject ``client``; the sync shells use `run_bench`).

    ``unattended_idle_s``: this is a scheduled run nobody watches; it starts only if the host lease is free
    right now and the host has been idle that many seconds, else it is recorded ``skipped`` (`BenchSkipped`).
    ``idle_wait_s``: how long the gate waits, under the lease, for a busy host to go idle before it refuses
    (`runner.wait_until_idle`; progress says how long is left)."""
    run_uid = run_uid or uuid.uuid4().hex
    try:
        require_takeover_confirmation(confirm_takeover)
    except TakeoverRefused as exc:
        exc.run_id = record_refusal(
            engine, provider.id, model_id, spec, "no takeover confirmation", run_uid, requested_by
        )
        raise
    unattended = unattended_idle_s is not None
    keeper = lease.LeaseKeeper(
        engine.url.render_as_string(hide_password=False), provider.id, lease.SCOPE_HOST,
        f"bench run {run_uid[:12]} ({model_id})" + (", unattended" if unattended else ""),
        holder=lease.holder_id("bench"), ttl_s=lease_ttl_s, wait_s=0.0 if unattended else slot_wait_s,
    )  # fmt: skip
    try:
        async with keeper, _cancel_when_lost(keeper):
            own = client is None
            http = client or make_client(spec)
            try:
                host = make_host(provider, http, environ)
                if unattended_idle_s is not None:
                    why = await idle_refusal(host, unattended_idle_s)
                    if why is not None:
                        raise BenchSkipped(f"unattended run skipped: {why}")
                def stored(run_id: int) -> None:  # the lease says the run's number from now on, like every shell
                    keeper.rename(f"bench run #{run_id} ({model_id})" + (", unattended" if unattended else ""))

                sink = StoreSink(engine, requested_by, stored)
                outcome = await run_sweep(
                    host,
                    model_id,
                    spec,
                    http,
                    confirm_takeover=confirm_takeover,
                    provider_id=provider.id,
                    sink=sink,
                    progress=progress,
                    run_uid=run_uid,
                    idle_wait_s=0.0 if unattended else idle_wait_s,
                )
                outcome.run_id = sink.run_id
                return outcome
            finally:
                if own:
                    await http.aclose()
    except lease.LeaseHeld as exc:
        if unattended:
            msg = f"unattended run skipped: {exc}"
            record_refusal(engine, provider.id, model_id, spec, msg, run_uid, requested_by, status="skipped")
            raise BenchSkipped(msg) from exc
        refused = TakeoverRefused(f"refusing to benchmark: {exc}")
        refused.run_id = record_refusal(engine, provider.id, model_id, spec, str(exc), run_uid, requested_by)
        raise refused from exc
    except BenchSkipped as exc:
        record_refusal(engine, provider.id, model_id, spec, exc.reason, run_uid, requested_by, status="skipped")
        raise
    except TakeoverRefused as exc:
        exc.run_id = record_refusal(
            engine, provider.id, model_id, spec, exc.reason, run_uid, requested_by, len(exc.inflight)
        )
        raise


class HostLeaseLost(RuntimeError):
    """The run's host lease was broken or taken over while it ran; the run was cancelled and cleaned up."""


LEASE_LOST = "the host lease was lost (broken by an operator, or expired and taken over)"


@contextlib.asynccontextmanager
async def _cancel_when_lost(keeper: lease.LeaseKeeper) -> AsyncIterator[None]:
    """Cancel the block (with the reason, so the run row says it) when ``keeper`` reports its lease lost;
    the block's `CancelledError` then leaves as `HostLeaseLost` unless someone else cancelled too."""
    me = asyncio.current_task()
    assert me is not None
    fired = False

    async def watch() -> None:
        nonlocal fired
        await keeper.lost.wait()
        fired = True
        me.cancel(LEASE_LOST)

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if fired and me.uncancel() == 0:
            raise HostLeaseLost(f"benchmark cancelled: {LEASE_LOST}") from None
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def run_bench(
    engine: Engine,
    provider: Provider,
    model_id: str,
    spec: BenchSpec,
    *,
    confirm_takeover: bool,
    progress: Callable[[Progress], None] | None = None,
    slot_wait_s: float | None = 30.0,
    requested_by: str | None = None,
    environ: Mapping[str, str] | None = None,
    unattended_idle_s: float | None = None,
    idle_wait_s: float = 0.0,
) -> RunOutcome:
    """Run a benchmark to completion in a fresh event loop (Ctrl-C / SIGTERM cancel it cleanly; see
    `engines.bench.signals`).

    The loop is a `StampingEventLoop`, so the lean transport stamps chunk arrivals at the I/O poll."""
    t0 = time.monotonic()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        outcome = runner.run(
            cancel_on_sigterm(
                lambda: execute(
                    engine,
                    provider,
                    model_id,
                    spec,
                    confirm_takeover=confirm_takeover,
                    progress=progress,
                    slot_wait_s=slot_wait_s,
                    requested_by=requested_by,
                    environ=environ,
                    unattended_idle_s=unattended_idle_s,
                    idle_wait_s=idle_wait_s,
                )
            )
        )
    log.info("bench run %s %s in %.1f s", outcome.run_uid, outcome.status, time.monotonic() - t0)
    return outcome


@dataclass
class CapacityOutcome:
    """A stored capacity search: its id, the result (None when it did not finish) and the run of each level."""

    search_id: int
    result: Capacity | None
    runs: dict[float, int | None]
    status: str
    error: str | None = None


def run_capacity(
    engine: Engine,
    provider: Provider,
    model_id: str,
    base: BenchSpec,
    targets: SloTargets,
    bounds: SearchBounds,
    *,
    confirm_takeover: bool,
    requested_by: str | None = None,
    on_level: Callable[[float], None] | None = None,
    **run_kw: Any,
) -> CapacityOutcome:
    """Search the highest level of ``base.mode`` at which ``targets`` hold: each measured level is a stored
    single-level run (`run_bench`, so the takeover gate, the lease and cleanup apply to each), the search
    itself is stored in ``bench_capacity_searches`` — opened before the first level, closed with its result,
    or with ``refused``/``failed`` and the error (re-raised) when a level could not run."""
    row = {
        "provider_id": provider.id, "model_id": model_id, "mode": base.mode, "percentile": targets.percentile,
        "ttft_ms": targets.ttft_ms, "tpot_ms": targets.tpot_ms, "low": bounds.low, "high": bounds.high,
        "max_points": bounds.max_points, "status": "running", "params": _jsonable(base.params()),
        "requested_by": requested_by,
    }  # fmt: skip
    with engine.begin() as conn:
        search_id = bench_store.insert_capacity_search(conn, row)
    runs: dict[float, int | None] = {}
    done: list[CapacityPoint] = []

    def measure(level: float) -> PointSummary:
        if on_level is not None:
            on_level(level)
        spec = replace(base, levels=(level,), label=base.label or f"capacity search #{search_id} ({base.mode})")
        out = run_bench(engine, provider, model_id, spec, confirm_takeover=confirm_takeover,
                        requested_by=requested_by, **run_kw)  # fmt: skip
        runs[level] = out.run_id
        if not out.points:
            raise CapacityAborted(f"{base.mode}={level:g}: run #{out.run_id} ended {out.status} without a point"
                                  + (f" ({out.error})" if out.error else ""))  # fmt: skip
        summary = out.points[0].summary
        done.append(capacity_point(level, summary, targets))
        with engine.begin() as conn:  # the points so far: a running search shows its progress
            bench_store.update_capacity_search(conn, search_id, {"points": _point_rows(done, runs)})
        return summary

    def close(**fields: Any) -> None:
        with engine.begin() as conn:
            bench_store.update_capacity_search(conn, search_id, {**fields, "finished_at": datetime.now(UTC)})

    try:
        result = search_sync(measure, targets, bounds, integer=base.mode == "concurrency")
    except TakeoverRefused as exc:
        close(status="refused", error=str(exc))
        raise
    except BaseException as exc:
        close(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    close(status="completed", capacity=result.interpolated, reached=result.reached if result.points else None,
          limited_by=result.limited_by, description=result.describe(),
          points=_point_rows(result.points, runs))  # fmt: skip
    return CapacityOutcome(search_id, result, runs, "completed")


class CapacityAborted(RuntimeError):
    """A level of a capacity search ended without a point (the run failed or was cancelled)."""


def _point_rows(points: Sequence[CapacityPoint], runs: Mapping[float, int | None]) -> list[dict[str, Any]]:
    return [{"level": p.level, "run_id": runs.get(p.level), "values": p.values, "failed": p.failed,
             "goodput": p.goodput, "goodput_ratio": p.goodput_ratio, "meets": p.meets}
            for p in sorted(points, key=lambda p: p.level)]  # fmt: skip


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(json.dumps(params, default=str)))
