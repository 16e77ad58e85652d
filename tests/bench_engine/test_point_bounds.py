"""Duration-bounded points: ``max_point_s`` stops a point from starting requests (those in flight finish and
count), and the point says which bound ended it — stored in the point's summary as ``ended_by`` with the
number of planned requests."""

from __future__ import annotations

import httpx
import pytest

from engines.bench.runner import BenchSpec, run_sweep
from engines.bench.service import point_row
from engines.bench.workload import LengthDist, SyntheticWorkload

from .fakes import ChatServer, FakeHost
from .test_runner import ListSink

pytestmark = pytest.mark.anyio
SMALL = SyntheticWorkload(LengthDist(20), LengthDist(4))


async def _points(spec: BenchSpec, server: ChatServer) -> list[dict[str, object]]:
    sink = ListSink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:
        await run_sweep(FakeHost(), "m", spec, c, provider_id="p", sink=sink, confirm_takeover=True)
    return [point_row(p)["summary"] | {"sent": len(p.records)} for kind, p in sink.events if kind == "point"]


async def test_a_point_ends_at_its_time_limit_and_says_so() -> None:
    # 4 chunks 20 ms apart per request, one worker: about 12 requests fit in 1 s; 500 are planned
    spec = BenchSpec(levels=(1,), requests_per_point=500, workload=SMALL, warmup_requests=0, max_point_s=1.0)
    (point,) = await _points(spec, ChatServer(delay_s=0.02))
    assert point["ended_by"] == "time" and point["planned_requests"] == 500
    assert 1 <= int(point["sent"]) < 500  # type: ignore[call-overload]


async def test_a_point_that_sent_every_request_ended_by_count() -> None:
    spec = BenchSpec(levels=(1, 2), requests_per_point=3, workload=SMALL, warmup_requests=0, max_point_s=600.0)
    points = await _points(spec, ChatServer())
    assert [(p["ended_by"], p["planned_requests"], p["sent"]) for p in points] == [("requests", 3, 3)] * 2
