"""Energy per generated token from the host's GPU power samples.

llama-swap samples GPU board power every ``performance.every`` (≥ 5 s) and keeps one hour of samples
(``/api/performance`` → ``gpu_stats[].power_draw_w``). For a time window [start, end]:

* the total power P(t) (sum over GPUs per sample instant) is taken as piecewise linear between
  samples and constant before the first / after the last sample;
* energy E = ∫ P(t) dt over [start, end] (exact integral of that piecewise-linear function);
* J/token = E / generated tokens in the window.

It is **gross** board energy: idle draw during the window is included. ``idle_w`` (mean power in the
samples before the run started) is stored too, so net J/token = (E − idle_w·(end − start)) / tokens
can be derived. With 5 s sampling the estimate needs windows several samples long; windows with
fewer than ``min_samples`` samples inside [start − every, end + every] get no figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EnergyEstimate:
    joules: float
    samples: int
    mean_w: float

    def per_token(self, tokens: int) -> float | None:
        return self.joules / tokens if tokens > 0 else None


def _power_at(series: Sequence[tuple[float, float]], t: float) -> float:
    if t <= series[0][0]:
        return series[0][1]
    if t >= series[-1][0]:
        return series[-1][1]
    for (t0, p0), (t1, p1) in zip(series, series[1:], strict=False):
        if t0 <= t <= t1:
            return p0 if t1 == t0 else p0 + (p1 - p0) * (t - t0) / (t1 - t0)
    return series[-1][1]  # pragma: no cover


def integrate_power(
    series: Sequence[tuple[float, float]],
    start: float,
    end: float,
    every_s: float = 5.0,
    min_samples: int = 2,
) -> EnergyEstimate | None:
    """∫ P dt over [start, end] (seconds since the epoch, watts) or None when too few samples."""
    if end <= start:
        return None
    pts = sorted(series)
    near = [p for p in pts if start - every_s <= p[0] <= end + every_s]
    if len(near) < min_samples:
        return None
    knots = [start] + [t for t, _ in pts if start < t < end] + [end]
    joules = 0.0
    for a, b in zip(knots, knots[1:], strict=False):
        joules += (_power_at(pts, a) + _power_at(pts, b)) / 2.0 * (b - a)
    return EnergyEstimate(joules=joules, samples=len(near), mean_w=joules / (end - start))


def idle_power(series: Sequence[tuple[float, float]], before: float, window_s: float = 60.0) -> float | None:
    """Mean power over the samples in the ``window_s`` seconds before ``before`` (the pre-run idle)."""
    xs = [w for t, w in series if before - window_s <= t < before]
    return sum(xs) / len(xs) if xs else None
