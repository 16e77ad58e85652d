"""Alert rules and their evaluation: state in, decisions out (no I/O, no Prefect).

``findings(snapshot, policy)`` turns one look at the fleet (a `Snapshot` the flow gathers with `gather`) into one
`Finding` per rule and subject: is the condition true now, with its value and a one-line message.
``evaluate(states, findings, now, policy)`` compares them with what the evaluator remembered (`State`, stored in
``alert_states``) and decides the notices (`Notice`, stored in ``alert_events`` and delivered by the flow):

* **fire** once, when a condition has held for ``hold_s`` (a condition that comes and goes faster never fires);
* **recover** once, when a fired condition has been clear for ``clear_s``;
* **deduplicated**: nothing while a fired condition stays true or a clear one stays clear;
* **flap suppression**: a condition that changed ``flap_changes`` times within ``flap_window_s`` is *flapping*:
  no notice at all until it settles (its flips age out of the window); then it fires or recovers once if its
  settled value differs from what was last notified.

A subject that disappears (a host removed, a model no longer probed) counts as clear.

Rules (``RULES``; thresholds in `Policy`, the flow's parameters):

``host_unreachable``  the connector says the host is not connected, for ``host_unreachable_minutes`` (this rule's
                      hold time)
``gpu_temperature``   newest GPU sample (at most 5 min old) at or above ``gpu_temp_c``
``vram``              newest GPU sample's memory use at or above ``vram_pct`` % of the card
``error_rate``        non-2xx share of the last ``error_window_minutes`` of requests (canary probes left out) at or
                      above ``error_rate``, with at least ``error_min_requests`` requests
``gap``               the connector recorded a gap (rows known missing) in the last ``gap_window_minutes``
``bench_drift``       newest finished benchmark's peak output tokens/s ``bench_drift_pct`` % below the median of the
                      previous (up to 3) runs of the same model, mode and workload
``eval_regression``   newest score of a (model, suite, metric) ``eval_drop_pct`` % below the previous one
``thrash``            a host's model loads in the last hour at or above ``thrash_loads_per_hour``
``canary_slo``        the newest canary probe of a model (at most 15 min old) failed, or its TTFT above
                      ``canary_ttft_slo_ms``

**Delivery retry**: a notice some channel did not take (an error, or a block that could not be loaded) is sent
again to just those channels on every later evaluation, for ``retry_minutes`` after it was decided, as long as
it is still the newest notice of its (rule, subject) (a failed *fire* that has since recovered is not re-sent;
the recovery is). The history row's delivery map is updated in place; a late success reads
``ok (retried <time>)``.

**Silences** (maintenance, a known-bad host): ``RULE:SUBJECT`` patterns (shell globs, e.g. ``*:gpu-box*`` or
``gpu_temperature:gpu-box/*``), optionally ``… until 2026-12-02T18:00Z``. A matching notice is still decided and
stored (the state machine does not change: when the silence ends, nothing is re-sent for what already fired),
but not delivered: its delivery map is ``{"silenced": "<pattern>"}`` and it is never retried.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine

from warehouse.queries import alerts as q
from warehouse.queries._frames import Db

RULES = ("host_unreachable", "gpu_temperature", "vram", "error_rate", "gap", "bench_drift", "eval_regression",
         "thrash", "canary_slo")
FRESH = timedelta(minutes=5)  # a GPU sample older than this says nothing about now
CANARY_FRESH = timedelta(minutes=15)


@dataclass(frozen=True)
class Policy:
    host_unreachable_minutes: float = 5.0
    gpu_temp_c: float = 85.0
    vram_pct: float = 97.0
    error_rate: float = 0.2
    error_min_requests: int = 20
    error_window_minutes: float = 15.0
    gap_window_minutes: float = 60.0
    bench_drift_pct: float = 15.0
    eval_drop_pct: float = 10.0
    thrash_loads_per_hour: float = 30.0
    canary_ttft_slo_ms: float = 2000.0
    hold_s: float = 60.0
    clear_s: float = 120.0
    flap_window_s: float = 1800.0
    flap_changes: int = 4
    retry_minutes: float = 60.0  # how long a notice a channel did not take is sent again

    def hold_for(self, rule: str) -> float:
        """Seconds a condition must hold before it fires."""
        return 60 * self.host_unreachable_minutes if rule == "host_unreachable" else self.hold_s


# --- what the flow gathers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostHealth:
    provider_id: str
    status: str  # connector_health.status ('connected', 'disconnected', 'unknown', ...)
    last_seen_at: datetime | None  # its newest host sample (a sign of life), when it has any


@dataclass(frozen=True)
class GpuReading:
    provider_id: str
    gpu_key: str
    name: str
    sampled_at: datetime
    temp_c: float
    mem_used_mb: float
    mem_total_mb: float


@dataclass(frozen=True)
class ErrorCount:
    provider_id: str
    requests: int
    errors: int


@dataclass(frozen=True)
class GapCount:
    provider_id: str
    gaps: int
    last_reason: str


@dataclass(frozen=True)
class BenchResult:
    provider_id: str
    model_id: str
    run_id: int
    peak_tps: float
    baseline_tps: float | None  # median of the previous comparable runs; None when there is none


@dataclass(frozen=True)
class EvalResult:
    provider_id: str
    model_id: str
    suite: str
    metric: str
    run_id: int
    value: float
    previous: float | None


@dataclass(frozen=True)
class ThrashRate:
    provider_id: str
    loads_last_hour: int


@dataclass(frozen=True)
class CanaryResult:
    provider_id: str
    model_id: str
    sent_at: datetime
    ok: bool
    ttft_ms: float | None
    error: str | None


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    hosts: tuple[HostHealth, ...] = ()
    gpus: tuple[GpuReading, ...] = ()
    errors: tuple[ErrorCount, ...] = ()
    gaps: tuple[GapCount, ...] = ()
    bench: tuple[BenchResult, ...] = ()
    evals: tuple[EvalResult, ...] = ()
    thrash: tuple[ThrashRate, ...] = ()
    canaries: tuple[CanaryResult, ...] = ()


@dataclass(frozen=True)
class Finding:
    rule: str
    subject: str
    active: bool
    value: float | None
    message: str


def _host_findings(s: Snapshot, p: Policy) -> Iterable[Finding]:
    for h in s.hosts:
        down = h.status != "connected"
        seen_min = (s.now - h.last_seen_at).total_seconds() / 60 if h.last_seen_at is not None else None
        seen = f"last sample {seen_min:.0f} min ago" if seen_min is not None else "no sample ever"
        msg = f"{h.provider_id} unreachable (connector: {h.status}; {seen})" if down else f"{h.provider_id} connected"
        yield Finding("host_unreachable", h.provider_id, down, round(seen_min, 3) if seen_min is not None else None,
                      msg)


def _gpu_findings(s: Snapshot, p: Policy) -> Iterable[Finding]:
    for g in s.gpus:
        subject = f"{g.provider_id}/{g.gpu_key}"
        fresh = s.now - g.sampled_at <= FRESH
        yield Finding("gpu_temperature", subject, fresh and g.temp_c >= p.gpu_temp_c, g.temp_c,
                      f"{g.provider_id} GPU {g.name} at {g.temp_c:.0f} °C (threshold {p.gpu_temp_c:.0f} °C)")
        pct = 100 * g.mem_used_mb / g.mem_total_mb if g.mem_total_mb > 0 else 0.0
        yield Finding("vram", subject, fresh and pct >= p.vram_pct, round(pct, 3),
                      f"{g.provider_id} GPU {g.name} VRAM {pct:.1f} % used "
                      f"({g.mem_used_mb:.0f} of {g.mem_total_mb:.0f} MiB; threshold {p.vram_pct:.0f} %)")


def _error_findings(s: Snapshot, p: Policy) -> Iterable[Finding]:
    for e in s.errors:
        rate = e.errors / e.requests if e.requests else 0.0
        active = e.requests >= p.error_min_requests and rate >= p.error_rate
        yield Finding("error_rate", e.provider_id, active, round(rate, 6),
                      f"{e.provider_id}: {e.errors} of {e.requests} requests failed in the last "
                      f"{p.error_window_minutes:.0f} min ({100 * rate:.0f} %; threshold {100 * p.error_rate:.0f} %)")


def _gap_findings(s: Snapshot, p: Policy) -> Iterable[Finding]:
    for g in s.gaps:
        yield Finding("gap", g.provider_id, g.gaps > 0, float(g.gaps),
                      f"{g.provider_id}: {g.gaps} gap(s) recorded in the last {p.gap_window_minutes:.0f} min "
                      f"(rows known missing; latest: {g.last_reason})")


def _drop_pct(before: float | None, now: float) -> float | None:
    """How many % ``now`` is below ``before`` (negative: above); None without a positive ``before``."""
    if before is None or before <= 0:
        return None
    return 100 * (before - now) / before


def _bench_findings(s: Snapshot, p: Policy) -> Iterable[Finding]:
    for b in s.bench:
        if (drop := _drop_pct(b.baseline_tps, b.peak_tps)) is None:
            continue
        yield Finding("bench_drift", f"{b.provider_id}/{b.model_id}", drop >= p.bench_drift_pct, round(drop, 3),
                      f"{b.provider_id}/{b.model_id}: benchmark run #{b.run_id} peaks at {b.peak_tps:.1f} tok/s, "
                      f"{drop:.0f} % below the previous runs' {b.baseline_tps:.1f} tok/s")


def _eval_findings(s: Snapshot, p: Policy) -> Iterable[Finding]:
    for e in s.evals:
        if (drop := _drop_pct(e.previous, e.value)) is None:
            continue
        yield Finding("eval_regression", f"{e.provider_id}/{e.model_id}/{e.suite}/{e.metric}",
                      drop >= p.eval_drop_pct, round(drop, 3),
                      f"{e.provider_id}/{e.model_id}: {e.suite} {e.metric} {e.value:.3f} in eval run #{e.run_id}, "
                      f"{drop:.0f} % below the previous {e.previous:.3f}")


def _thrash_findings(s: Snapshot, p: Policy) -> Iterable[Finding]:
    for t in s.thrash:
        yield Finding("thrash", t.provider_id, t.loads_last_hour >= p.thrash_loads_per_hour, float(t.loads_last_hour),
                      f"{t.provider_id}: {t.loads_last_hour} model loads in the last hour "
                      f"(threshold {p.thrash_loads_per_hour:.0f})")


def _canary_findings(s: Snapshot, p: Policy) -> Iterable[Finding]:
    for c in s.canaries:
        fresh = s.now - c.sent_at <= CANARY_FRESH
        slow = c.ttft_ms is not None and c.ttft_ms > p.canary_ttft_slo_ms
        active = fresh and (not c.ok or slow)
        if not c.ok:
            msg = f"{c.provider_id}/{c.model_id}: canary failed ({c.error or 'no answer'})"
        else:
            msg = (f"{c.provider_id}/{c.model_id}: canary TTFT {c.ttft_ms or 0:.0f} ms "
                   f"(SLO {p.canary_ttft_slo_ms:.0f} ms)")
        yield Finding("canary_slo", f"{c.provider_id}/{c.model_id}", active, c.ttft_ms, msg)


def findings(s: Snapshot, p: Policy) -> list[Finding]:
    """Every rule's finding for every subject in ``s``."""
    out: list[Finding] = []
    for fn in (_host_findings, _gpu_findings, _error_findings, _gap_findings, _bench_findings, _eval_findings,
               _thrash_findings, _canary_findings):
        out.extend(fn(s, p))
    return out


