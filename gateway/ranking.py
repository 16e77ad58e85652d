"""Ranking the fleet's models for one request under one policy: a pure function of measured facts.

`rank(policy, need, facts, inflight, cooling)` first drops the models that cannot or must not serve the
request, each with why (provider offline, wrong endpoint, cloud under a local-only policy, context window
too small, host under a fleet lease, cooling down after failures, last canary failed, below the quality
floor, over a latency limit), then orders the rest by the policy's objective:

* **quality** — per suite of the policy, the model's headline score over the best score among the
  candidates (1.0 = best here, 0 = not evaluated), averaged over the suites;
* **speed** — the fastest candidate's expected time over this one's (1.0 = fastest). The expected time is
  the measured time for this request's size (prompt tokens at the measured prefill rate, max_tokens at the
  measured time per output token), plus the measured load time when the model is cold (residency, unless
  the policy turns it off), plus one expected request time per request the gateway has in flight on it,
  plus, for a cold model, the requests in flight on the host's other models (llama-swap lets them finish
  before it swaps; each counted at its model's median end-to-end time);
* **energy** — the lowest measured joules per token among the candidates over this one's (0 = not measured).

The score is the weighted mean of the three. Ties (scores equal to 1e-9) go to the loaded model, then to
the shorter expected time, then to the ``provider/model`` key in alphabetical order, so the same facts
always give the same order.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gateway.facts import FleetFacts, ModelFacts, Speed
from gateway.policies import HEADLINE_METRICS, WEIGHTS, Policy

DEFAULT_MAX_TOKENS = 512  # what a request that does not say max_tokens is ranked for
ASSUMED_LOAD_MS = 30_000.0  # a cold model's load time when no load of any model was ever measured
_EPS = 1e-9


@dataclass(frozen=True)
class Need:
    endpoint: str  # chat | completions | embeddings
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class Candidate:
    provider_id: str
    model_id: str
    score: float
    factors: dict[str, float]
    reasons: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.provider_id}/{self.model_id}"


@dataclass(frozen=True)
class Ranking:
    policy: str
    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[str, str], ...]  # ("provider/model", why)

    @property
    def pick(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def _pct(values: Mapping[str, float], pct: str) -> float | None:
    v = values.get(pct)
    return float(v) if v is not None else None


def _latency(speed: Speed, metric: str, pct: str) -> float | None:
    return _pct({"ttft": speed.ttft_ms, "tpot": speed.tpot_ms, "e2e": speed.e2e_ms}[metric], pct)


def _fmt_ms(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 10_000 else f"{ms:,.0f} ms"


def skip_reason(policy: Policy, need: Need, m: ModelFacts, cooling: Collection[str]) -> str | None:
    """Why ``m`` may not serve ``need`` under ``policy``; None when it may."""
    if not m.provider_online:
        return f"provider {m.provider_id} is offline"
    wanted = {need.endpoint} | ({policy.capability} if policy.capability else set())
    missing = sorted(wanted - m.endpoints)
    if missing:
        return f"does not serve {', '.join(missing)} (serves {', '.join(sorted(m.endpoints))})"
    if policy.local_only and not m.local:
        return "cloud provider, and the policy is local-only"
    needed = need.prompt_tokens + need.max_tokens
    window = max(needed, policy.min_context)
    if m.context_length is not None and m.context_length < window:
        if window > needed:
            return f"context window {m.context_length:,} < {window:,} the policy requires"
        return f"context window {m.context_length:,} < {needed:,} tokens needed (prompt + max_tokens)"
    if m.context_length is None and policy.min_context > 0:
        return f"context window not known, the policy requires {policy.min_context:,}"
    if m.lease is not None:
        return f"host under a fleet lease: {m.lease}"
    if m.key in cooling:
        return "cooling down after recent failures"
    if m.canary_ok is False:
        return "its last canary failed"
    if policy.quality_floor is not None:
        qf = policy.quality_floor
        v = m.quality.get(qf.suite, {}).get(qf.metric)
        if v is None:
            return f"no {qf.suite} {qf.metric} score (the policy's floor is {qf.min:g})"
        if v < qf.min:
            return f"{qf.suite} {qf.metric} {v:.3f} below the policy's floor {qf.min:g}"
    for lim in policy.latency:
        sp = m.speed
        v = _latency(sp, lim.metric, lim.percentile) if sp is not None else None
        if v is None:
            return f"no measured {lim.metric} {lim.percentile} (the policy's limit is {lim.max_ms:g} ms)"
        if v > lim.max_ms:
            return f"{lim.metric} {lim.percentile} {v:,.0f} ms over the policy's limit {lim.max_ms:,.0f} ms"
    return None


def request_ms(speed: Speed | None, need: Need) -> float | None:
    """Expected time of ``need`` on a loaded, idle model with ``speed``: prefill + decode at p50."""
    if speed is None:
        return None
    if speed.prefill_tps:
        prefill = need.prompt_tokens / speed.prefill_tps * 1000
    else:
        ttft = _pct(speed.ttft_ms, "p50")
        if ttft is None:
            return None
        prefill = ttft
    if need.endpoint == "embeddings":
        return prefill
    tpot = _pct(speed.tpot_ms, "p50")
    if tpot is None:
        gen = _pct(speed.gen_tps, "p50")
        if not gen:
            return None
        tpot = 1000 / gen
    return prefill + need.max_tokens * tpot


@dataclass(frozen=True)
class _Timing:
    base: float | None  # expected time on a loaded, idle model; None without a measured speed
    cold: float  # load time paid (0 when loaded or not counted)
    cold_how: str  # loaded | always | not-counted | measured | fleet | assumed
    queue: float  # time added by the requests in flight through the gateway
    inflight: int
    swap_wait: float = 0.0  # a cold model: the requests in flight on the host's other models finish first
    others_inflight: int = 0

    @property
    def expected(self) -> float | None:
        return None if self.base is None else self.base + self.cold + self.queue + self.swap_wait


def _timing(m: ModelFacts, policy: Policy, need: Need, inflight: Mapping[str, int], fleet_load: float | None,
            key: str, busy: Mapping[str, list[tuple[str, int, float | None]]]) -> _Timing:
    base = request_ms(m.speed, need)
    if m.loaded:
        cold, how = 0.0, ("loaded" if m.state == "ready" else "always")
    elif not policy.residency:
        cold, how = 0.0, "not-counted"
    elif m.load_ms is not None:
        cold, how = m.load_ms, "measured"
    elif fleet_load is not None:
        cold, how = fleet_load, "fleet"
    else:
        cold, how = ASSUMED_LOAD_MS, "assumed"
    n = int(inflight.get(key, 0))
    queue = n * base if (policy.live_load and n > 0 and base is not None) else 0.0
    swap_wait, others = 0.0, 0
    if not m.loaded and policy.live_load and base is not None:
        # llama-swap lets the requests in flight on the loaded model finish before it swaps (its default,
        # exclusive swapping): each waits about its model's median end-to-end time (this request's when unknown)
        for other, k, e2e in busy.get(m.provider_id, ()):
            if other != key:
                others += k
                swap_wait += k * (e2e if e2e is not None else base)
    return _Timing(base, cold, how, queue, n, swap_wait, others)


def _reasons(m: ModelFacts, policy: Policy, need: Need, t: _Timing, quality: float, speed: float, energy: float,
             best_q: Mapping[str, float], least_j: float | None) -> tuple[str, ...]:
    """The candidate's factors in plain words (only built for the candidates a caller asks to explain)."""
    out: list[str] = []
    if policy.weight("quality") > 0:
        words = []
        for suite in policy.quality_suites:
            metric = HEADLINE_METRICS.get(suite, "")
            v = m.quality.get(suite, {}).get(metric)
            best = best_q.get(suite)
            if v is None:
                words.append(f"{suite} not evaluated")
            else:
                words.append(f"{suite} {metric} {v:.3f} (best here {best:.3f})" if best is not None else
                             f"{suite} {metric} {v:.3f}")  # fmt: skip
        out.append(f"quality {quality:.2f}: " + "; ".join(words))
    sp = m.speed
    if t.base is None or sp is None:
        out.append("speed: not measured → speed 0")
    else:
        how = (f"prefill {sp.prefill_tps:,.0f} tok/s" if sp.prefill_tps else
               f"TTFT p50 {_fmt_ms(_pct(sp.ttft_ms, 'p50') or 0)}")  # fmt: skip
        tpot = _pct(sp.tpot_ms, "p50")
        if need.endpoint != "embeddings" and tpot is not None:
            how += f", {tpot:.1f} ms/token"
        out.append(f"speed: ~{_fmt_ms(t.base)} for {need.prompt_tokens:,} prompt + {need.max_tokens:,} output tokens "
                   f"({how}; {sp.source}) → speed {speed:.2f}")
    state = m.state or "not loaded"
    out.append({
        "loaded": "residency: loaded",
        "always": "residency: always available (no loading)",
        "not-counted": f"residency: {state}, not counted by this policy",
        "measured": f"residency: {state}, +{_fmt_ms(t.cold)} measured load time",
        "fleet": f"residency: {state}, +{_fmt_ms(t.cold)} (its load time is not measured: the fleet's median)",
        "assumed": f"residency: {state}, +{_fmt_ms(t.cold)} (no load time measured anywhere: assumed)",
    }[t.cold_how])  # fmt: skip
    if t.inflight == 0:
        out.append("load: nothing in flight through the gateway")
    elif not policy.live_load:
        out.append(f"load: {t.inflight} in flight, not counted by this policy")
    elif t.base is None:
        out.append(f"load: {t.inflight} in flight through the gateway (no speed to weigh it by)")
    else:
        out.append(f"load: {t.inflight} in flight through the gateway, +{_fmt_ms(t.queue)}")
    if t.others_inflight:
        out.append(f"swap: {t.others_inflight} in flight on other models of {m.provider_id} finish first, "
                   f"+{_fmt_ms(t.swap_wait)}")
    expected = t.expected
    if expected is not None and (t.cold or t.queue or t.swap_wait):
        out.append(f"expected in all ~{_fmt_ms(expected)}")
    if policy.weight("energy") > 0:
        if m.j_per_token:
            out.append(f"energy {energy:.2f}: {m.j_per_token:.3g} J/token"
                       + (f" (least here {least_j:.3g})" if least_j is not None else ""))  # fmt: skip
        else:
            out.append("energy 0: joules per token not measured")
    return tuple(out)


