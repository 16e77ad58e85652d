"""Repeated points: with ``repeat_until_ci_pct`` a point is measured again (whole rounds of new requests,
pooled) while the 95 % interval of its output throughput is wider than ± that many percent, up to
``max_rounds``; the pooled point's duration is the sum of its rounds' (the pauses between them are not load)."""

from __future__ import annotations

import httpx
import pytest

from engines.bench.options import BenchOptions
from engines.bench.runner import BenchSpec, PointResult, _precise_enough, run_sweep
from engines.bench.service import point_row, request_rows
from engines.bench.workload import LengthDist, MultiTurnWorkload, SyntheticWorkload

from .fakes import ChatServer, FakeHost
from .test_runner import ListSink

pytestmark = pytest.mark.anyio
SMALL = SyntheticWorkload(LengthDist(20), LengthDist(4, stdev=2, min=1, max=8))  # uneven outputs: noise


async def _points(spec: BenchSpec) -> list[PointResult]:
    sink = ListSink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(ChatServer(delay_s=0.001))) as c:
        await run_sweep(FakeHost(), "m", spec, c, provider_id="p", sink=sink, confirm_takeover=True)
    return [p for kind, p in sink.events if kind == "point"]


def _span(records: list) -> float:  # type: ignore[type-arg]
    return max(r.end for r in records) - min(r.send for r in records)


async def test_an_unreachable_precision_runs_every_round_and_pools_them() -> None:
    spec = BenchSpec(levels=(2,), requests_per_point=6, workload=SMALL, warmup_requests=0,
                     repeat_until_ci_pct=1e-9, max_rounds=3)
    (p,) = await _points(spec)
    assert (p.rounds, p.planned, len(p.records)) == (3, 18, 18)
    assert sorted(r.index for r in p.records) == list(range(18))  # numbered after the earlier rounds
    rounds = [[r for r in p.records if r.index // 6 == k] for k in range(3)]
    assert p.summary.duration_s == pytest.approx(sum(_span(rr) for rr in rounds), rel=1e-12)
    assert p.summary.requests == 18 and p.summary.completed == 18
    row = point_row(p)
    assert (row["summary"]["rounds"], row["summary"]["planned_requests"], row["requests"]) == (3, 18, 18)
    assert len({r["seq"] for r in request_rows(p)}) == 18  # one stored row per request, no clash


async def test_a_wide_enough_target_stops_after_one_round() -> None:
    spec = BenchSpec(levels=(1, 2), requests_per_point=6, workload=SMALL, warmup_requests=0,
                     repeat_until_ci_pct=99.0, max_rounds=3)
    points = await _points(spec)
    assert [(p.rounds, len(p.records)) for p in points] == [(1, 6), (1, 6)]


async def test_without_a_target_a_point_is_measured_once() -> None:
    points = await _points(BenchSpec(levels=(1,), requests_per_point=4, workload=SMALL, warmup_requests=0))
    assert [(p.rounds, p.planned) for p in points] == [(1, 4)]


def test_precision_rule() -> None:
    class S:
        def __init__(self, rel: float | None) -> None:
            self.throughput_rel_se = rel

    assert _precise_enough(S(0.05), None) is True  # type: ignore[arg-type]
    assert _precise_enough(S(0.05), 9.8) is True  # type: ignore[arg-type]  # 1.96 × 5 % = 9.8 %
    assert _precise_enough(S(0.05), 9.7) is False  # type: ignore[arg-type]
    assert _precise_enough(S(None), 50.0) is False  # type: ignore[arg-type]  # too few requests to know


def test_repeat_options_are_declared_and_checked() -> None:
    spec = BenchOptions.from_mapping({"repeat_until_ci_pct": 5.0, "max_rounds": 4}).spec()
    assert (spec.repeat_until_ci_pct, spec.max_rounds) == (5.0, 4)
    assert BenchOptions.from_mapping({"max_rounds": 4}).spec().max_rounds == 1  # no target: never repeat
    with pytest.raises(ValueError, match="between 0 and 100"):
        BenchOptions.from_mapping({"repeat_until_ci_pct": 0.0}).spec()
    with pytest.raises(ValueError, match="max_rounds must be >= 1"):
        BenchSpec(max_rounds=0)
    with pytest.raises(ValueError, match="independent requests"):
        BenchSpec(workload=MultiTurnWorkload(LengthDist(20), LengthDist(4), turns=2), repeat_until_ci_pct=5.0,
                  max_rounds=2)
