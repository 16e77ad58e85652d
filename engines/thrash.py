"""Swap-thrash analytics: where the fleet spends its GPUs loading models instead of serving them.

Pure functions over what the connector already stores (``model_transitions``, ``activity``, warm actions, the
gateway's consumer attribution); ``warehouse.queries.thrash`` reads them, the Thrash page, the digest and the
alert rule show the results. No I/O here.

Definitions (each one is what the tests pin down with exact numbers):

* **Load**: a model entering ``starting`` (its time to the next ``ready`` is its *load time*; a ``starting``
  followed by ``stopped`` is a *failed* load, its time to ``stopped`` counted as lost), or a model reaching
  ``ready`` straight from ``stopped`` (llama-swap may skip the short ``starting`` push: a load with no measured
  time). A load belongs to the window its start falls in.
* **Eviction**: a model leaving ``ready`` (to ``stopping`` or ``stopped``) at most ``evict_window_s`` before
  (or while) another model of the same host starts loading: the loading model evicted it (llama-swap stops
  the running member of a swap group first, then starts the new one). Each unload is given to at most one
  load, the first one starting after it.
* **Ping-pong**: in a pair of models of one host, an eviction that reverses the pair's previous eviction
  (A evicted B, then B evicts A) within ``pingpong_window_s``. A pair's ``reversals`` counts them.
* **Loading vs serving**: loading time is the union of load intervals; serving time the union of request
  intervals (``finished_at - duration_ms`` .. ``finished_at``) minus loading time (a request that waited for
  its model includes the load in its duration), both clipped to the window.
* **Trigger**: the request for the loading model that was already waiting when the load started (it started
  at most ``trigger_tolerance_s`` after the load began and finished after the model was ready), the earliest
  such; else a warm action of the model running at that time; else unknown. Its *consumer* is the gateway's
  attribution of that request when the gateway served it (same provider/model, started within
  ``trigger_tolerance_s``), else the request's own consumer hint (its capture's ``X-Session-Id`` or
  ``User-Agent``), else ``unknown``.
* **GPU time lost**: the sum of load times (measured), plus for loads without a measured time the model's
  median measured load time (estimated, reported apart), plus the time of failed loads.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from warehouse.queries import thrash as q
from warehouse.queries._frames import Db

_ORDER = {"starting": 1, "ready": 2, "stopping": 3, "stopped": 4}
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Transition:
    provider_id: str
    model_id: str
    at: datetime
    to_state: str


@dataclass(frozen=True)
class Request:
    provider_id: str
    model_id: str
    finished_at: datetime
    duration_ms: int
    upstream_id: int | None = None
    consumer: str | None = None  # a hint from the request itself (capture headers), when known

    @property
    def started_at(self) -> datetime:
        return self.finished_at - timedelta(milliseconds=max(self.duration_ms, 0))


@dataclass(frozen=True)
class Warm:
    """A warm action (the cockpit's or the CLI's) that ran on a host."""

    provider_id: str
    model_id: str
    action_id: int
    started_at: datetime
    finished_at: datetime | None
    requested_by: str | None = None


@dataclass(frozen=True)
class Attribution:
    """Who asked, as the gateway recorded it: one request it sent to provider/model at ``started_at``."""

    provider_id: str
    model_id: str
    started_at: datetime
    consumer: str


@dataclass
class Load:
    provider_id: str
    model_id: str
    started_at: datetime
    ready_at: datetime | None  # None: failed (or still loading at the end of the data)
    ended_at: datetime  # ready, stopped (failed) or the start itself when nothing followed
    failed: bool
    measured: bool  # the load time is known (started from `starting`)
    evicted: list[str] = field(default_factory=list)
    trigger: str = UNKNOWN  # "request 42", "action #7 warm", "unknown"
    consumer: str = UNKNOWN

    @property
    def load_s(self) -> float | None:
        if not self.measured:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Eviction:
    provider_id: str
    evictor: str
    victim: str
    at: datetime  # when the victim left ready
    load_started_at: datetime  # the evictor's load that did it


@dataclass(frozen=True)
class PingPong:
    provider_id: str
    model_a: str  # a < b
    model_b: str
    a_evicted_b: int
    b_evicted_a: int
    reversals: int
    gpu_s_lost: float  # load time of the loads that did these evictions (measured or estimated)
    last_at: datetime


@dataclass(frozen=True)
class HostThrash:
    provider_id: str
    loads: int
    failed_loads: int
    loads_per_hour: float  # over the window
    loading_s: float
    serving_s: float
    loading_share: float | None  # loading / (loading + serving); None when neither happened
    gpu_s_lost: float  # measured + failed
    gpu_s_lost_estimated: float  # loads without a measured time, at their model's median
    evictions: int


@dataclass(frozen=True)
class ThrashReport:
    start: datetime
    end: datetime
    loads: list[Load]
    evictions: list[Eviction]
    hosts: list[HostThrash]
    pairs: list[PingPong]
    hourly: list[tuple[str, datetime, int]]  # (provider, hour, loads)
    consumers: list[tuple[str, int, float]]  # (consumer, loads triggered, GPU s lost on them)


def _ordered(ts: Iterable[Transition]) -> dict[tuple[str, str], list[Transition]]:
    by: dict[tuple[str, str], list[Transition]] = defaultdict(list)
    for t in ts:
        by[(t.provider_id, t.model_id)].append(t)
    for seq in by.values():
        seq.sort(key=lambda t: (t.at, _ORDER.get(t.to_state, 9)))
    return by


def find_loads(transitions: Iterable[Transition]) -> tuple[list[Load], list[tuple[str, str, datetime]]]:
    """Every load and every unload (provider, model, left-ready time) in the transitions, in time order."""
    loads: list[Load] = []
    unloads: list[tuple[str, str, datetime]] = []
    for (pid, mid), seq in _ordered(transitions).items():
        prev: str | None = None
        open_load: Load | None = None
        for t in seq:
            st = t.to_state
            if st == prev:
                continue
            if st == "starting":
                open_load = Load(pid, mid, t.at, None, t.at, failed=False, measured=True)
                loads.append(open_load)
            elif st == "ready":
                if open_load is not None:
                    open_load.ready_at = t.at
                    open_load.ended_at = t.at
                    open_load = None
                elif prev == "stopped":
                    loads.append(Load(pid, mid, t.at, t.at, t.at, failed=False, measured=False))
            elif st in ("stopping", "stopped"):
                if open_load is not None:  # never became ready: a failed load
                    open_load.failed = True
                    open_load.ended_at = t.at
                    open_load = None
                elif prev == "ready":
                    unloads.append((pid, mid, t.at))
            prev = st
    loads.sort(key=lambda ld: (ld.started_at, ld.provider_id, ld.model_id))
    unloads.sort(key=lambda u: (u[2], u[0], u[1]))
    return loads, unloads


def attribute_evictions(loads: Sequence[Load], unloads: Sequence[tuple[str, str, datetime]],
                        evict_window_s: float) -> list[Eviction]:
    """Give each unload to the load of another model of its host that started within ``evict_window_s`` of it:
    the first one starting at or after it, else the nearest one before it (a status push can show the new
    model starting before the old one's stop)."""
    out: list[Eviction] = []
    by_host: dict[str, list[Load]] = defaultdict(list)
    for ld in loads:
        by_host[ld.provider_id].append(ld)
    window = timedelta(seconds=evict_window_s)
    for pid, mid, at in unloads:
        near = [ld for ld in by_host.get(pid, [])
                if ld.model_id != mid and abs(ld.started_at - at) <= window]
        if not near:
            continue
        ld = min(near, key=lambda x: (x.started_at < at, abs(x.started_at - at)))
        ld.evicted.append(mid)
        out.append(Eviction(pid, ld.model_id, mid, at, ld.started_at))
    out.sort(key=lambda e: (e.at, e.provider_id, e.evictor, e.victim))
    return out


def _median_load_s(loads: Iterable[Load]) -> dict[tuple[str, str], float]:
    measured: dict[tuple[str, str], list[float]] = defaultdict(list)
    for ld in loads:
        if ld.measured and not ld.failed and ld.ready_at is not None:
            measured[(ld.provider_id, ld.model_id)].append((ld.ready_at - ld.started_at).total_seconds())
    return {k: statistics.median(v) for k, v in measured.items()}


def lost_s(ld: Load, medians: dict[tuple[str, str], float]) -> tuple[float, float]:
    """(measured or failed seconds, estimated seconds) of GPU time one load took."""
    if ld.measured:
        return (ld.ended_at - ld.started_at).total_seconds(), 0.0
    return 0.0, medians.get((ld.provider_id, ld.model_id), 0.0)


def ping_pong_pairs(evictions: Sequence[Eviction], loads: Sequence[Load], pingpong_window_s: float,
                    medians: dict[tuple[str, str], float]) -> list[PingPong]:
    """Pairs of models of one host that evicted each other, with how often the direction reversed in time."""
    load_at = {(ld.provider_id, ld.model_id, ld.started_at): ld for ld in loads}
    by_pair: dict[tuple[str, str, str], list[Eviction]] = defaultdict(list)
    for e in evictions:
        a, b = sorted((e.evictor, e.victim))
        by_pair[(e.provider_id, a, b)].append(e)
    window = timedelta(seconds=pingpong_window_s)
    out: list[PingPong] = []
    for (pid, a, b), evs in by_pair.items():
        evs.sort(key=lambda e: e.at)
        ab = sum(1 for e in evs if e.evictor == a)
        ba = len(evs) - ab
        if not ab or not ba:
            continue
        reversals = sum(1 for prev, cur in zip(evs, evs[1:], strict=False)
                        if cur.evictor == prev.victim and cur.at - prev.at <= window)
        gpu = 0.0
        for e in evs:
            ld = load_at.get((e.provider_id, e.evictor, e.load_started_at))
            if ld is not None:
                m, est = lost_s(ld, medians)
                gpu += m + est
        out.append(PingPong(pid, a, b, ab, ba, reversals, round(gpu, 6), evs[-1].at))
    out.sort(key=lambda p: (-p.reversals, -(p.a_evicted_b + p.b_evicted_a), p.provider_id, p.model_a, p.model_b))
    return out


def _union(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _clip(intervals: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
          ) -> list[tuple[datetime, datetime]]:
    return [(max(s, start), min(e, end)) for s, e in intervals if e > start and s < end]


def _length_s(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    return sum((e - s).total_seconds() for s, e in intervals)


def _minus(a: list[tuple[datetime, datetime]], b: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Merged intervals ``a`` without merged intervals ``b``."""
    out: list[tuple[datetime, datetime]] = []
    for s, e in a:
        cur = s
        for bs, be in b:
            if be <= cur or bs >= e:
                continue
            if bs > cur:
                out.append((cur, bs))
            cur = max(cur, be)
            if cur >= e:
                break
        if cur < e:
            out.append((cur, e))
    return out


def loading_and_serving(loads: Sequence[Load], requests: Sequence[Request], start: datetime, end: datetime
                        ) -> tuple[float, float]:
    """(loading seconds, serving seconds) of one host in ``[start, end)``."""
    loading = _clip(_union((ld.started_at, ld.ended_at) for ld in loads), start, end)
    serving = _clip(_union((r.started_at, r.finished_at) for r in requests), start, end)
    return _length_s(loading), _length_s(_minus(serving, loading))


def assign_triggers(loads: Sequence[Load], requests: Sequence[Request], warms: Sequence[Warm],
                    attributions: Sequence[Attribution], tolerance_s: float) -> None:
    """Set each load's ``trigger`` and ``consumer`` (see the module doc)."""
    tol = timedelta(seconds=tolerance_s)
    reqs: dict[tuple[str, str], list[Request]] = defaultdict(list)
    for r in requests:
        reqs[(r.provider_id, r.model_id)].append(r)
    for lst in reqs.values():
        lst.sort(key=lambda r: (r.started_at, r.upstream_id or 0))
    attrs: dict[tuple[str, str], list[Attribution]] = defaultdict(list)
    for a in attributions:
        attrs[(a.provider_id, a.model_id)].append(a)
    used: set[int] = set()
    for ld in loads:
        key = (ld.provider_id, ld.model_id)
        done_at = ld.ready_at or ld.ended_at
        for r in reqs.get(key, []):
            if id(r) in used:
                continue
            if r.started_at <= ld.started_at + tol and r.finished_at >= done_at:
                used.add(id(r))
                ld.trigger = f"request {r.upstream_id}" if r.upstream_id is not None else f"request at {r.started_at}"
                near = [a for a in attrs.get(key, []) if abs((a.started_at - r.started_at).total_seconds())
                        <= tolerance_s]
                if near:
                    best = min(near, key=lambda a: abs((a.started_at - r.started_at).total_seconds()))
                    ld.consumer = best.consumer
                elif r.consumer:
                    ld.consumer = r.consumer
                break
        else:
            for w in warms:
                if (w.provider_id, w.model_id) == key and w.started_at <= ld.started_at + tol and (
                        w.finished_at is None or w.finished_at >= ld.started_at):
                    ld.trigger = f"action #{w.action_id} warm"
                    ld.consumer = f"warm by {w.requested_by}" if w.requested_by else "warm action"
                    break


def analyze(transitions: Iterable[Transition], requests: Sequence[Request], start: datetime, end: datetime, *,
            warms: Sequence[Warm] = (), attributions: Sequence[Attribution] = (),
            evict_window_s: float = 10.0, pingpong_window_s: float = 900.0,
            trigger_tolerance_s: float = 1.0, serving_by_host: Mapping[str, float] | None = None) -> ThrashReport:
    """Everything the Thrash view shows for ``[start, end)``.

    ``transitions`` should include each model's last transition before ``start`` (the state it was in) and
    those up to a load's end after ``end``; loads are counted where they start. ``requests`` are every request
    overlapping the window, or (with ``serving_by_host``, each host's serving seconds computed elsewhere with
    the same definition) only those that may have triggered a load."""
    all_loads, unloads = find_loads(transitions)
    medians = _median_load_s(all_loads)
    all_evictions = attribute_evictions(all_loads, unloads, evict_window_s)
    loads = [ld for ld in all_loads if start <= ld.started_at < end]
    evictions = [e for e in all_evictions if start <= e.at < end]
    assign_triggers(loads, requests, warms, attributions, trigger_tolerance_s)

    hours = (end - start).total_seconds() / 3600
    served = {r.provider_id for r in requests if min(r.finished_at, end) > max(r.started_at, start)}
    hosts_ids = sorted({ld.provider_id for ld in loads} | (served if serving_by_host is None else set(serving_by_host)))
    hosts: list[HostThrash] = []
    for pid in hosts_ids:
        h_loads = [ld for ld in loads if ld.provider_id == pid]
        h_all = [ld for ld in all_loads if ld.provider_id == pid]
        h_reqs = [r for r in requests if r.provider_id == pid]
        loading, serving = loading_and_serving(h_all, h_reqs, start, end)
        if serving_by_host is not None:
            serving = serving_by_host.get(pid, 0.0)
        measured = sum(lost_s(ld, medians)[0] for ld in h_loads)
        estimated = sum(lost_s(ld, medians)[1] for ld in h_loads)
        hosts.append(HostThrash(
            provider_id=pid,
            loads=len(h_loads),
            failed_loads=sum(1 for ld in h_loads if ld.failed),
            loads_per_hour=round(len(h_loads) / hours, 6) if hours > 0 else 0.0,
            loading_s=round(loading, 6),
            serving_s=round(serving, 6),
            loading_share=round(loading / (loading + serving), 6) if loading + serving > 0 else None,
            gpu_s_lost=round(measured, 6),
            gpu_s_lost_estimated=round(estimated, 6),
            evictions=sum(1 for e in evictions if e.provider_id == pid),
        ))
    hosts.sort(key=lambda h: (-h.loads, h.provider_id))

    hourly_count: dict[tuple[str, datetime], int] = defaultdict(int)
    for ld in loads:
        hourly_count[(ld.provider_id, ld.started_at.replace(minute=0, second=0, microsecond=0))] += 1
    hourly = sorted((p, h, n) for (p, h), n in hourly_count.items())

    by_consumer: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for ld in loads:
        m, est = lost_s(ld, medians)
        by_consumer[ld.consumer][0] += 1
        by_consumer[ld.consumer][1] += m + est
    consumers = sorted(((c, int(v[0]), round(v[1], 6)) for c, v in by_consumer.items()),
                       key=lambda x: (-x[1], x[0]))
    return ThrashReport(start, end, loads, evictions, hosts,
                        ping_pong_pairs(evictions, all_loads, pingpong_window_s, medians), hourly, consumers)


@dataclass(frozen=True)
class LoadEta:
    median_s: float
    p90_s: float
    samples: int

    def describe(self) -> str:
        """``~3.0 s (median of 7 loads, 90% within 5.0 s)``."""
        loads = f"{self.samples} load{'s' if self.samples != 1 else ''}"
        return f"~{_sec(self.median_s)} (median of {loads}, 90% within {_sec(self.p90_s)})"


def _sec(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def load_eta(load_ms: Iterable[float | None]) -> LoadEta | None:
    """How long a load of this model should take, from its measured load times (ms; unmeasured skipped):
    the median and the 90th percentile (nearest rank). None with no measured load."""
    known = sorted(float(v) for v in load_ms if v is not None and v >= 0)
    if not known:
        return None
    p90 = known[max(math.ceil(0.9 * len(known)) - 1, 0)]
    return LoadEta(statistics.median(known) / 1000, p90 / 1000, len(known))


def thrash_report(db: Db, start: datetime, end: datetime, provider_id: str | None = None, *,
                  evict_window_s: float = 10.0, pingpong_window_s: float = 900.0,
                  trigger_tolerance_s: float = 1.0) -> ThrashReport:
    """`analyze` over what the warehouse holds for ``[start, end)`` (one host, or the fleet)."""
    trans = [Transition(r["provider_id"], r["model_id"], r["observed_at"], r["to_state"])
             for r in q.transitions(db, start, end, provider_id).iter_rows(named=True)]
    reqs = [Request(r["provider_id"], r["model_id"], r["finished_at"], int(r["duration_ms"]), r["upstream_id"],
                    r["consumer"])
            for r in q.trigger_candidates(db, start, end, provider_id, trigger_tolerance_s).iter_rows(named=True)]
    serving = {r["provider_id"]: float(r["serving_s"])
               for r in q.serving_seconds(db, start, end, provider_id).iter_rows(named=True)}
    warm_rows = [Warm(r["provider_id"], r["model_id"], int(r["id"]), r["started_at"], r["finished_at"],
                      r["requested_by"])
                 for r in q.warms(db, start, end).iter_rows(named=True)
                 if provider_id is None or r["provider_id"] == provider_id]
    attrs = [Attribution(r["provider_id"], r["model_id"], r["started_at"], r["consumer"])
             for r in q.attributions(db, start, end).iter_rows(named=True)
             if provider_id is None or r["provider_id"] == provider_id]
    return analyze(trans, reqs, start, end, warms=warm_rows, attributions=attrs, evict_window_s=evict_window_s,
                   pingpong_window_s=pingpong_window_s, trigger_tolerance_s=trigger_tolerance_s,
                   serving_by_host=serving)