# --- evaluation -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    rule: str
    subject: str
    active: bool
    changed_at: datetime
    firing: bool  # a fire notice went out and no recovery since
    flapping: bool = False
    flips: tuple[datetime, ...] = field(default=())
    value: float | None = None
    message: str = ""
    evaluated_at: datetime | None = None


@dataclass(frozen=True)
class Notice:
    rule: str
    subject: str
    kind: str  # fire | recover
    at: datetime
    message: str
    value: float | None

    @property
    def title(self) -> str:
        what = "FIRING" if self.kind == "fire" else "RECOVERED"
        return f"[BooControl] {what}: {self.rule} {self.subject}"


def _step(prev: State | None, f: Finding, now: datetime, p: Policy) -> tuple[State, Notice | None]:
    if prev is None:
        prev = State(f.rule, f.subject, active=False, changed_at=now, firing=False)
    changed = f.active != prev.active
    flips = tuple(t for t in (*prev.flips, *((now,) if changed else ()))
                  if (now - t).total_seconds() <= p.flap_window_s)
    flapping = len(flips) >= p.flap_changes
    changed_at = now if changed else prev.changed_at
    held = (now - changed_at).total_seconds()
    firing = prev.firing
    notice: Notice | None = None
    if not flapping:
        if f.active and not firing and held >= p.hold_for(f.rule):
            firing = True
            notice = Notice(f.rule, f.subject, "fire", now, f.message, f.value)
        elif not f.active and firing and held >= p.clear_s:
            firing = False
            notice = Notice(f.rule, f.subject, "recover", now, f"recovered: {f.message}", f.value)
    state = State(f.rule, f.subject, f.active, changed_at, firing, flapping, flips, f.value, f.message, now)
    return state, notice


