"""A benchmark run holds the fleet host lease; an unattended run also needs an idle host.

Against the in-process demo simulator (a llama-swap over real HTTP) and the suite's real Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from cli.bench import bench
from core.providers import Provider
from core.settings import get_settings
from demo import GroupSpec, ModelSpec, SimulatedInstance, serve_instances
from engines.bench.gate import InflightSnapshot
from engines.bench.runner import BenchSpec
from engines.bench.saturation import SaturationPolicy
from engines.bench.service import HostLeaseLost, execute
from engines.bench.unattended import BenchSkipped, idle_verdict
from engines.bench.workload import LengthDist, SyntheticWorkload
from warehouse import lease
from warehouse.db import psycopg_dsn
from warehouse.schema_bench import bench_runs

QUICK = BenchSpec(levels=(1,), requests_per_point=2, workload=SyntheticWorkload(LengthDist(20), LengthDist(4)),
                  warmup_requests=1, saturation=SaturationPolicy.disabled(), seed=3)  # fmt: skip


@contextlib.asynccontextmanager
async def simulated(gen_tps: float = 2000.0) -> AsyncIterator[tuple[Provider, httpx.AsyncClient]]:
    sim = SimulatedInstance([ModelSpec("m", group="g", load_s=0.05, gen_tps=gen_tps, prompt_tps=5000.0)],
                            [GroupSpec("g", swap=True, exclusive=False)], jitter=0.0, unload_s=0.01)
    fleet = await serve_instances([sim])
    try:
        async with httpx.AsyncClient(timeout=60) as c:
            yield Provider("sim", "sim", fleet.base_urls[0]), c
    finally:
        await fleet.stop()


def runs(db: Engine) -> list[tuple[str, str | None]]:
    with db.connect() as conn:
        return [(r.status, r.stop_reason) for r in conn.execute(select(bench_runs).order_by(bench_runs.c.id))]


@contextlib.contextmanager
def pg(db_url: str) -> Iterator[psycopg.Connection]:  # type: ignore[type-arg]
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as c:
        yield c


def test_idle_verdict() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    idle = InflightSnapshot()
    assert idle_verdict(idle, None, now, 600) is None  # never served a request
    assert idle_verdict(idle, now - timedelta(seconds=601), now, 600) is None
    assert idle_verdict(idle, now - timedelta(seconds=90), now, 600) == (
        "the host's last request finished 90 s ago; an unattended run needs 600 s of idle")
    busy = InflightSnapshot(requests=({"id": "1"},))
    assert idle_verdict(busy, None, now, 600) == "the host has 1 request(s) in flight or queued"
    unknown = InflightSnapshot(known=False, detail="HTTP 401 unauthorized")
    assert idle_verdict(unknown, None, now, 0) == "the host's in-flight requests cannot be read (HTTP 401 unauthorized)"


def test_unattended_run_is_skipped_unless_the_lease_is_free_and_the_host_idle(db: Engine, db_url: str) -> None:
    async def main() -> str:
        async with simulated() as (provider, c):
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
            assert (await c.post(provider.base_url + "/v1/chat/completions", json=body)).status_code == 200
            with pytest.raises(BenchSkipped, match=r"unattended run skipped: the host's last request finished \d+ s "
                                                   r"ago; an unattended run needs 600 s of idle"):
                await execute(db, provider, "m", QUICK, confirm_takeover=True, client=c, unattended_idle_s=600)
            with lease.hold(db_url, "sim", lease.SCOPE_HOST, "warm m", holder="actions@box:1:abc"):
                with pytest.raises(BenchSkipped, match=r"unattended run skipped: sim \(host\) is held by "
                                                       r"actions@box:1:abc for warm m since "):
                    await execute(db, provider, "m", QUICK, confirm_takeover=True, client=c, unattended_idle_s=0)
            out = await execute(db, provider, "m", QUICK, confirm_takeover=True, client=c, unattended_idle_s=0.0)
            return out.status

    assert asyncio.run(main()) == "completed"
    got = runs(db)
    assert [s for s, _ in got] == ["skipped", "skipped", "completed"]
    assert got[0][1] is not None and got[0][1].endswith("an unattended run needs 600 s of idle")
    with pg(db_url) as c:
        assert lease.list_leases(c) == []  # released after the run
        holders = c.execute("SELECT purpose, event FROM lease_events WHERE holder LIKE 'bench@%' ORDER BY id").fetchall()
    assert [e for _, e in holders] == ["acquired", "released", "acquired", "released"]
    assert all(p.startswith("bench run ") and p.endswith("(m), unattended") for p, _ in holders)


def test_a_run_whose_lease_is_broken_is_cancelled_and_cleaned_up(db: Engine, db_url: str) -> None:
    slow = BenchSpec(levels=(2,), requests_per_point=40, workload=SyntheticWorkload(LengthDist(20), LengthDist(200)),
                     warmup_requests=1, saturation=SaturationPolicy.disabled(), seed=3)  # fmt: skip

    async def main() -> set[str]:
        async with simulated(gen_tps=50.0) as (provider, c):
            run = asyncio.create_task(
                execute(db, provider, "m", slow, confirm_takeover=True, client=c, lease_ttl_s=0.6))
            with pg(db_url) as conn:
                for _ in range(400):  # wait until the run holds the host and its requests are in flight
                    held = lease.current(conn, "sim", lease.SCOPE_HOST)
                    if held is not None and (await c.get(provider.base_url + "/running")).json()["running"]:
                        break
                    await asyncio.sleep(0.05)
                assert held is not None and held.purpose.startswith("bench run ")
                await asyncio.sleep(0.5)
                assert lease.break_lease(conn, "sim", lease.SCOPE_HOST, by="operator") is not None
            with pytest.raises(HostLeaseLost, match="benchmark cancelled: the host lease was lost"):
                await asyncio.wait_for(run, 30)
            running = (await c.get(provider.base_url + "/running")).json()["running"]
            return {r["model"] for r in running if r["state"] in ("ready", "starting")}

    assert asyncio.run(main()) == set()  # cleanup unloaded the model it had loaded
    ((status, reason),) = runs(db)
    assert status == "cancelled"
    assert reason == "cancelled (the host lease was lost (broken by an operator, or expired and taken over))"


def test_cli_unattended_run_on_a_busy_host_is_skipped_not_failed(
    db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bench run --unattended` (a cron job): the host served a request just now → one line, exit 0, a skipped row."""
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    sim = SimulatedInstance([ModelSpec("m", group="g", load_s=0.05, gen_tps=2000.0)],
                            [GroupSpec("g", swap=True, exclusive=False)], jitter=0.0)
    fleet = asyncio.run_coroutine_threadsafe(serve_instances([sim]), loop).result(20)
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        assert httpx.post(fleet.base_urls[0] + "/v1/chat/completions", json=body, timeout=30).status_code == 200
        fleet_file = tmp_path / "fleet.yaml"
        fleet_file.write_text(f"providers:\n  - id: lab\n    base_url: {fleet.base_urls[0]}\n")
        monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
        monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet_file))
        monkeypatch.setenv("BOOCONTROL_BENCH_UNATTENDED_IDLE_SECONDS", "3600")
        get_settings.cache_clear()
        try:
            r = CliRunner().invoke(bench, ["run", "lab/m", "--levels", "1", "--requests", "1", "--yes-take-over",
                                           "--unattended"])
        finally:
            get_settings.cache_clear()
    finally:
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
    assert r.exit_code == 0, r.output
    assert "skipped: unattended run skipped: the host's last request finished " in r.output
    assert "an unattended run needs 3600 s of idle" in r.output and "Traceback" not in r.output
    assert [s for s, _ in runs(db)] == ["skipped"]
    assert sim.inflight == {}  # nothing was sent to the host
