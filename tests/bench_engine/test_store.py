"""Storage and read side against the test Postgres: runs, points, requests, baselines, drift, refusals."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import polars as pl
import pytest
from sqlalchemy import Engine, func, select, update

from core.providers import Provider
from engines.bench.gate import TakeoverRefused
from engines.bench.report import band_frame, bands_for, drift_by_run, with_pareto
from engines.bench.runner import BenchSpec, RunOutcome, run_sweep
from engines.bench.saturation import SaturationPolicy
from engines.bench.service import StoreSink, execute, replay_workload
from engines.bench.workload import LengthDist, SyntheticWorkload
from tests.ui import seed
from warehouse import bench_store, lease
from warehouse.queries import bench as q
from warehouse.schema_bench import bench_points, bench_requests, bench_runs

from .fakes import ChatServer, FakeHost

SPEC = BenchSpec(levels=(1, 2), requests_per_point=3, workload=SyntheticWorkload(LengthDist(20), LengthDist(4)),
                 saturation=SaturationPolicy.disabled(), seed=5)  # fmt: skip


def stored_run(db: Engine, spec: BenchSpec = SPEC, model: str = "m", **server: Any) -> RunOutcome:
    async def go() -> RunOutcome:
        async with httpx.AsyncClient(transport=httpx.MockTransport(ChatServer(**server))) as c:
            return await run_sweep(FakeHost(), model, spec, c, confirm_takeover=True, provider_id="p",
                                   sink=StoreSink(db, requested_by="test"))  # fmt: skip

    return asyncio.run(go())


def test_run_points_and_requests_are_stored(db: Engine) -> None:
    out = stored_run(db)
    with db.connect() as conn:
        run = conn.execute(select(bench_runs)).mappings().one()
        assert run["run_uid"] == out.run_uid and run["status"] == "completed"
        assert (run["provider_id"], run["model_id"], run["mode"], run["seed"]) == ("p", "m", "concurrency", 5)
        assert run["llama_swap_version"] == "v250" and run["llama_swap_commit"] == "0bdb372"
        assert run["model_entry"] == {"id": "m"} and run["loaded_before"] == []
        assert run["params"]["levels"] == [1.0, 2.0] and run["requested_by"] == "test"
        assert run["extra"]["cleanup"] == ["unloaded m (it was not loaded before the run)"]
        assert run["finished_at"] >= run["started_at"]
        assert conn.execute(select(func.count()).select_from(bench_points)).scalar() == 2
        reqs = (
            conn.execute(select(bench_requests).order_by(bench_requests.c.point_id, bench_requests.c.seq))
            .mappings()
            .all()
        )
    assert len(reqs) == 6
    r = reqs[0]
    assert (
        r["output_tokens"] == 4 and r["usage"]["completion_tokens"] == 4 and r["timings"]["predicted_n"] == 4
    )
    assert len(r["chunk_ms"]) == 4 and r["chunk_ms"][0] == pytest.approx(r["ttft_ms"], abs=1e-3)
    assert r["status_code"] == 200 and not r["cancelled"] and r["target_output_tokens"] == 4

    runs = q.list_runs(db, "p", "m")
    assert runs.height == 1 and runs["points"][0] == 2 and not runs["is_baseline"][0]
    pts = q.run_points(db, [int(runs["run_id"][0])])
    assert pts["level"].to_list() == [1.0, 2.0] and pts["completed"].to_list() == [3, 3]
    assert pts["ttft_p50_ms"].null_count() == 0 and pts["tpot_p50_ms"].null_count() == 0
    rq = q.run_requests(db, int(runs["run_id"][0]))
    assert rq.height == 6 and rq["n_chunks"].to_list() == [4] * 6 and rq["server_prompt_ms"][0] == 1.5
    detail = q.run_detail(db, int(runs["run_id"][0]))
    assert detail is not None and detail["workload_key"] == SPEC.workload_key()
    models = q.benchmarked_models(db)
    assert models.to_dicts()[0] | {"last_run_at": None} == {
        "provider_id": "p", "model_id": "m", "runs": 1, "last_run_at": None, "baseline_runs": 0,
    }  # fmt: skip


def test_baseline_drift_and_pareto(db: Engine) -> None:
    base = [stored_run(db) for _ in range(2)]
    slow = stored_run(db)
    runs = q.list_runs(db)
    ids = dict(zip(runs["run_uid"].to_list(), runs["run_id"].to_list(), strict=True))
    with db.begin() as conn:  # make the third run 3x slower per token (deterministic, no timing involved)
        conn.execute(
            update(bench_points)
            .where(bench_points.c.run_id == ids[slow.run_uid])
            .values(tpot_p50_ms=bench_points.c.tpot_p50_ms * 3 + 1)
        )
        for o in base:
            assert bench_store.set_baseline(conn, ids[o.run_uid], "instant") == ("p", "m")
        bench_store.set_baseline(conn, ids[base[0].run_uid], "renamed")  # idempotent upsert
    assert len(q.baseline_run_ids(db, "p", "m")) == 2
    assert q.baseline_run_ids(db, "p", "m", workload_key="other") == []

    drift = {r["run_id"]: r for r in drift_by_run(db, "p", "m").iter_rows(named=True)}
    assert drift[ids[base[0].run_uid]]["drift"] == "baseline"
    d = drift[ids[slow.run_uid]]
    assert d["drift"] == "slower" and "vs baseline" in d["drift_detail"]

    bands = bands_for(db, "p", "m", SPEC.workload_key())
    bf = band_frame(bands, "tpot_p50_ms", "concurrency")
    assert bf["level"].to_list() == [1.0, 2.0] and (bf["low"] <= bf["high"]).all()

    pts = with_pareto(q.run_points(db, list(ids.values())))
    assert pts["pareto"].dtype == pl.Boolean and pts["pareto"].any()

    with db.begin() as conn:
        assert bench_store.clear_baseline(conn, "p", "m", ids[base[1].run_uid]) == 1
        assert bench_store.clear_baseline(conn, "p", "m") == 1
    assert drift_by_run(db, "p", "m")["drift"].to_list() == ["no baseline"] * 3


def test_only_completed_runs_can_join_a_baseline(db: Engine) -> None:
    with db.begin() as conn:
        with pytest.raises(bench_store.UnknownRun):
            bench_store.set_baseline(conn, 424242)


def test_refusals_are_recorded(db: Engine, db_url: str) -> None:
    provider = Provider(id="p", label="p", base_url="http://127.0.0.1:9")
    with pytest.raises(TakeoverRefused, match="confirmation"):
        asyncio.run(execute(db, provider, "m", SPEC, confirm_takeover=False, requested_by="test"))
    with lease.hold(db_url, "p", lease.SCOPE_HOST, "warm qwen", holder="actions@box:1:abc"):
        with pytest.raises(TakeoverRefused, match=r"refusing to benchmark: p \(host\) is held by actions@box:1:abc "
                                                  r"for warm qwen since "):
            asyncio.run(execute(db, provider, "m", SPEC, confirm_takeover=True, slot_wait_s=0.2))
    # lease free, but the host cannot be reached: in-flight state unknown → refused, nothing sent
    with pytest.raises(TakeoverRefused, match="cannot be read"):
        asyncio.run(execute(db, provider, "m", SPEC, confirm_takeover=True, slot_wait_s=0.2))
    runs = q.list_runs(db, "p", "m")
    assert runs["status"].to_list() == ["refused"] * 3
    reasons = runs["stop_reason"].to_list()
    assert any("confirmation" in r for r in reasons) and any("held by actions@box:1:abc" in r for r in reasons)
    assert q.list_runs(db, "p", "m", include_refused=False).is_empty()
    assert q.benchmarked_models(db).is_empty()


def test_production_workload_replays_stored_lengths(db: Engine) -> None:
    with db.begin() as conn:
        seed.provider(conn, "p")
        seed.epoch(conn, "p", "e1", seed.T0)
        seed.activity(conn, "p", "e1", 1, seed.T0, model_id="m", inp=100, out=20)
        seed.activity(conn, "p", "e1", 2, seed.T0 + timedelta(seconds=1), model_id="m", inp=300, out=60)
        seed.activity(conn, "p", "e1", 3, seed.T0, model_id="m", inp=5, out=0)  # no output: skipped
        seed.activity(conn, "p", "e1", 4, seed.T0, model_id="m", status=500, inp=5, out=5)  # failed: skipped
        seed.activity(conn, "p", "e1", 5, seed.T0, model_id="other", inp=7, out=7)
    wl = replay_workload(db, "p", "m", since_days=None)
    assert sorted(wl.pairs) == [(100, 20), (300, 60)]
    with pytest.raises(ValueError, match="no stored activity"):
        replay_workload(db, "p", "nothing", since_days=None)