def evaluate(states: Mapping[tuple[str, str], State], found: Iterable[Finding], now: datetime, p: Policy
             ) -> tuple[list[State], list[Notice]]:
    """The new state of every (rule, subject) and the notices to send (see the module doc)."""
    new: list[State] = []
    notices: list[Notice] = []
    seen: set[tuple[str, str]] = set()
    for f in found:
        key = (f.rule, f.subject)
        if key in seen:
            continue
        seen.add(key)
        st, n = _step(states.get(key), f, now, p)
        new.append(st)
        if n is not None:
            notices.append(n)
    for key, prev in states.items():  # subjects no longer reported count as clear
        if key in seen:
            continue
        if not prev.active and not prev.firing and not prev.flips:
            continue  # quiet and gone: forget it
        gone = Finding(prev.rule, prev.subject, False, None, f"{prev.subject} no longer reported")
        st, n = _step(prev, gone, now, p)
        new.append(replace(st, message=prev.message if not n else st.message))
        if n is not None:
            notices.append(n)
    new.sort(key=lambda s: (s.rule, s.subject))
    return new, notices


# --- one evaluation against the warehouse (the flow's body; delivery injected) ----------------------------


def gather(db: Db, now: datetime, p: Policy) -> Snapshot:
    """One look at the fleet for every rule (see ``warehouse.queries.alerts``)."""
    rows = q.host_health(db).iter_rows(named=True)
    hosts = tuple(HostHealth(r["provider_id"], r["status"], r["last_seen_at"]) for r in rows)
    gpus = tuple(GpuReading(r["provider_id"], r["gpu_key"], r["name"], r["sampled_at"], r["temp_c"],
                            r["mem_used_mb"], r["mem_total_mb"])
                 for r in q.gpu_latest(db, now, FRESH).iter_rows(named=True))
    errors = tuple(ErrorCount(r["provider_id"], r["requests"], r["errors"]) for r in
                   q.error_counts(db, now, timedelta(minutes=p.error_window_minutes)).iter_rows(named=True))
    gaps = tuple(GapCount(r["provider_id"], r["gaps"], r["last_reason"]) for r in
                 q.recent_gaps(db, now, timedelta(minutes=p.gap_window_minutes)).iter_rows(named=True))
    bench = tuple(BenchResult(r["provider_id"], r["model_id"], r["run_id"], r["peak_tps"], r["baseline_tps"])
                  for r in q.bench_latest(db).iter_rows(named=True))
    evals = tuple(EvalResult(r["provider_id"], r["model_id"], r["suite"], r["metric"], r["run_id"], r["value"],
                             r["previous"]) for r in q.eval_latest(db).iter_rows(named=True))
    thrash = tuple(ThrashRate(r["provider_id"], r["loads"]) for r in q.loads_last_hour(db, now).iter_rows(named=True))
    canaries = tuple(CanaryResult(r["provider_id"], r["model_id"], r["sent_at"], r["ok"], r["ttft_ms"], r["error"])
                     for r in q.canary_latest(db, now, CANARY_FRESH).iter_rows(named=True))
    return Snapshot(now, hosts, gpus, errors, gaps, bench, evals, thrash, canaries)


