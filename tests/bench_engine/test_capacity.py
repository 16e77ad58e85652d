"""Capacity under SLOs: interpolation on hand-made points, and the search on the instant test server with a known
latency model (per-token gap = 40 ms + 20 ms per other stream in flight)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engines.bench.capacity import CapacityPoint, SearchBounds, SloTargets, capacity, search
from engines.bench.host import OpenAIHost
from engines.bench.metrics import PointSummary, Slo
from engines.bench.runner import BenchSpec, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.workload import LengthDist, SyntheticWorkload

from . import instant_server


def pt(level: float, tpot: float, ttft: float = 5.0, failed: int = 0) -> CapacityPoint:
    t = SloTargets(95, ttft_ms=100.0, tpot_ms=30.0)
    ok = failed == 0 and tpot <= (t.tpot_ms or 0) and ttft <= (t.ttft_ms or 0)
    return CapacityPoint(level, {"ttft_ms": ttft, "tpot_ms": tpot}, failed, 1.0, 1.0, ok)


def test_interpolation_between_the_last_passing_and_first_failing_level() -> None:
    t = SloTargets(95, ttft_ms=100.0, tpot_ms=30.0)
    c = capacity([pt(8, 40.0), pt(1, 10.0), pt(4, 25.0)], t)
    assert [p.level for p in c.points] == [1.0, 4.0, 8.0]
    # TPOT 25 ms at 4, 40 ms at 8: reaches 30 ms at 4 + (30 − 25) / (40 − 25) · 4 = 5.333…
    assert (c.highest_passing, c.lowest_failing, c.limited_by) == (4.0, 8.0, "tpot_ms")
    assert c.interpolated == pytest.approx(4 + 4 * 5 / 15)
    assert c.describe() == (
        "5.33 (interpolated; measured: 4 meets, 8 fails on tpot_ms) for p95 TTFT ≤ 100 ms and p95 TPOT ≤ 30 ms"
    )
    assert capacity([pt(1, 35.0), pt(2, 50.0)], t).highest_passing is None
    everything = capacity([pt(1, 10.0), pt(2, 12.0)], t)
    assert not everything.reached and everything.describe().startswith("≥ 2 (every measured level meets")
    # a level failing on errors alone: no interpolation, the capacity is the last passing level
    errs = capacity([pt(1, 10.0), pt(2, 12.0, failed=1)], t)
    assert (errs.interpolated, errs.limited_by) == (1.0, "errors")
    with pytest.raises(ValueError):
        SloTargets(97, tpot_ms=1.0)


@pytest.mark.anyio
async def test_search_on_the_instant_server_finds_the_known_capacity() -> None:
    # gap(c) = 40 + 20 · (c − 1) ms, so median TPOT stays ≤ 130 ms up to c = 1 + 90/20 = 5.5 streams.
    instant_server.STATS.update(connections=0, requests=0)
    instant_server.ACTIVE["streams"] = 0
    server = await asyncio.get_running_loop().create_server(
        lambda: instant_server.Upstream(0.040, 0.020), "127.0.0.1", 0
    )
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    targets = SloTargets(50, tpot_ms=130.0)
    measured: list[float] = []
    try:
        async with httpx.AsyncClient(timeout=30) as c:
            host = OpenAIHost(base, c)

            async def measure(level: float) -> PointSummary:
                measured.append(level)
                spec = BenchSpec(levels=(level,), requests_per_point=int(level) * 2, warmup_requests=1,
                                 workload=SyntheticWorkload(LengthDist(8), LengthDist(10)),
                                 slo=Slo(ttft_ms=None, tpot_ms=130.0), saturation=SaturationPolicy.disabled())  # fmt: skip
                out = await run_sweep(host, "instant", spec, c, confirm_takeover=True, provider_id="instant")
                return out.points[0].summary

            cap = await search(measure, targets, SearchBounds(1, 12))
    finally:
        server.close()
    # Stated tolerance: ± 1 level around the model's 5.5. The server and the client share this event loop, and on
    # this loaded 2-core machine (load 9–11) its timers lag: measured median TPOT 50 ms at 1 stream (model 40),
    # 135 at 5 (model 120), 290 at 12 (model 260) — enough to move the answer by one level, not two.
    assert measured[:3] == [1.0, 12.0, 6.0] and len(measured) <= 6  # bisection between the passing 1 and failing 12
    assert cap.highest_passing in (4.0, 5.0, 6.0) and cap.lowest_failing == (cap.highest_passing or 0) + 1
    assert cap.limited_by == "tpot_ms"
    assert cap.interpolated is not None and 4.5 <= cap.interpolated <= 6.5
    by_level = {p.level: p for p in cap.points}
    # goodput per point: at 12 streams (260 ms per token) no request met the 130 ms TPOT SLO, at 1 (40 ms) all did
    assert by_level[12.0].goodput_ratio == 0.0 and by_level[1.0].goodput_ratio == 1.0
    tpot = {lv: p.values["tpot_ms"] for lv, p in by_level.items()}
    assert 40.0 <= (tpot[1.0] or 0) < 60.0 and 260.0 <= (tpot[12.0] or 0) < 320.0
