"""How sure a benchmark number is: bootstrap intervals, sample-size rules, and a noise-aware plateau test.

**Bootstrap intervals.** Every reported statistic of a point (mean, p50, p90, p95, p99 of TTFT, TPOT,
ITL, E2E, …) gets a percentile-bootstrap interval: the samples are resampled with replacement
``resamples`` times (default 2000) with a fixed seed, the statistic is computed on every resample, and
the interval is the (α/2, 1 − α/2) percentile of those values (linear interpolation, default 95 %).
When every ordered resample can be enumerated (nⁿ ≤ ``resamples``) the *exact* bootstrap
distribution is used instead, so tiny fixtures can be checked by hand.

**Sample-size rules for percentiles.** Of n samples, n·(1 − q/100) lie above the q-th percentile.

* *hidden*: fewer than ``HIDE_BELOW_TAIL`` (= 1) sample above it — the figure would be an
  interpolation between the two largest values, not a percentile (p99 needs n ≥ 100, p95 n ≥ 20,
  p90 n ≥ 10);
* *warned* (``few samples``): fewer than ``WARN_BELOW_TAIL`` (= 5) samples above it (p99 below 500,
  p95 below 100, p90 below 50, p50 below 10) or, for a mean, n < ``WARN_MEAN_BELOW`` (= 10).

**Saturation under noise** (`plateau_test`): a sweep point's throughput y is compared on a log scale
with the best lower level's: ``z = (ln y − ln y_best) / √(σ² + σ_best²)`` where σ is the point's
relative noise, the larger of the measured one (the bootstrap standard error of the point's throughput)
and the policy's floor (default 0.06: this host's ±12 % run-to-run spread read as ±2σ). A step is *no gain* when z < 1.645 (the
gain is not significant at one-sided 5 %); the curve has *plateaued* when ``steps_needed`` consecutive steps
(default 2) are no gain; the knee is the best point before them. A single noisy dip is therefore never a
plateau, and the verdict is computed whether or not early stop is on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20240611
HIDE_BELOW_TAIL = 1.0
WARN_BELOW_TAIL = 5.0
WARN_MEAN_BELOW = 10
STATISTICS: tuple[str, ...] = ("mean", "p50", "p90", "p95", "p99")
Z_ONE_SIDED_95 = 1.6448536269514722


def _stat_fn(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic along the last axis: ``mean`` or ``pNN`` (numpy's linear percentile)."""
    if name == "mean":
        return lambda a: np.mean(a, axis=-1)
    if name.startswith("p") and name[1:].isdigit():
        q = float(name[1:])
        return lambda a: np.percentile(a, q, axis=-1)
    raise ValueError(f"unknown statistic {name!r}")


def tail_samples(n: int, stat: str) -> float:
    """How many of ``n`` samples lie above the statistic's percentile (``inf`` for the mean)."""
    if stat == "mean":
        return math.inf
    return n * (1.0 - float(stat[1:]) / 100.0)


def is_hidden(n: int, stat: str) -> bool:
    return n == 0 or tail_samples(n, stat) < HIDE_BELOW_TAIL - 1e-9


def few_samples(n: int, stat: str) -> bool:
    if stat == "mean":
        return n < WARN_MEAN_BELOW
    return tail_samples(n, stat) < WARN_BELOW_TAIL - 1e-9


