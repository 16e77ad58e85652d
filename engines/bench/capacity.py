"""Capacity under SLOs: the highest concurrency (or request rate) at which a chosen percentile of TTFT and
TPOT stays within targets — the number capacity planning needs.

* A point **meets** the targets when its p‹q› TTFT ≤ ``ttft_ms`` and its p‹q› TPOT ≤ ``tpot_ms`` (either
  target may be unset) and no request failed.
* **Search** (`search`): measure the lowest and the highest level; if the lowest already fails there is no
  capacity, if the highest passes the capacity is at least that level ("not reached"). Otherwise bisect
  between the highest passing and the lowest failing level until they are adjacent (concurrency: whole
  numbers) or within ``rel_tol`` of each other (rates), at most ``max_points`` measured points.
* **Interpolation** (`capacity`): between the highest passing level L₁ and the next, failing level L₂, each
  violated percentile is interpolated linearly in the level, and the capacity is the smallest level where
  one of them reaches its target: ``L₁ + (target − m₁) / (m₂ − m₁) · (L₂ − L₁)``. The measured points it
  rests on are returned with it, each with its goodput (requests per second that met the run's SLOs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass

from engines.bench.metrics import PointSummary

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class SloTargets:
    percentile: int = 95
    ttft_ms: float | None = None
    tpot_ms: float | None = None

    def __post_init__(self) -> None:
        if self.percentile not in PERCENTILES:
            raise ValueError(f"percentile must be one of {PERCENTILES}, got {self.percentile}")
        if self.ttft_ms is None and self.tpot_ms is None:
            raise ValueError("set a TTFT or a TPOT target")

    def metrics(self) -> dict[str, float]:
        out = {}
        if self.ttft_ms is not None:
            out["ttft_ms"] = self.ttft_ms
        if self.tpot_ms is not None:
            out["tpot_ms"] = self.tpot_ms
        return out


@dataclass(frozen=True)
class CapacityPoint:
    level: float
    values: dict[str, float | None]  # the chosen percentile of ttft_ms / tpot_ms
    failed: int
    goodput: float
    goodput_ratio: float | None
    meets: bool


def capacity_point(level: float, s: PointSummary, targets: SloTargets) -> CapacityPoint:
    values: dict[str, float | None] = {}
    ok = s.failed == 0 and s.completed > 0
    for metric, target in targets.metrics().items():
        v = getattr(getattr(s, metric), f"p{targets.percentile}")
        values[metric] = v
        if v is None or v > target:
            ok = False
    return CapacityPoint(float(level), values, s.failed, s.goodput, s.goodput_ratio, ok)


@dataclass(frozen=True)
class Capacity:
    targets: SloTargets
    points: tuple[CapacityPoint, ...]  # in level order
    highest_passing: float | None
    lowest_failing: float | None
    interpolated: float | None  # None: nothing passed; == highest_passing when no failing level above it
    limited_by: str | None  # the metric whose crossing set the interpolated capacity

    @property
    def reached(self) -> bool:
        """False when even the highest measured level met the targets (the capacity is at least that)."""
        return self.lowest_failing is not None

    def describe(self) -> str:
        t = self.targets
        what = " and ".join(f"p{t.percentile} {m.split('_')[0].upper()} ≤ {v:g} ms" for m, v in t.metrics().items())
        if self.highest_passing is None:
            return f"no measured level meets {what}"
        if not self.reached:
            return f"≥ {self.highest_passing:g} (every measured level meets {what})"
        return (
            f"{self.interpolated:.2f} (interpolated; measured: {self.highest_passing:g} meets, "
            f"{self.lowest_failing:g} fails on {self.limited_by}) for {what}"
        )


def capacity(points: Sequence[CapacityPoint], targets: SloTargets) -> Capacity:
    pts = tuple(sorted(points, key=lambda p: p.level))
    first_fail = next((i for i, p in enumerate(pts) if not p.meets), None)
    if first_fail == 0:
        return Capacity(targets, pts, None, pts[0].level, None, None)
    if first_fail is None:
        top = pts[-1].level if pts else None
        return Capacity(targets, pts, top, None, top, None)
    lo, hi = pts[first_fail - 1], pts[first_fail]
    best: tuple[float, str] | None = None
    for metric, target in targets.metrics().items():
        m1, m2 = lo.values.get(metric), hi.values.get(metric)
        if m2 is None or m2 <= target:
            continue
        if m1 is None or m2 <= m1:
            cross = lo.level
        else:
            cross = lo.level + (target - m1) / (m2 - m1) * (hi.level - lo.level)
        cross = min(max(cross, lo.level), hi.level)
        if best is None or cross < best[0]:
            best = (cross, metric)
    if best is None:  # failed on errors, not on latency: no interpolation
        best = (lo.level, "errors")
    return Capacity(targets, pts, lo.level, hi.level, best[0], best[1])


def _levels(low: float, high: float, integer: bool, rel_tol: float, max_points: int) -> Generator[float, bool, None]:
    """The bisection as a generator: yields the next level to measure, is sent whether it met the targets."""
    if not 0 < low < high:
        raise ValueError("need 0 < low < high")
    lo, hi = float(low), float(high)
    if not (yield lo):
        return
    if (yield hi):
        return
    n = 2
    while n < max_points:
        if integer:
            if hi - lo <= 1:
                return
            mid = float((int(lo) + int(hi)) // 2)
        else:
            if hi - lo <= rel_tol * hi:
                return
            mid = (lo + hi) / 2
        n += 1
        if (yield mid):
            lo = mid
        else:
            hi = mid


@dataclass(frozen=True)
class SearchBounds:
    """Where a search looks: the lowest and highest level, at most ``max_points`` measured levels, and (for
    request rates) how close the bracket must get, relative to its top."""

    low: float = 1.0
    high: float = 32.0
    max_points: int = 8
    rel_tol: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"need 0 < low < high, got low {self.low:g}, high {self.high:g}")
        if self.max_points < 2:
            raise ValueError(f"max_points must be at least 2 (the two ends), got {self.max_points}")


class _Bisection:
    """The points measured so far and the next level to measure (``None`` once the bisection is done): one
    driver for `search` and `search_sync`, which differ only in whether ``measure`` is awaited."""

    def __init__(self, targets: SloTargets, bounds: SearchBounds, integer: bool) -> None:
        self._targets = targets
        self._seen: list[CapacityPoint] = []
        self._gen = _levels(bounds.low, bounds.high, integer, bounds.rel_tol, bounds.max_points)
        self.level: float | None = next(self._gen, None)

    def record(self, summary: PointSummary) -> None:
        """Store the point just measured at ``level`` and move to the next level."""
        assert self.level is not None
        self._seen.append(capacity_point(self.level, summary, self._targets))
        try:
            self.level = self._gen.send(self._seen[-1].meets)
        except StopIteration:
            self.level = None

    def result(self) -> Capacity:
        return capacity(self._seen, self._targets)


async def search(measure: Callable[[float], Awaitable[PointSummary]], targets: SloTargets,
                 bounds: SearchBounds = SearchBounds(), *, integer: bool = True) -> Capacity:
    """Bisect for the highest level meeting ``targets``; ``measure(level)`` runs one point at that level
    (``integer``: whole levels, as concurrency is)."""
    bisection = _Bisection(targets, bounds, integer)
    while bisection.level is not None:
        bisection.record(await measure(bisection.level))
    return bisection.result()


def search_sync(measure: Callable[[float], PointSummary], targets: SloTargets,
                bounds: SearchBounds = SearchBounds(), *, integer: bool = True) -> Capacity:
    """`search` for a blocking ``measure`` (each point a stored run: `engines.bench.service.run_capacity`)."""
    bisection = _Bisection(targets, bounds, integer)
    while bisection.level is not None:
        bisection.record(measure(bisection.level))
    return bisection.result()
