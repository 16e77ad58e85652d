from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from engines.bench.gate import TakeoverRefused
from engines.bench.runner import BenchSpec, PointResult, Progress, RunHeader, RunOutcome, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.workload import LengthDist, SyntheticWorkload

from .fakes import ChatServer, FakeHost

pytestmark = pytest.mark.anyio

SMALL = SyntheticWorkload(LengthDist(20), LengthDist(4))


class ListSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def run_started(self, header: RunHeader) -> None:
        self.events.append(("started", header))

    def point_finished(self, header: RunHeader, point: PointResult) -> None:
        self.events.append(("point", point))

    def run_finished(self, header: RunHeader, outcome: RunOutcome) -> None:
        self.events.append(("finished", outcome))


async def sweep(
    host: FakeHost, server: ChatServer, spec: BenchSpec, **kw: Any
) -> tuple[RunOutcome, ListSink]:
    sink = ListSink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:
        out = await run_sweep(
            host, "m", spec, c, provider_id="p", sink=sink, **{"confirm_takeover": True, **kw}
        )
    return out, sink


async def test_refuses_without_confirmation_before_touching_the_host() -> None:
    host, server = FakeHost(), ChatServer()
    with pytest.raises(TakeoverRefused, match="confirmation"):
        await sweep(host, server, BenchSpec(), confirm_takeover=False)
    assert host.calls == [] and server.requests == []


async def test_refuses_a_busy_host() -> None:
    host = FakeHost(inflight_requests=[{"id": "9", "method": "POST", "req_path": "/v1/chat/completions"}])
    server = ChatServer()
    with pytest.raises(TakeoverRefused, match="in flight"):
        await sweep(host, server, BenchSpec())
    assert host.calls == ["inflight"] and server.requests == []


async def test_refuses_when_inflight_state_is_unknown() -> None:
    host, server = FakeHost(known=False), ChatServer()
    with pytest.raises(TakeoverRefused, match="cannot be read"):
        await sweep(host, server, BenchSpec())
    assert server.requests == []


async def test_sweep_shape_warmup_excluded_and_host_restored() -> None:
    host, server = FakeHost(), ChatServer()
    events: list[Progress] = []
    spec = BenchSpec(levels=(1, 2, 3), requests_per_point=5, workload=SMALL, warmup_requests=3,
                     saturation=SaturationPolicy.disabled(), seed=7)  # fmt: skip
    out, sink = await sweep(host, server, spec, progress=events.append)
    assert out.status == "completed" and out.stop_reason is None
    assert [p.level for p in out.points] == [1.0, 2.0, 3.0]
    assert [len(p.records) for p in out.points] == [5, 5, 5]
    assert all(r.ok for p in out.points for r in p.records)
    assert [p.summary.completed for p in out.points] == [5, 5, 5]
    assert len(server.requests) == 3 + 15  # warm-ups are sent but not in any point
    assert len(out.warmup) == 3 and out.calibration is not None
    assert all(r.output_tokens == 4 for p in out.points for r in p.records)
    prompts = [b["messages"][0]["content"] for b in server.requests]
    assert len(set(prompts)) == len(prompts)
    assert [e[0] for e in sink.events] == ["started", "point", "point", "point", "finished"]
    assert sink.events[0][1].seed == 7 and sink.events[0][1].loaded_before == ()
    assert host.calls[:2] == ["inflight", "warm m"]
    assert "unload m" in host.calls and host.loaded == set()
    assert out.cleanup == ["unloaded m (it was not loaded before the run)"]
    assert [e.done for e in events if e.phase == "request"] == list(range(1, 16))
    assert events[-1].phase == "done"


async def test_a_model_loaded_before_stays_loaded_and_evicted_ones_come_back() -> None:
    host, server = FakeHost(loaded={"m"}), ChatServer()
    spec = BenchSpec(
        levels=(1,), requests_per_point=2, workload=SMALL, saturation=SaturationPolicy.disabled()
    )
    out, _ = await sweep(host, server, spec)
    assert "unload m" not in host.calls and host.loaded == {"m"} and out.cleanup == []

    host = FakeHost(loaded={"other"}, evict_on_warm=True)
    out, _ = await sweep(host, ChatServer(), spec)
    assert host.loaded == {"other"}
    assert out.cleanup == [
        "unloaded m (it was not loaded before the run)",
        "re-loaded other (evicted during the run)",
    ]


