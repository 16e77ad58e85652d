"""One benchmark run: gate → warm → warm-up (excluded) → sweep points → cleanup that restores the host.

`run_sweep` is plain asyncio with every dependency injected (host, HTTP client, sink, clock). It holds
no host lease itself: the caller (`engines.bench.service`) holds the host lease around it, so the in-flight
check below happens while no other action can start on the host.

Cancellation (task cancelled, Ctrl-C, Prefect's SIGTERM): the point's request tasks are cancelled,
which closes their connections; then, in ``finally``, any request of this run still listed by the host
is cancelled through its API, the model is unloaded if it was not loaded before the run, models that
were loaded before and got evicted are warmed again, and the run row is closed as ``cancelled``.
Cleanup reads the run's live ``/api/events`` watch and never unloads or re-loads anything while a request
the run did not send is in flight or queued for the model: it waits (bounded), else leaves the model
loaded and records why in ``cleanup``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import math
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import httpx

from connectors.llama_swap import says_simulated
from engines.bench.energy import EnergyEstimate, idle_power, integrate_power
from engines.bench.exact import Tokenizer, exact_requests, probe
from engines.bench.gate import (
    InflightSnapshot,
    TakeoverRefused,
    check_takeover,
    request_tag,
    require_takeover_confirmation,
)
from engines.bench.host import BenchHost, ForeignWatch, HostInfo
from engines.bench.load import ChatTarget, Clock, run_closed_loop, run_open_loop, stream_one
from engines.bench.metrics import PointSummary, RequestRecord, Slo, summarize
from engines.bench.saturation import SaturationPolicy, Verdict, assess_closed, assess_open, should_stop
from engines.bench.workload import (
    Arrival,
    LengthDist,
    ReplayWorkload,
    RequestSpec,
    SyntheticWorkload,
    TextStyle,
    TokenCalibration,
    Workload,
    arrival_offsets,
    build_requests,
    fit_calibration,
    prompt_text,
)

log = logging.getLogger(__name__)

Mode = Literal["concurrency", "rate"]
Status = Literal["running", "completed", "cancelled", "failed", "refused"]


@dataclass(frozen=True)
class BenchSpec:
    """What to run. Defaults are a small, safe concurrency sweep."""

    mode: Mode = "concurrency"
    levels: tuple[float, ...] = (1, 2, 4, 8)
    requests_per_point: int = 32
    workload: Workload = field(
        default_factory=lambda: SyntheticWorkload(prompt=LengthDist(256), output=LengthDist(128))
    )
    arrival: Arrival = "poisson"
    burstiness: float = 1.0  # open loop, poisson: gamma shape of the gaps (1 = Poisson, < 1 burstier)
    max_concurrency: int = 10  # open-loop cap; llama-swap's default per-model concurrencyLimit is 10
    ramp_s: float = 0.0  # closed loop: spread the workers' first requests over this many seconds
    warmup_requests: int = 3
    seed: int | None = None  # None = a fresh random seed per run (stored with the run)
    slo: Slo = field(default_factory=Slo)
    saturation: SaturationPolicy = field(default_factory=SaturationPolicy)
    max_point_s: float | None = 600.0
    repeat_until_ci_pct: float | None = None  # repeat a point while its throughput's 95 % CI is wider than ±this %
    max_rounds: int = 1  # at most this many rounds per point (1 = never repeat)
    request_timeout_s: float = 600.0
    ignore_eos: bool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    endpoint: str = "/v1/chat/completions"
    restore_host: bool = True
    label: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("concurrency", "rate"):
            raise ValueError(f"mode must be 'concurrency' or 'rate', got {self.mode!r}")
        if not self.levels or any(v <= 0 for v in self.levels):
            raise ValueError("levels must be positive")
        if self.mode == "concurrency" and any(v != int(v) for v in self.levels):
            raise ValueError("concurrency levels must be whole numbers")
        if self.requests_per_point < 1:
            raise ValueError("requests_per_point must be >= 1")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")
        if self.repeat_until_ci_pct is not None and not (0 < self.repeat_until_ci_pct < 100):
            raise ValueError(f"repeat_until_ci_pct must be between 0 and 100, got {self.repeat_until_ci_pct}")
        if self.repeat_until_ci_pct is not None and self.max_rounds > 1 and \
                not isinstance(self.workload, SyntheticWorkload | ReplayWorkload):
            raise ValueError("repeated points need independent requests: use them with the synthetic or the "
                             "production workload (shared-prefix and multi-turn requests depend on each other)")
        if not (self.burstiness > 0 and math.isfinite(self.burstiness)):
            raise ValueError(f"burstiness must be a positive number, got {self.burstiness}")
        if self.burstiness != 1.0 and not (self.mode == "rate" and self.arrival == "poisson"):
            raise ValueError("burstiness applies to the open loop's random arrivals only: use it with "
                             "--mode rate --arrival poisson")

    @property
    def total_requests(self) -> int:
        return len(self.levels) * self.requests_per_point

    def params(self) -> dict[str, Any]:
        d = asdict(self)
        d["workload"] = self.workload.describe()
        d["levels"] = list(self.levels)
        d["extra_body"] = dict(self.extra_body)
        return d

    def workload_key(self) -> str:
        """Runs with the same key are comparable point by point (levels may differ)."""
        key = {
            "mode": self.mode,
            "n": self.requests_per_point,
            "workload": self.workload.describe(),
            "arrival": self.arrival if self.mode == "rate" else None,
            **({"burstiness": self.burstiness} if self.burstiness != 1.0 else {}),
            "ignore_eos": self.ignore_eos,
            "extra_body": dict(self.extra_body),
            "endpoint": self.endpoint,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Progress:
    phase: str  # gate | warm | warmup | point | request | point_done | cleanup | done
    done: int = 0
    total: int = 0
    point: int | None = None
    level: float | None = None
    message: str = ""


@dataclass(frozen=True)
class Anchor:
    """Maps the monotonic clock to wall time: wall(t) = wall0 + (t − mono0)."""

    wall0: float
    mono0: float

    def wall(self, t: float) -> float:
        return self.wall0 + (t - self.mono0)

    def dt(self, t: float) -> datetime:
        return datetime.fromtimestamp(self.wall(t), tz=UTC)


@dataclass(frozen=True)
class RunHeader:
    run_uid: str
    tag: str
    provider_id: str
    model_id: str
    host_kind: str
    spec: BenchSpec
    seed: int
    started_at: datetime
    loaded_before: tuple[str, ...] | None


@dataclass
class PointResult:
    run_uid: str
    index: int
    mode: Mode
    level: float
    arrival: str | None
    t0: float  # monotonic start of the point
    t1: float
    anchor: Anchor
    records: list[RequestRecord]
    summary: PointSummary
    verdict: Verdict
    energy: EnergyEstimate | None = None
    planned: int = 0  # requests built for the point; fewer sent = the point ended at its time limit
    rounds: int = 1  # rounds measured (more than 1 when the noise demanded repeats: repeat_until_ci_pct)

    @property
    def ended_by(self) -> str:
        """``time`` when the point's time limit (``max_point_s``) stopped it before every planned request was
        sent, else ``requests``."""
        return "time" if len(self.records) < self.planned else "requests"

    @property
    def started_at(self) -> datetime:
        return self.anchor.dt(self.t0)

    @property
    def finished_at(self) -> datetime:
        return self.anchor.dt(self.t1)


@dataclass
class RunOutcome:
    run_uid: str
    run_id: int | None = None  # the stored run's number: the one id `bench run` prints and `list`/`compare` take
    status: Status = "running"
    stop_reason: str | None = None
    error: str | None = None
    finished_at: datetime | None = None
    host: HostInfo | None = None
    warm_s: float | None = None
    warmup: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, float] | None = None
    exact_lengths: bool = False  # prompts built with the server's tokenizer (engines/bench/exact.py)
    clamped_requests: int = 0
    points: list[PointResult] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    foreign_requests: int | None = None
    foreign_detail: str = ""
    idle_w: float | None = None
    energy_j: float | None = None
    j_per_token: float | None = None

    @property
    def simulated(self) -> bool:
        """The host said it is a simulator (the demo fleet): every number of this run is synthetic."""
        return self.host is not None and says_simulated(self.host.version, self.host.hardware)

    def extra(self) -> dict[str, Any]:
        return {
            "warm_s": self.warm_s,
            "warmup": self.warmup,
            "calibration": self.calibration,
            "exact_lengths": self.exact_lengths,
            "clamped_requests": self.clamped_requests,
            "cleanup": self.cleanup,
            "foreign_detail": self.foreign_detail,
        }


class BenchSink(Protocol):
    def run_started(self, header: RunHeader) -> None: ...
    def point_finished(self, header: RunHeader, point: PointResult) -> None: ...
    def run_finished(self, header: RunHeader, outcome: RunOutcome) -> None: ...


class NullSink:
    def run_started(self, header: RunHeader) -> None:
        pass

    def point_finished(self, header: RunHeader, point: PointResult) -> None:
        pass

    def run_finished(self, header: RunHeader, outcome: RunOutcome) -> None:
        pass


def _ctx_limit(info: HostInfo | None) -> int | None:
    props = info.props if info else None
    if not props:
        return None
    dgs = props.get("default_generation_settings")
    n = dgs.get("n_ctx") if isinstance(dgs, Mapping) else None
    if not isinstance(n, int):
        n = props.get("n_ctx") if isinstance(props.get("n_ctx"), int) else None
    return n if isinstance(n, int) and n > 0 else None


def _tokenizer(host: BenchHost, model_id: str) -> Tokenizer | None:
    """The host's llama-server tokenizer, when the host kind offers one."""
    make = getattr(host, "tokenizer", None)
    return make(model_id) if callable(make) else None


