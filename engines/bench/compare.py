"""Comparing runs: baselines with a noise band, drift flags, and the Pareto front.

**Baseline.** For a provider/model, one or more runs are marked as the baseline (repeat the same
sweep a few times to measure run-to-run noise). Runs are compared point by point at the same
(mode, level) — only between runs with the same workload key (same mode, lengths, request counts).

**Noise band.** For each point and metric, over the baseline runs' values x₁…xₙ:
``center = median(x)``, ``tolerance = max(k · 1.4826 · MAD(x), rel_floor · |center|)`` with
``k = 3`` and ``rel_floor = 5 %``. 1.4826·MAD estimates the standard deviation robustly; with a single
baseline run MAD is 0 and the fixed 5 % tolerance applies.

**Drift.** A run is *slower* when, at any common point, a higher-is-worse metric (p50 TPOT, p50
TTFT) exceeds ``center + tolerance`` or a lower-is-worse metric (output tokens/s) falls below
``center − tolerance``. The flag names the point and metric with the largest relative excess.

**Actual lengths.** A workload key says what was asked for; `lengths_differ` checks what was sent: two
runs' points are comparable only when their actual prompt-length distributions (from ``usage``) match.

**Pareto (quality-free).** Over sweep points, a point is Pareto-optimal when no other point has both
higher-or-equal throughput and lower-or-equal latency with at least one strict.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engines.bench.metrics import percentile

HIGHER_IS_WORSE: tuple[str, ...] = ("tpot_p50_ms", "ttft_p50_ms")
LOWER_IS_WORSE: tuple[str, ...] = ("output_throughput",)


def median(xs: Sequence[float]) -> float:
    return percentile(xs, 50)


def mad(xs: Sequence[float]) -> float:
    m = median(xs)
    return median([abs(x - m) for x in xs])


@dataclass(frozen=True)
class Band:
    center: float
    tolerance: float
    runs: int

    @property
    def low(self) -> float:
        return self.center - self.tolerance

    @property
    def high(self) -> float:
        return self.center + self.tolerance


def noise_band(values: Sequence[float], k: float = 3.0, rel_floor: float = 0.05) -> Band:
    if not values:
        raise ValueError("a noise band needs at least one baseline value")
    c = median(values)
    return Band(center=c, tolerance=max(k * 1.4826 * mad(values), rel_floor * abs(c)), runs=len(values))


PointKey = tuple[str, float]  # (mode, level)


def baseline_bands(
    runs: Sequence[Mapping[PointKey, Mapping[str, float | None]]],
    metrics: Sequence[str] = HIGHER_IS_WORSE + LOWER_IS_WORSE,
    k: float = 3.0,
    rel_floor: float = 0.05,
) -> dict[tuple[PointKey, str], Band]:
    """Bands per (point, metric) from the baseline runs' point metrics."""
    values: dict[tuple[PointKey, str], list[float]] = {}
    for run in runs:
        for key, m in run.items():
            for name in metrics:
                v = m.get(name)
                if v is not None:
                    values.setdefault((key, name), []).append(float(v))
    return {kk: noise_band(vs, k, rel_floor) for kk, vs in values.items()}


@dataclass(frozen=True)
class Drift:
    slower: bool
    compared_points: int
    worst: str | None = None  # "concurrency=4 tpot_p50_ms +12.3% (band ±5.0%)"
    worst_excess: float = 0.0  # relative excess beyond the band edge, as a fraction of the center

    @property
    def comparable(self) -> bool:
        return self.compared_points > 0


def detect_drift(
    run: Mapping[PointKey, Mapping[str, float | None]],
    bands: Mapping[tuple[PointKey, str], Band],
) -> Drift:
    compared: set[PointKey] = set()
    worst: tuple[float, str] | None = None
    for (key, name), band in bands.items():
        if key not in run:
            continue
        v = run[key].get(name)
        if v is None:
            continue
        compared.add(key)
        if band.center == 0:
            continue
        if name in LOWER_IS_WORSE:
            excess = (band.low - v) / abs(band.center)
            delta = v / band.center - 1
        else:
            excess = (v - band.high) / abs(band.center)
            delta = v / band.center - 1
        if excess > 0 and (worst is None or excess > worst[0]):
            mode, level = key
            desc = (
                f"{mode}={level:g} {name} {delta:+.1%} vs baseline "
                f"(band ±{band.tolerance / abs(band.center):.1%}, {band.runs} run(s))"
            )
            worst = (excess, desc)
    if worst is None:
        return Drift(slower=False, compared_points=len(compared))
    return Drift(slower=True, compared_points=len(compared), worst=worst[1], worst_excess=worst[0])


def pareto_mask(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (throughput ↑, latency ↓) pairs: True where no other pair dominates."""
    out = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 >= x and y2 <= y) and (x2 > x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i
        )
        out.append(not dominated)
    return out


def group_by(items: Sequence[Mapping[str, object]], key: str) -> dict[Hashable, list[Mapping[str, object]]]:
    out: dict[Hashable, list[Mapping[str, object]]] = {}
    for it in items:
        out.setdefault(it[key], []).append(it)  # type: ignore[index]
    return out


# ------------------------------------------------------------ actual prompt lengths: same workload in fact
def lengths_differ(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> str | None:
    """Why two points' actual prompt-length distributions (``PointSummary.prompt_len`` as stored) do not match,
    or None when they match — or when either was stored before lengths were recorded (nothing to check).

    They match when the means differ by at most ``max(1 token, 3 · SE)`` and the medians by at most
    ``max(1 token, 3.75 · SE)``, with ``SE = √(sd_a²/n_a + sd_b²/n_b)`` (population sd as stored; the median's
    standard error is ≈ 1.25 × the mean's for a normal distribution). Fixed exact lengths (sd 0) must
    therefore agree within one token; calibrated "fixed" lengths that came out 243 vs 276 tokens on average
    do not match, and drawn lengths from two seeds of one distribution do (within their sampling error).
    """
    if not a or not b or not a.get("count") or not b.get("count"):
        return None
    ma, mb, sa, sb = a.get("mean"), b.get("mean"), a.get("std") or 0.0, b.get("std") or 0.0
    if ma is None or mb is None:
        return None
    se = math.sqrt(sa**2 / int(a["count"]) + sb**2 / int(b["count"]))
    if abs(ma - mb) > max(1.0, 3.0 * se):
        return f"mean prompt length {ma:.1f} vs {mb:.1f} tokens (allowed ±{max(1.0, 3.0 * se):.1f})"
    pa, pb = a.get("p50"), b.get("p50")
    if pa is not None and pb is not None and abs(pa - pb) > max(1.0, 3.75 * se):
        return f"median prompt length {pa:.1f} vs {pb:.1f} tokens (allowed ±{max(1.0, 3.75 * se):.1f})"
    return None