def load_states(db: Db) -> dict[tuple[str, str], State]:
    out: dict[tuple[str, str], State] = {}
    for r in q.states(db).iter_rows(named=True):
        flips = tuple(datetime.fromisoformat(t) for t in json.loads(r["flips"] or "[]"))
        out[(r["rule"], r["subject"])] = State(r["rule"], r["subject"], r["active"], r["changed_at"], r["firing"],
                                               r["flapping"], flips, r["value"], r["message"], r["evaluated_at"])
    return out


def worth_keeping(s: State) -> bool:
    """A clear, never-fired, steady subject is the same as no memory at all: only the others are stored."""
    return s.active or s.firing or bool(s.flips)


@dataclass(frozen=True)
class Silence:
    rule: str  # a glob over rule names
    subject: str  # a glob over subjects
    until: datetime | None
    text: str  # as the user wrote it

    def covers(self, n: Notice, now: datetime) -> bool:
        return ((self.until is None or now < self.until) and fnmatch.fnmatchcase(n.rule, self.rule)
                and fnmatch.fnmatchcase(n.subject, self.subject))


def parse_silence(spec: str) -> Silence:
    """``RULE:SUBJECT[ until ISO-TIME]``; ValueError (one line) when it is not that or names no known rule."""
    text_ = spec.strip()
    head, _, until_s = text_.partition(" until ")
    rule, sep, subject = head.strip().partition(":")
    if not sep or not rule or not subject.strip():
        raise ValueError(f"silence {spec!r}: write RULE:SUBJECT (globs allowed), e.g. 'gpu_temperature:gpu-box/*'")
    if not any(fnmatch.fnmatchcase(r, rule) for r in RULES):
        raise ValueError(f"silence {spec!r}: {rule!r} matches no rule (rules: {', '.join(RULES)})")
    until: datetime | None = None
    if until_s:
        try:
            until = datetime.fromisoformat(until_s.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"silence {spec!r}: {until_s.strip()!r} is not a time (2026-12-02T18:00Z)") from None
        if until.tzinfo is None:
            raise ValueError(f"silence {spec!r}: give the time zone of {until_s.strip()!r} (…Z or +01:00)")
    return Silence(rule, subject.strip(), until, text_)