def _clamp(
    specs: Sequence[RequestSpec], n_ctx: int | None, cal: TokenCalibration
) -> tuple[list[RequestSpec], int]:
    """Keep prompt + output inside the per-slot context; shrinks prompts first. Prompt lengths are
    estimates (word calibration), so they get a 10 % margin, plus 8 tokens."""
    if n_ctx is None:
        return list(specs), 0
    out, clamped = [], 0
    budget = n_ctx - 8
    for s in specs:
        if int(s.input_tokens * 1.1) + s.output_tokens <= budget:
            out.append(s)
            continue
        clamped += 1
        o = min(s.output_tokens, budget // 2)
        p = max(1, int((budget - o) / 1.1))
        words = cal.words_for(p)
        prefix = s.prompt.split(" ", 1)[0]
        rest = s.prompt.split(" ")[1:words]
        out.append(replace(s, prompt=" ".join([prefix, *rest]), input_tokens=p, output_tokens=o))
    return out, clamped


async def _warmup(
    client: httpx.AsyncClient,
    target: ChatTarget,
    spec: BenchSpec,
    seed: int,
    clock: Clock,
    outcome: RunOutcome,
    n_ctx: int | None = None,
) -> TokenCalibration:
    """Warm-up requests (excluded from all metrics). The first two also fit the words→tokens map
    (16 words and up to 400 words, kept well inside the per-slot context)."""
    rng = random.Random(seed ^ 0x5EED)
    long_words = 400 if n_ctx is None else max(32, min(400, (n_ctx - 64) // 3))
    cal_words = (16, long_words)
    observed: list[tuple[int, int]] = []
    n = max(2, spec.warmup_requests)
    typical = spec.workload.lengths(max(0, n - 2), rng)
    for i in range(n):
        if i < 2:
            words, out_tokens = cal_words[i], 4
        else:
            p, out_tokens = typical[i - 2]
            if n_ctx is not None:  # same context rule as the measured requests (see _clamp)
                out_tokens = min(out_tokens, (n_ctx - 8) // 2)
                p = min(p, max(1, int((n_ctx - 8 - out_tokens) / 1.1)))
            words = TokenCalibration().words_for(p) if not observed else _cal(observed).words_for(p)
        style: TextStyle = getattr(spec.workload, "text", "words")  # calibrate on the text the points will send
        req = RequestSpec(
            i, prompt_text(rng, words, f"{rng.getrandbits(32):08x}-{target.tag}-warmup-{i}:", style), 0, out_tokens
        )
        rec = await stream_one(client, target, req, RequestRecord(index=i, send=clock()), clock)
        outcome.warmup.append(
            {
                "words": words,
                "ok": rec.ok,
                "error": rec.error,
                "ttft_ms": None if rec.ttft is None else rec.ttft * 1000,
                "prompt_tokens": rec.prompt_tokens,
                "output_tokens": rec.output_tokens,
            }
        )
        if not rec.ok:
            raise RuntimeError(f"warm-up request failed: {rec.error}")
        if i < 2 and rec.prompt_tokens is not None:
            observed.append((words, rec.prompt_tokens))
    return _cal(observed)


def _cal(observed: Sequence[tuple[int, int]]) -> TokenCalibration:
    if len(observed) >= 2:
        (w1, t1), (w2, t2) = observed[0], observed[1]
        return fit_calibration(w1, t1, w2, t2)
    return TokenCalibration()


async def run_sweep(
    host: BenchHost,
    model_id: str,
    spec: BenchSpec,
    client: httpx.AsyncClient,
    *,
    confirm_takeover: bool,
    provider_id: str,
    sink: BenchSink | None = None,
    progress: Callable[[Progress], None] | None = None,
    run_uid: str | None = None,
    clock: Clock = time.perf_counter,
    wall: Callable[[], float] = time.time,
    cleanup_timeout_s: float = 60.0,
    foreign_wait_s: float = 20.0,
    idle_wait_s: float = 0.0,
) -> RunOutcome:
    """Run a whole sweep; see the module docstring. Raises `TakeoverRefused` before touching the host.

    ``idle_wait_s``: a host with requests in flight is asked again every second for up to that long (each wait
    reported as a ``gate`` `Progress` with the seconds left) before the gate refuses; 0 refuses at once."""
    sink = sink or NullSink()
    emit = progress or (lambda _p: None)
    run_uid = run_uid or uuid.uuid4().hex
    tag = f"bc-{run_uid[:12]}"

    emit(Progress("gate", message="checking that the host is idle"))
    require_takeover_confirmation(confirm_takeover)  # before the host is even asked
    host.identify(tag)
    snapshot = await wait_until_idle(host, idle_wait_s, emit)
    try:
        check_takeover(confirm_takeover, snapshot)
    except TakeoverRefused as exc:
        if idle_wait_s > 0 and exc.inflight:
            raise TakeoverRefused(f"{exc.reason} (still busy after waiting {idle_wait_s:g} s)", exc.inflight) from None
        raise
    loaded = await host.loaded_models()
    if loaded is None and snapshot.loaded_models is not None:
        loaded = set(snapshot.loaded_models)
    before = tuple(sorted(loaded)) if loaded is not None else None

    seed = spec.seed if spec.seed is not None else secrets.randbits(31)
    anchor = Anchor(wall(), clock())
    header = RunHeader(
        run_uid=run_uid,
        tag=tag,
        provider_id=provider_id,
        model_id=model_id,
        host_kind=host.kind,
        spec=spec,
        seed=seed,
        started_at=anchor.dt(anchor.mono0),
        loaded_before=before,
    )
    sink.run_started(header)
    outcome = RunOutcome(run_uid=run_uid)
    target = ChatTarget(
        url=host.chat_base + spec.endpoint,
        model=model_id,
        tag=tag,
        headers=host.headers,
        ignore_eos=spec.ignore_eos,
        extra_body=spec.extra_body,
        timeout_s=spec.request_timeout_s,
    )
    run_t0 = clock()
    async with host.watch_foreign(tag) as watch:  # open until cleanup is over: cleanup reads it
        try:
            emit(Progress("warm", message=f"loading {model_id}"))
            outcome.warm_s = await host.warm(model_id)
            outcome.host = await host.describe(model_id, tag)
            emit(Progress("warmup", message="warm-up requests (excluded)"))
            n_ctx = _ctx_limit(outcome.host)
            cal = await _warmup(client, target, spec, seed, clock, outcome, n_ctx)
            outcome.calibration = {"overhead": cal.overhead, "per_word": cal.per_word}
            tok = _tokenizer(host, model_id)
            single = isinstance(spec.workload, SyntheticWorkload | ReplayWorkload)  # one user message
            frame = await probe(tok) if tok is not None else None
            outcome.exact_lengths = frame is not None
            run_t0 = clock()
            done = 0
            total = spec.total_requests
            verdicts: list[Verdict] = []
            for idx, level in enumerate(spec.levels):
                emit(Progress("point", done, total, idx, level, f"{spec.mode}={level:g}"))

                def on_done(_rec: RequestRecord, _idx: int = idx, _level: float = level) -> None:
                    nonlocal done
                    done += 1
                    emit(Progress("request", done, total, _idx, _level))  # noqa: B023 - the total as it grows

                async def one_round(rnd: int, _idx: int = idx, _level: float = level
                                    ) -> tuple[list[RequestRecord], float, float, int]:
                    """One round of the point: its requests built (round 0 as always; later rounds from
                    other seeds, numbered after the earlier rounds), sent, and (records, t0, t1, planned)."""
                    rseed = seed * 1000 + _idx + rnd * 7_919
                    specs = build_requests(
                        spec.workload,
                        spec.requests_per_point,
                        seed=rseed,
                        tag=f"{tag}-p{_idx}" + (f"r{rnd}" if rnd else ""),
                        calibration=cal,
                    )
                    if rnd:
                        specs = [replace(s, index=s.index + rnd * spec.requests_per_point) for s in specs]
                    if single:  # (shared-prefix and multi-turn requests are not cut to the context)
                        specs, clamped = _clamp(specs, n_ctx, cal)
                        outcome.clamped_requests += clamped
                    if tok is not None and frame is not None:  # exact lengths, the server's tokenizer
                        specs = await exact_requests(specs, tok, frame, seed=rseed)
                    req_seed_base = seed * 100_000 + _idx * 1000 + rnd * 100_003

                    async def send(s: RequestSpec, rec: RequestRecord, _b: int = req_seed_base) -> RequestRecord:
                        return await stream_one(client, target, s, rec, clock, seed=_b + s.index)

                    offsets = (
                        arrival_offsets(len(specs), _level, spec.arrival, seed=seed * 7 + _idx + rnd * 7_919,
                                        burstiness=spec.burstiness)
                        if spec.mode == "rate"
                        else ()
                    )
                    with _settled_heap():
                        t0 = clock()
                        if spec.mode == "concurrency":
                            records = await run_closed_loop(
                                send, specs, int(_level), clock, spec.max_point_s, on_done, spec.ramp_s
                            )
                        else:
                            records = await run_open_loop(
                                send, specs, offsets, spec.max_concurrency, clock, spec.max_point_s, on_done
                            )
                        t1 = clock()
                    return records, t0, t1, len(specs)

                records, t0, t1, planned = await one_round(0)
                summary = summarize(records, spec.slo)
                rounds, spans = 1, [_span(records)]
                while rounds < spec.max_rounds and not _precise_enough(summary, spec.repeat_until_ci_pct):
                    total += spec.requests_per_point
                    emit(Progress("point", done, total, idx, level,
                                  f"{spec.mode}={level:g}: round {rounds + 1}, throughput interval too wide"))
                    more, _, t1, n_more = await one_round(rounds)
                    records, planned, rounds = records + more, planned + n_more, rounds + 1
                    spans.append(_span(more))
                    summary = summarize(records, spec.slo, duration_s=sum(spans))
                earlier = [p.summary for p in outcome.points]
                verdict = (
                    assess_closed(summary, earlier, spec.saturation)
                    if spec.mode == "concurrency"
                    else assess_open(summary, records, level, spec.saturation)
                )
                verdicts.append(verdict)
                point = PointResult(
                    run_uid, idx, spec.mode, float(level), spec.arrival if spec.mode == "rate" else None,
                    t0, t1, anchor, records, summary, verdict, planned=planned, rounds=rounds,
                )  # fmt: skip
                outcome.points.append(point)
                sink.point_finished(header, point)
                emit(Progress("point_done", done, total, idx, level, verdict.reason or ""))
                if should_stop(verdicts, spec.saturation) and idx < len(spec.levels) - 1:
                    outcome.stop_reason = f"saturated at {spec.mode}={level:g}: {verdict.reason}"
                    break
            outcome.status = "completed"
        except asyncio.CancelledError as exc:
            outcome.status = "cancelled"
            outcome.stop_reason = f"cancelled ({exc.args[0]})" if exc.args and exc.args[0] else "cancelled"
            raise
        except BaseException as exc:
            inner = _leaf(exc)
            if isinstance(inner, Exception):
                outcome.status = "failed"
                outcome.error = f"{type(inner).__name__}: {inner}"[:2000]
            else:  # KeyboardInterrupt, SystemExit, Prefect's TerminationSignal: someone stopped the run
                outcome.status = "cancelled"
                outcome.stop_reason = f"interrupted ({type(inner).__name__})"
            if inner is not exc:
                # A signal raised inside one request task arrives wrapped in the TaskGroup's exception
                # group; re-raise it bare so the shell (Prefect's engine, the CLI) recognises it.
                raise inner from exc
            raise
        finally:
            outcome.foreign_requests = watch.count if watch.connected and watch.headers_known else None
            outcome.foreign_detail = watch.detail
            emit(Progress("cleanup", message="restoring the host"))
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(
                    leave_host_as_found(host, model_id, tag, before, spec, outcome, watch, foreign_wait_s), cleanup_timeout_s
                )
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(_energy(host, outcome, anchor, run_t0, clock, wall), 15.0)
            outcome.finished_at = datetime.fromtimestamp(wall(), tz=UTC)
            sink.run_finished(header, outcome)
            emit(Progress("done", message=outcome.status))
    return outcome


async def wait_until_idle(
    host: BenchHost,
    wait_s: float,
    emit: Callable[[Progress], None],
    poll_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> InflightSnapshot:
    """The host's in-flight list once it is empty, unreadable, or ``wait_s`` has passed (then the busy list).
    Each wait is announced: ``gate`` progress "waiting for the host to go idle: N in flight, S s left"."""
    deadline = clock() + wait_s
    while True:
        snapshot = await host.inflight()
        left = deadline - clock()
        if not snapshot.known or not snapshot.requests or left <= 0:
            return snapshot
        emit(Progress("gate", message=f"waiting for the host to go idle: {len(snapshot.requests)} in flight, "
                                      f"{left:.0f} s left"))
        await asyncio.sleep(min(poll_s, left))


def _span(records: Sequence[RequestRecord]) -> float:
    """First send to last end of one round (what `summarize` takes as a point's duration)."""
    ends = [r.end for r in records if r.end is not None]
    return (max(ends) - min(r.send for r in records)) if records and ends else 0.0


def _precise_enough(summary: PointSummary, pct: float | None) -> bool:
    """Stop repeating: no target, or the output throughput's 95 % interval (±1.96 relative standard errors,
    bootstrapped over the point's requests) within ±``pct`` % of it. An unknown error (fewer than 2
    completed requests) is not precise."""
    if pct is None:
        return True
    rel = summary.throughput_rel_se
    return rel is not None and 1.96 * rel * 100.0 <= pct


@contextlib.contextmanager
def _settled_heap() -> Iterator[None]:
    """Collect, then freeze the heap for the duration of a measured point.

    A full (generation-2) collection walks every object the process holds — in a Prefect worker that
    is hundreds of thousands — and stops the event loop meanwhile, which would show up as a
    millisecond-scale TTFT or ITL outlier the server never caused. Collecting before the point and
    freezing what survived leaves only the objects the point itself creates for the collector to scan."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups that is not a CancelledError."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)] or list(
            exc.exceptions
        )
        exc = inner[0]
    return exc


def _foreign_for(snap: InflightSnapshot, model_id: str, tag: str) -> list[Mapping[str, Any]]:
    """Requests the run did not send that are in flight or queued for ``model_id`` (or for an unnamed model).
    Without request headers (llama-swap < v240) no request can be told apart, so every one for the model
    counts (call this after the run's own requests are gone)."""
    return [
        r for r in snap.requests
        if r.get("model") in (model_id, "", None) and (not snap.headers_known or request_tag(r) != tag)
    ]  # fmt: skip


async def leave_host_as_found(
    host: BenchHost,
    model_id: str,
    tag: str,
    before: tuple[str, ...] | None,
    spec: BenchSpec,
    outcome: RunOutcome,
    watch: ForeignWatch | None = None,
    foreign_wait_s: float = 20.0,
) -> None:
    """Leave the host as it was without touching anyone else's work: cancel the run's own leftover requests,
    then unload the model if it was not loaded before and re-load evicted ones, but never while a request
    the run did not send is in flight or queued for the model: wait (≤ ``foreign_wait_s``) for those to
    finish, else leave the model loaded and say why. The in-flight list is the run's live watch (one open
    ``/api/events`` stream); the host is asked afresh only when that stream is not open."""

    async def inflight() -> InflightSnapshot:
        live = watch.live() if watch is not None else None
        return live if live is not None else await host.inflight()

    poll_s = 0.1 if watch is not None and watch.active else 0.25
    try:
        snap = await inflight()
        mine = [str(r.get("id")) for r in snap.tagged(tag)] if snap.known else []
        n = await host.cancel(mine) if mine else 0
        if n:
            outcome.cleanup.append(f"cancelled {n} leftover bench request(s) on the host")
        for _ in range(int(5.0 / poll_s)):  # wait (≤ 5 s) until the host lists none of ours
            snap = await inflight()
            if snap.headers_known:
                ours = snap.tagged(tag)
            else:  # llama-swap < v240 lists no headers: every request for the model counts as ours
                ours = [r for r in snap.requests if r.get("model") == model_id]
            if not snap.known or not ours:
                break
            await asyncio.sleep(poll_s)
        else:
            outcome.cleanup.append(f"{len(ours)} request(s) of the run still listed in flight after 5 s")
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort, reported in the run row
        outcome.cleanup.append(f"in-flight cleanup failed: {exc}")
    if not spec.restore_host or before is None:
        return
    try:
        loaded = await host.loaded_models() or set()
        unload = model_id not in before
        reload = [m for m in before if m not in loaded and m != model_id]
        if not unload and not reload:
            return
        deadline = time.monotonic() + foreign_wait_s
        while True:
            snap = await inflight()
            others = _foreign_for(snap, model_id, tag) if snap.known else []
            if snap.known and not others:
                break
            if time.monotonic() >= deadline:
                why = (
                    f"{len(others)} request(s) the run did not send were in flight or queued for it "
                    f"[{', '.join(str(r.get('id', '?')) for r in others[:5])}]"
                    if snap.known
                    else f"the host's in-flight requests could not be read ({snap.detail})"
                )
                outcome.cleanup.append(
                    f"left {model_id} loaded and nothing re-loaded: after waiting {foreign_wait_s:g} s, {why}"
                )
                return
            await asyncio.sleep(poll_s)
        if unload:
            await host.unload(model_id)
            outcome.cleanup.append(f"unloaded {model_id} (it was not loaded before the run)")
        now = await host.loaded_models() or set()
        for m in before:
            if m not in now and m != model_id:
                await host.warm(m)
                outcome.cleanup.append(f"re-loaded {m} (evicted during the run)")
    except Exception as exc:  # noqa: BLE001
        outcome.cleanup.append(f"restore failed: {exc}")


async def _energy(
    host: BenchHost,
    outcome: RunOutcome,
    anchor: Anchor,
    run_t0: float,
    clock: Clock,
    wall: Callable[[], float],
) -> None:
    series = await host.power_samples()
    if not series or not outcome.points:
        return
    end_wall = anchor.wall(outcome.points[-1].t1)
    # Wait (≤ 6 s) for one sample after the end so the tail is interpolated, not extrapolated.
    for _ in range(12):
        if series[-1][0] >= end_wall:
            break
        await asyncio.sleep(0.5)
        series = await host.power_samples() or series
    outcome.idle_w = idle_power(series, anchor.wall(run_t0))
    for p in outcome.points:
        p.energy = integrate_power(series, anchor.wall(p.t0), anchor.wall(p.t1))
    e = integrate_power(series, anchor.wall(outcome.points[0].t0), end_wall)
    tokens = sum(p.summary.output_tokens for p in outcome.points)
    if e is not None:
        outcome.energy_j = e.joules
        outcome.j_per_token = e.per_token(tokens)
