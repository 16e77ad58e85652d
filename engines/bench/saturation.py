"""When to stop a sweep early: the server is saturated and pushing harder only builds queues.

A point is **saturated** when any of these holds (defaults in `SaturationPolicy`):

Closed loop (concurrency sweep):
* *throughput plateau*: the noise-aware test of `engines.bench.stats.plateau_test` over the sweep so far:
  ``plateau_steps`` consecutive levels (default 2) without a significant gain over the best lower
  level, where significance accounts for each point's measured noise (bootstrap standard error of its
  throughput) and at least ``noise_floor`` (default 0.06 relative standard deviation: this host's ±12 %
  run-to-run spread). A fixed "less than 5 % better" rule flagged sweeps on noise alone;
* *queueing bound*: its p50 TTFT exceeds ``ttft_p50_max_ms`` (default 10 s);
* *errors*: more than ``max_error_rate`` of its requests failed (default 5 %).

Open loop (rate sweep):
* *client cannot keep the schedule*: p90 schedule lag (send − scheduled) exceeds one mean
  inter-arrival gap (1 / rate) — the outstanding-request cap was hit, so the server is not keeping up;
* *queue growing*: median TTFT of the last third of the requests (in send order) is more than
  ``queue_growth_max`` × the median of the first third **and** at least ``queue_growth_min_ms`` larger
  (a guard against noise on millisecond TTFTs);
* the same queueing bound and error rule as above.

The verdict is **always computed**; early stop is a separate choice (``enabled``): the sweep stops after
``patience`` consecutive saturated points (default 1: stop right after the first one) only when it is on.
The saturated point itself is kept and flagged, so the knee is visible in the curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engines.bench.metrics import PointSummary, RequestRecord, percentile
from engines.bench.stats import plateau_test


@dataclass(frozen=True)
class SaturationPolicy:
    enabled: bool = True  # early stop; the verdict is computed either way
    noise_floor: float = 0.06
    plateau_steps: int = 2
    ttft_p50_max_ms: float | None = 10_000.0
    max_error_rate: float = 0.05
    queue_growth_max: float = 2.0
    queue_growth_min_ms: float = 50.0
    patience: int = 1

    @classmethod
    def disabled(cls) -> SaturationPolicy:
        """No early stop (verdicts are still computed)."""
        return cls(enabled=False)


@dataclass(frozen=True)
class Verdict:
    saturated: bool
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) or None


def _error_rate(s: PointSummary) -> float:
    done = s.completed + s.failed
    return s.failed / done if done else 0.0


def assess_closed(
    summary: PointSummary, earlier: Sequence[PointSummary], policy: SaturationPolicy
) -> Verdict:
    reasons = []
    if earlier:
        curve = [*earlier, summary]
        v = plateau_test(
            [p.output_throughput for p in curve],
            [p.throughput_rel_se for p in curve],
            noise_floor=policy.noise_floor,
            steps_needed=policy.plateau_steps,
        )
        if v.plateau:
            reasons.append(v.reason or "throughput plateau")
    reasons += _common(summary, policy)
    return Verdict(bool(reasons), tuple(reasons))


def assess_open(
    summary: PointSummary, records: Sequence[RequestRecord], rate: float, policy: SaturationPolicy
) -> Verdict:
    reasons = []
    lag = summary.schedule_lag_ms
    if lag.p90 is not None and lag.p90 > 1000.0 / rate:
        reasons.append(
            f"schedule slipping: p90 send lag {lag.p90:.0f} ms > one arrival gap ({1000.0 / rate:.0f} ms)"
        )
    ordered = sorted((r for r in records if r.ok and r.ttft is not None), key=lambda r: r.send)
    third = len(ordered) // 3
    if third >= 2:
        head = percentile([r.ttft or 0.0 for r in ordered[:third]], 50) * 1000.0
        tail = percentile([r.ttft or 0.0 for r in ordered[-third:]], 50) * 1000.0
        if tail > policy.queue_growth_max * head and tail - head >= policy.queue_growth_min_ms:
            reasons.append(
                f"queue growing: median TTFT {head:.0f} ms in the first third → {tail:.0f} ms in the last"
            )
    reasons += _common(summary, policy)
    return Verdict(bool(reasons), tuple(reasons))


def _common(summary: PointSummary, policy: SaturationPolicy) -> list[str]:
    out = []
    p50 = summary.ttft_ms.p50
    if policy.ttft_p50_max_ms is not None and p50 is not None and p50 > policy.ttft_p50_max_ms:
        out.append(f"queueing: p50 TTFT {p50:.0f} ms > {policy.ttft_p50_max_ms:.0f} ms")
    rate = _error_rate(summary)
    if rate > policy.max_error_rate:
        out.append(f"errors: {rate:.0%} of requests failed")
    return out


def should_stop(verdicts: Sequence[Verdict], policy: SaturationPolicy) -> bool:
    """True once the last ``patience`` points were all saturated."""
    if not policy.enabled or len(verdicts) < policy.patience:
        return False
    return all(v.saturated for v in verdicts[-policy.patience :])