def bootstrap_distribution(
    values: Sequence[float], stat: str, resamples: int = RESAMPLES, seed: int = SEED
) -> np.ndarray:
    """The statistic over every bootstrap resample: exact enumeration when nⁿ ≤ ``resamples``, else
    ``resamples`` seeded draws."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("bootstrap of an empty sample")
    fn = _stat_fn(stat)
    if n**n <= resamples:
        idx = np.array(list(itertools.product(range(n), repeat=n)), dtype=np.intp)
    else:
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    out: np.ndarray = fn(x[idx])
    return out


@dataclass(frozen=True)
class Estimate:
    """One statistic with its interval; ``hidden`` figures carry no value, ``warning`` says why to doubt."""

    stat: str
    n: int
    value: float | None
    low: float | None
    high: float | None
    hidden: bool = False
    warning: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "hidden": self.hidden,
            "warning": self.warning,
        }


def estimate(
    values: Sequence[float],
    stat: str,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Estimate:
    """``stat`` of ``values`` with its percentile-bootstrap interval and the sample-size rules applied."""
    n = len(values)
    if is_hidden(n, stat):
        why = "no samples" if n == 0 else f"hidden: {n} samples, fewer than 1 above {stat}"
        return Estimate(stat, n, None, None, None, hidden=True, warning=why)
    x = np.asarray(values, dtype=float)
    value = float(_stat_fn(stat)(x))
    dist = bootstrap_distribution(values, stat, resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.percentile(dist, [100 * alpha, 100 * (1 - alpha)]))
    warning = None
    if few_samples(n, stat):
        warning = f"few samples: {n}" + ("" if stat == "mean" else f" ({tail_samples(n, stat):.1f} above {stat})")
    return Estimate(stat, n, value, low, high, warning=warning)


def intervals(
    values: Sequence[float],
    scale: float = 1.0,
    stats: Sequence[str] = STATISTICS,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, dict[str, object]]:
    """Every statistic of one metric with its interval, as stored in a point's summary. Same numbers as
    `estimate` per statistic; the resamples are drawn once and shared by all statistics."""
    x = np.asarray([float(v) * scale for v in values], dtype=float)
    n = len(x)
    out: dict[str, dict[str, object]] = {}
    if n == 0:
        return {s: estimate([], s).as_dict() for s in stats}
    if n**n <= resamples:
        idx = np.array(list(itertools.product(range(n), repeat=n)), dtype=np.intp)
    else:
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    boot = np.sort(x[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    for s in stats:
        if is_hidden(n, s):
            out[s] = estimate(x.tolist(), s).as_dict()
            continue
        fn = _stat_fn(s)
        dist = fn(boot)
        low, high = (float(v) for v in np.percentile(dist, [100 * alpha, 100 * (1 - alpha)]))
        warning = None
        if few_samples(n, s):
            warning = f"few samples: {n}" + ("" if s == "mean" else f" ({tail_samples(n, s):.1f} above {s})")
        out[s] = Estimate(s, n, float(fn(x)), low, high, warning=warning).as_dict()
    return out


def relative_se_of_ratio(numerators: Sequence[float], denominators: Sequence[float], seed: int = SEED) -> float | None:
    """Bootstrap relative standard error of Σnum / Σden over paired samples (requests): the measured
    within-point noise of a throughput."""
    num = np.asarray(numerators, dtype=float)
    den = np.asarray(denominators, dtype=float)
    n = len(num)
    if n < 2 or den.sum() <= 0 or num.sum() <= 0:
        return None
    idx = np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))
    d = den[idx].sum(axis=1)
    ratios = num[idx].sum(axis=1) / np.where(d > 0, d, np.nan)
    ratios = ratios[np.isfinite(ratios)]
    point = num.sum() / den.sum()
    return float(np.std(ratios) / point) if len(ratios) > 1 else None


@dataclass(frozen=True)
class PlateauStep:
    index: int
    gain: float | None  # relative gain over the best lower level
    z: float | None
    no_gain: bool


@dataclass(frozen=True)
class PlateauVerdict:
    plateau: bool
    knee: int | None  # index of the best point before the run of no-gain steps
    at: int | None  # index of the point at which the plateau was confirmed
    steps: tuple[PlateauStep, ...]

    @property
    def reason(self) -> str | None:
        if not self.plateau or self.at is None or self.knee is None:
            return None
        run = [s for s in self.steps if s.index > self.knee and s.index <= self.at and s.no_gain]
        gains = ", ".join(f"{s.gain:+.1%} (z={s.z:.2f})" for s in run if s.gain is not None and s.z is not None)
        return (
            f"throughput plateau after sweep point #{self.knee + 1}: {len(run)} steps without a significant "
            f"gain over the best lower level: {gains}"
        )


def plateau_test(
    throughputs: Sequence[float],
    noise: Sequence[float | None],
    noise_floor: float = 0.06,
    steps_needed: int = 2,
    z_crit: float = Z_ONE_SIDED_95,
) -> PlateauVerdict:
    """The sweep's plateau verdict from its points' throughputs (in level order) and measured relative noise."""
    if len(noise) != len(throughputs):
        raise ValueError("one noise figure per point")
    sig = [max(noise_floor, s or 0.0) for s in noise]
    steps: list[PlateauStep] = []
    streak = 0
    for i, y in enumerate(throughputs):
        if i == 0:
            continue
        best = max(range(i), key=lambda j: throughputs[j])
        yb = throughputs[best]
        if yb <= 0 or y <= 0:
            gain = z = None
            no_gain = yb > 0 >= y
        else:
            gain = y / yb - 1.0
            z = (math.log(y) - math.log(yb)) / math.hypot(sig[i], sig[best])
            no_gain = z < z_crit
        steps.append(PlateauStep(i, gain, z, no_gain))
        streak = streak + 1 if no_gain else 0
        if streak >= steps_needed:
            knee = max(range(i - steps_needed + 1), key=lambda j: throughputs[j])
            return PlateauVerdict(True, knee, i, tuple(steps))
    return PlateauVerdict(False, None, None, tuple(steps))