def silenced_by(n: Notice, silences: Iterable[Silence], now: datetime) -> Silence | None:
    return next((s for s in silences if s.covers(n, now)), None)


class Deliver(Protocol):
    """Send a notice to every channel, or only to those in ``only``; per channel "ok" or the error."""

    def __call__(self, n: Notice, only: Collection[str] | None = None, /) -> Mapping[str, str]: ...


def delivered(outcome: str) -> bool:
    """One channel's recorded outcome says it got the notice (first time or on a retry)."""
    return outcome == "ok" or outcome.startswith("ok (")


def retry_notices(engine: Engine, now: datetime, p: Policy, deliver: Deliver, skip: Collection[tuple[str, str]]
                  ) -> list[tuple[Notice, dict[str, str]]]:
    """Send again, to the channels that did not take it, the newest notice of every (rule, subject) not in ``skip``
    decided in the last ``retry_minutes``; store the merged outcome. Returns what was retried and the new map."""
    out: list[tuple[Notice, dict[str, str]]] = []
    for r in q.undelivered(engine, now - timedelta(minutes=p.retry_minutes)).iter_rows(named=True):
        if (r["rule"], r["subject"]) in skip:
            continue
        before: dict[str, str] = json.loads(r["delivery"])
        failed = [ch for ch, v in before.items() if not delivered(v)]
        n = Notice(r["rule"], r["subject"], r["kind"], r["at"], r["message"], r["value"])
        again = deliver(n, failed)
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        merged = {**before, **{ch: (f"ok (retried {stamp})" if v == "ok" else v)
                               for ch, v in again.items() if ch in failed}}
        with engine.begin() as conn:
            q.set_delivery(conn, r["id"], merged)
        out.append((n, merged))
    return out


@dataclass(frozen=True)
class Evaluation:
    findings: int
    active: int
    firing: int
    flapping: int
    notices: tuple[Notice, ...]
    delivery: tuple[Mapping[str, str], ...]
    retried: tuple[tuple[Notice, Mapping[str, str]], ...] = ()


def evaluate_once(engine: Engine, now: datetime, p: Policy, deliver: Deliver,
                  silences: Sequence[Silence] = ()) -> Evaluation:
    """Gather, evaluate against the stored state, deliver each notice (not the silenced ones), store states and
    history, retry earlier notices some channel did not take."""
    found = findings(gather(engine, now, p), p)
    new_states, notices = evaluate(load_states(engine), found, now, p)
    sent: list[Mapping[str, str]] = []
    for n in notices:
        quiet = silenced_by(n, silences, now)
        sent.append({"silenced": quiet.text} if quiet else deliver(n))
    with engine.begin() as conn:
        q.replace_states(conn, [
            {"rule": s.rule, "subject": s.subject, "active": s.active, "changed_at": s.changed_at,
             "firing": s.firing, "flapping": s.flapping, "flips": [t.isoformat() for t in s.flips],
             "value": s.value, "message": s.message, "evaluated_at": now}
            for s in new_states if worth_keeping(s)])
        for n, d in zip(notices, sent, strict=True):
            q.insert_event(conn, n.rule, n.subject, n.kind, n.at, n.message, n.value, d)
    retried = retry_notices(engine, now, p, deliver, {(n.rule, n.subject) for n in notices})
    return Evaluation(len(found), sum(1 for f in found if f.active), sum(1 for s in new_states if s.firing),
                      sum(1 for s in new_states if s.flapping), tuple(notices), tuple(sent), tuple(retried))
