"""Benchmarks on the demo fleet: a host that is never idle can be benchmarked, and what it measures is labelled
simulated everywhere (run row, `bench run`/`list`/`show`/`compare`); refused attempts are not listed as runs.

Against the in-process demo simulator with live synthetic traffic (over real HTTP) and the suite's real Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text

from cli.bench import bench
from connectors.llama_swap import says_simulated
from core.providers import Provider
from core.settings import get_settings
from demo import DemoFleet, GroupSpec, ModelSpec, SimulatedInstance, TrafficProfile, serve_instances
from engines.bench.gate import TakeoverRefused, read_inflight_snapshot
from engines.bench.runner import BenchSpec, Progress
from engines.bench.saturation import SaturationPolicy
from engines.bench.service import execute
from engines.bench.workload import LengthDist, SyntheticWorkload
from warehouse.schema_bench import bench_runs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llama_swap"
QUICK = BenchSpec(levels=(1,), requests_per_point=2, workload=SyntheticWorkload(LengthDist(20), LengthDist(4)),
                  warmup_requests=1, saturation=SaturationPolicy.disabled(), seed=3)  # fmt: skip
# 20 requests/s of ~0.3 s each, at most 4 at once: the host is busy at (nearly) every instant
BUSY = TrafficProfile(requests_per_minute=1200, max_outstanding=4, unknown_model_ratio=0.0, error_rate=0.0,
                      crash_rate=0.0, start_fail_rate=0.0)


def busy_sim() -> SimulatedInstance:
    return SimulatedInstance([ModelSpec("m", group="g", load_s=0.05, gen_tps=400.0, prompt_tps=20000.0)],
                             [GroupSpec("g", swap=True, exclusive=False)], jitter=0.0, unload_s=0.01)


@contextlib.asynccontextmanager
async def busy_host() -> AsyncIterator[tuple[Provider, httpx.AsyncClient, DemoFleet]]:
    fleet = await serve_instances([busy_sim()], traffic=BUSY, seed=1)
    try:
        async with httpx.AsyncClient(timeout=60) as c:
            for _ in range(100):  # until the traffic has requests in flight
                if (await read_inflight_snapshot(c, fleet.base_urls[0])).requests:
                    break
                await asyncio.sleep(0.05)
            yield Provider("demo-01", "Demo host 01", fleet.base_urls[0]), c, fleet
    finally:
        await fleet.stop()


def stored(db: Engine) -> list[tuple[int, str, bool]]:
    with db.connect() as conn:
        q = select(bench_runs.c.id, bench_runs.c.status, bench_runs.c.simulated).order_by(bench_runs.c.id)
        return [(r.id, r.status, r.simulated) for r in conn.execute(q)]


def test_only_the_simulator_says_simulated() -> None:
    """The flag comes from the host: recorded real llama-swap builds never carry it, the simulator always does."""
    for build in ("v239", "v250", "v250-5-g0bdb372"):
        exchanges = json.loads((FIXTURES / build / "exchanges.json").read_text())["exchanges"]
        version = exchanges["version"]["body"]["json"]
        hardware = exchanges.get("hardware", {}).get("body", {}).get("json")
        assert says_simulated(version, hardware) is False, build

    async def ask() -> tuple[object, object]:
        fleet = await serve_instances([busy_sim()])
        try:
            async with httpx.AsyncClient() as c:
                return ((await c.get(fleet.base_urls[0] + "/api/version")).json(),
                        (await c.get(fleet.base_urls[0] + "/api/hardware")).json())
        finally:
            await fleet.stop()

    version, hardware = asyncio.run(ask())
    assert says_simulated(version) and says_simulated(hardware)
    assert not says_simulated({"version": "v250", "simulated": "yes"}, None, [])  # only a JSON true counts


def test_a_busy_demo_host_is_benchmarked_after_its_traffic_pauses(db: Engine) -> None:
    """The demo host is never idle on its own; the gate waits (with a countdown) while the simulator, seeing the
    engine's tagged connections, pauses its traffic: the run completes with no foreign request, labelled simulated."""
    seen: list[Progress] = []
    purposes: list[str] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        if p.phase == "point":  # what `lease list` and the Fleet page show while the run holds the host
            with db.connect() as conn:
                purposes.append(conn.execute(text("SELECT purpose FROM leases WHERE provider_id = 'demo-01'")).scalar_one())

    async def main() -> tuple[list[str], int, int | None, int | None, bool]:
        async with busy_host() as (provider, c, fleet):
            untagged = await read_inflight_snapshot(c, provider.base_url)  # what the old instant gate saw
            out = await execute(db, provider, "m", QUICK, confirm_takeover=True, client=c, idle_wait_s=30.0,
                                progress=progress)
            return ([str(r.get("id")) for r in untagged.requests], fleet.takeovers[0].paused_calls, out.run_id,
                    out.foreign_requests, out.simulated)

    busy_ids, paused, run_id, foreign, simulated = asyncio.run(main())
    assert busy_ids, "the demo host must be busy, or this test proves nothing"
    assert paused > 0  # the traffic generator held back requests while the benchmark held the host
    countdown = [p.message for p in seen if p.phase == "gate" and p.message.startswith("waiting")]
    assert countdown and "in flight" in countdown[0] and countdown[0].endswith("s left")
    assert foreign == 0 and simulated is True
    assert stored(db) == [(run_id, "completed", True)]
    assert purposes == [f"bench run #{run_id} (m)"]  # one run id everywhere, the lease included