def rank(
    policy: Policy, need: Need, facts: FleetFacts, inflight: Mapping[str, int], cooling: Collection[str],
    explain: int | None = None,
) -> Ranking:
    """Rank ``facts`` for ``need`` under ``policy``. ``explain`` limits the plain-word reasons to the first N
    candidates (the ones a caller will try); the rest get none. None (default) explains every candidate."""
    cooling = cooling if isinstance(cooling, set | frozenset) else frozenset(cooling)
    skipped: list[tuple[str, str]] = []
    ok: list[tuple[str, ModelFacts]] = []
    for m in sorted(facts.models, key=lambda m: m.key):
        why = skip_reason(policy, need, m, cooling)
        if why is None:
            ok.append((m.key, m))
        else:
            skipped.append((m.key, why))
    measured_loads = [m.load_ms for m in facts.models if m.load_ms is not None]
    fleet_load = statistics.median(measured_loads) if measured_loads else None
    by_key = {m.key: m for m in facts.models}
    busy: dict[str, list[tuple[str, int, float | None]]] = {}
    for k, n_in in sorted(inflight.items()):
        mo = by_key.get(k)
        if mo is not None and n_in > 0:
            sp = mo.speed
            busy.setdefault(mo.provider_id, []).append((k, int(n_in), _pct(sp.e2e_ms, "p50") if sp else None))
    timings = [_timing(m, policy, need, inflight, fleet_load, key, busy) for key, m in ok]
    known = [e for t in timings if (e := t.expected) is not None]
    fastest = min(known) if known else None
    best_q: dict[str, float] = {}
    for suite in policy.quality_suites:
        metric = HEADLINE_METRICS.get(suite, "")
        present = [v for _, m in ok if (v := m.quality.get(suite, {}).get(metric)) is not None]
        if present:
            best_q[suite] = max(present)
    energies = [m.j_per_token for _, m in ok if m.j_per_token]
    least_j = min(energies) if energies else None
    wq, ws, we = (policy.weight(f) for f in WEIGHTS)
    wsum = (wq + ws + we) or 1.0

    rows: list[tuple[tuple[int, bool, float, str], ModelFacts, _Timing, float, float, float, float]] = []
    for (key, m), t in zip(ok, timings, strict=True):
        expected = t.expected
        speed = (fastest / expected) if (expected and fastest is not None) else (1.0 if expected == 0 else 0.0)
        q_parts = []
        for suite in policy.quality_suites:
            v = m.quality.get(suite, {}).get(HEADLINE_METRICS.get(suite, ""))
            best = best_q.get(suite)
            q_parts.append(v / best if (v is not None and best) else 0.0)
        quality = sum(q_parts) / len(q_parts) if q_parts else 0.0
        energy = (least_j / m.j_per_token) if (least_j is not None and m.j_per_token) else 0.0
        score = (wq * quality + ws * speed + we * energy) / wsum
        order = (-round(score / _EPS), not m.loaded, expected if expected is not None else float("inf"), key)
        rows.append((order, m, t, score, quality, speed, energy))
    rows.sort(key=lambda r: r[0])
    out: list[Candidate] = []
    for i, (_, m, t, score, quality, speed, energy) in enumerate(rows):
        factors = {"quality": round(quality, 6), "speed": round(speed, 6), "energy": round(energy, 6),
                   "cold_ms": round(t.cold, 3), "queue_ms": round(t.queue + t.swap_wait, 3),
                   "inflight": float(t.inflight)}  # fmt: skip
        if t.expected is not None:
            factors["expected_ms"] = round(t.expected, 3)
        words = (_reasons(m, policy, need, t, quality, speed, energy, best_q, least_j)
                 if explain is None or i < explain else ())  # fmt: skip
        out.append(Candidate(m.provider_id, m.model_id, round(score, 6), factors, words))
    return Ranking(policy.name, tuple(out), tuple(skipped))