async def test_early_stop_on_a_saturated_point() -> None:
    server = ChatServer(fail=lambda body: 503 if "-p1-" in body["messages"][0]["content"] else None)
    spec = BenchSpec(levels=(1, 2, 4), requests_per_point=4, workload=SMALL)
    out, sink = await sweep(FakeHost(), server, spec)
    assert out.status == "completed"
    assert [p.level for p in out.points] == [1.0, 2.0]
    assert out.points[1].verdict.saturated and out.points[1].summary.failed == 4
    assert out.stop_reason is not None and out.stop_reason.startswith("saturated at concurrency=2")
    assert "errors: 100%" in out.stop_reason


async def test_rate_sweep_points_carry_schedules() -> None:
    spec = BenchSpec(mode="rate", levels=(50.0, 100.0), requests_per_point=6, workload=SMALL, arrival="constant",
                     saturation=SaturationPolicy.disabled())  # fmt: skip
    out, _ = await sweep(FakeHost(), ChatServer(), spec)
    assert [(p.mode, p.level, p.arrival, len(p.records)) for p in out.points] == [
        ("rate", 50.0, "constant", 6),
        ("rate", 100.0, "constant", 6),
    ]
    assert all(r.scheduled is not None for p in out.points for r in p.records)


async def test_cancel_closes_streams_restores_host_and_records_cancelled() -> None:
    host, server = FakeHost(), ChatServer(delay_s=0.02)
    spec = BenchSpec(levels=(4,), requests_per_point=8, workload=SyntheticWorkload(LengthDist(20), LengthDist(5000)),
                     warmup_requests=2, saturation=SaturationPolicy.disabled())  # fmt: skip
    sink = ListSink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:
        task = asyncio.create_task(
            run_sweep(host, "m", spec, c, confirm_takeover=True, provider_id="p", sink=sink)
        )
        while server.open_streams < 4:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert server.open_streams == 0
    kind, outcome = sink.events[-1]
    assert kind == "finished" and outcome.status == "cancelled"
    # no live watch on the fake: cleanup asked the host for its in-flight list (none of ours left to cancel)
    assert host.calls.count("inflight") >= 2 and "unload m" in host.calls and host.loaded == set()


def test_spec_validation_and_workload_key() -> None:
    with pytest.raises(ValueError):
        BenchSpec(levels=(1.5,))
    with pytest.raises(ValueError):
        BenchSpec(mode="burst")  # type: ignore[arg-type]
    a = BenchSpec(levels=(1, 2), workload=SMALL)
    b = BenchSpec(levels=(4, 8), workload=SMALL, seed=3, label="x")
    c = BenchSpec(levels=(1, 2), workload=SyntheticWorkload(LengthDist(21), LengthDist(4)))
    assert a.workload_key() == b.workload_key() != c.workload_key()
    assert a.params()["workload"]["kind"] == "synthetic"


class Terminated(BaseException):
    """Stands in for Prefect's TerminationSignal (a BaseException raised by its SIGTERM handler)."""


async def test_a_termination_signal_inside_a_request_is_a_cancellation_and_surfaces_bare() -> None:
    def fail(body: dict[str, Any]) -> int | None:
        if "-p0-00002:" in body["messages"][0]["content"]:
            raise Terminated()
        return None

    host, server = FakeHost(), ChatServer(fail=fail)
    spec = BenchSpec(
        levels=(2,), requests_per_point=6, workload=SMALL, saturation=SaturationPolicy.disabled()
    )
    sink = ListSink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:
        with pytest.raises(Terminated):
            await run_sweep(host, "m", spec, c, confirm_takeover=True, provider_id="p", sink=sink)
    kind, outcome = sink.events[-1]
    assert kind == "finished" and outcome.status == "cancelled"
    assert outcome.stop_reason == "interrupted (Terminated)"
    assert "unload m" in host.calls


async def test_energy_per_token_from_host_power_samples() -> None:
    import time

    now = time.time()
    steady = [(now + dt, 100.0) for dt in (-30, -10, -2, 3, 100)]  # 100 W, sampled around the run
    host = FakeHost(power=steady)
    spec = BenchSpec(
        levels=(1, 2), requests_per_point=3, workload=SMALL, saturation=SaturationPolicy.disabled()
    )
    out, _ = await sweep(host, ChatServer(), spec)
    assert out.idle_w == 100.0
    for p in out.points:
        assert p.energy is not None
        assert p.energy.joules == pytest.approx(
            100.0 * (p.t1 - p.t0), rel=1e-3
        )  # epoch-second floats resolve ~0.2 µs
        assert p.energy.per_token(p.summary.output_tokens) == pytest.approx(p.energy.joules / 12)
    span = out.points[-1].t1 - out.points[0].t0
    assert out.energy_j == pytest.approx(100.0 * span, rel=1e-3)  # epoch-second floats resolve ~0.2 µs
    assert out.j_per_token == pytest.approx(out.energy_j / 24)  # type: ignore[operator]