def test_a_host_still_busy_after_the_wait_is_refused_saying_so(db: Engine) -> None:
    """Without the takeover pause (the host ignores the header, like a real busy llama-swap) the gate refuses after
    waiting, and the refused attempt is recorded but not labelled simulated (nothing about the host was read)."""

    async def main() -> TakeoverRefused:
        async with busy_host() as (provider, c, fleet):
            fleet.takeovers[0].enter = fleet.takeovers[0].leave = lambda: None  # type: ignore[method-assign]  # ignores the header
            with pytest.raises(TakeoverRefused) as caught:
                await execute(db, provider, "m", QUICK, confirm_takeover=True, client=c, idle_wait_s=1.5)
            return caught.value

    exc = asyncio.run(main())
    assert "request(s) in flight" in exc.reason and exc.reason.endswith("(still busy after waiting 1.5 s)")
    assert stored(db) == [(exc.run_id, "refused", False)]


@contextlib.contextmanager
def fleet_in_thread() -> Iterator[DemoFleet]:
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    fleet = asyncio.run_coroutine_threadsafe(serve_instances([busy_sim()], traffic=BUSY, seed=1), loop).result(20)
    try:
        yield fleet
    finally:
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)


def test_cli_on_the_demo_fleet_one_run_id_labelled_simulated_refusals_not_listed(
    db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fleet_in_thread() as fleet:
        fleet_file = tmp_path / "fleet.yaml"
        fleet_file.write_text(f"providers:\n  - id: demo-01\n    base_url: {fleet.base_urls[0]}\n")
        monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
        monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet_file))
        get_settings.cache_clear()
        cli = CliRunner()
        try:
            refused = cli.invoke(bench, ["run", "demo-01/m", "--levels", "1", "--requests", "2"])  # no confirmation
            ran = cli.invoke(bench, ["run", "demo-01/m", "--levels", "1", "--requests", "2", "--warmup", "1",
                                     "--yes-take-over", "--idle-wait", "30"])
            listed = cli.invoke(bench, ["list"])
            listed_all = cli.invoke(bench, ["list", "--all"])
            runs = stored(db)
            shown = cli.invoke(bench, ["show", str(runs[1][0])])
        finally:
            get_settings.cache_clear()
    (refused_id, _, _), (run_id, status, simulated) = runs
    assert refused.exit_code == 3 and f"(attempt #{refused_id} recorded; `bench list --all` shows it)" in refused.output
    assert ran.exit_code == 0, ran.output
    assert (status, simulated) == ("completed", True)
    assert f"run #{run_id}: completed — simulated host (demo fleet)" in ran.output
    rows = [line.split() for line in listed.output.splitlines()]
    assert [r[0] for r in rows[2:-2]] == [str(run_id)]  # the refusal is not a run
    assert rows[2][-1] == "sim" and listed.output.splitlines()[-2].startswith("sim: simulated host (demo fleet)")
    assert listed.output.splitlines()[-1] == (
        "1 attempt(s) that never ran (refused, skipped) not listed: `bench list --all`")
    assert {r[0] for r in (line.split() for line in listed_all.output.splitlines()[2:-1])} == {
        str(run_id), str(refused_id)}
    assert "SIMULATED: simulated host (demo fleet)" in shown.output and "J/tok (sim)" in shown.output
