"""Side-by-side comparison of models/hosts (quantizations) on stored runs: exact ratios, refusals, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, update

from core.settings import get_settings
from engines.bench.report import NotComparable, compare_runs
from engines.bench.runner import BenchSpec
from engines.bench.saturation import SaturationPolicy
from engines.bench.workload import LengthDist, SyntheticWorkload
from warehouse.queries import bench as q
from warehouse.schema_bench import bench_points, bench_runs

from .test_store import SPEC, stored_run


def _run_id(db: Engine, run_uid: str) -> int:
    runs = q.list_runs(db)
    return int(runs.filter(runs["run_uid"] == run_uid)["run_id"][0])


def _set(db: Engine, run_id: int, level: float, **values: float) -> None:
    with db.begin() as conn:
        conn.execute(
            update(bench_points)
            .where((bench_points.c.run_id == run_id) & (bench_points.c.level == level))
            .values(**values)
        )


@pytest.fixture
def three_models(db: Engine) -> list[int]:
    """q4 (reference), q8 and f16 of one model, same workload; known numbers at levels 1 and 2."""
    ids = [_run_id(db, stored_run(db, model=m).run_uid) for m in ("qwen-q4", "qwen-q8", "qwen-f16")]
    with db.begin() as conn:
        for rid, path in zip(ids, ("/models/qwen-Q4_K_M.gguf", "/m/qwen-Q8_0.gguf", "qwen-F16.gguf"), strict=True):
            conn.execute(update(bench_runs).where(bench_runs.c.id == rid).values(server_props={"model_path": path}))
    for rid, (tps1, tps2, tpot1) in zip(ids, ((100.0, 180.0, 10.0), (80.0, 150.0, 12.5), (50.0, 90.0, 20.0)),
                                        strict=True):  # fmt: skip
        _set(db, rid, 1.0, output_throughput=tps1, tpot_p50_ms=tpot1)
        _set(db, rid, 2.0, output_throughput=tps2, tpot_p50_ms=tpot1 * 2)
    return ids


def test_compare_runs_gives_exact_ratios_and_directions(db: Engine, three_models: list[int]) -> None:
    q4, q8, f16 = three_models
    t = compare_runs(q.run_points(db, three_models), [q4, q8, f16], ["output_throughput", "tpot_p50_ms"])
    assert t.height == 2 * 2 * 3  # levels x metrics x runs
    tps = t.filter((pl.col("metric") == "output_throughput") & (pl.col("level") == 2.0))
    assert tps.select("run_id", "value", "ratio", "better").rows() == [
        (q4, 180.0, 1.0, None),
        (q8, 150.0, 150.0 / 180.0, False),
        (f16, 90.0, 0.5, False),
    ]
    tpot = t.filter((pl.col("metric") == "tpot_p50_ms") & (pl.col("level") == 1.0))
    assert tpot.select("run_id", "ratio", "better").rows() == [(q4, 1.0, None), (q8, 1.25, False), (f16, 2.0, False)]
    # the other way round, q4 is better: lower TPOT, higher throughput
    rev = compare_runs(q.run_points(db, three_models), [f16, q4], ["output_throughput", "tpot_p50_ms"])
    assert rev.filter(pl.col("run_id") == q4).select("metric", "level", "ratio", "better").rows() == [
        ("output_throughput", 1.0, 2.0, True),
        ("tpot_p50_ms", 1.0, 0.5, True),
        ("output_throughput", 2.0, 2.0, True),
        ("tpot_p50_ms", 2.0, 0.5, True),
    ]
    assert dict(zip(t["run_id"], t["model_file"], strict=False)) == {
        q4: "qwen-Q4_K_M.gguf", q8: "qwen-Q8_0.gguf", f16: "qwen-F16.gguf"}  # fmt: skip
    assert t["subject"].unique(maintain_order=True).to_list() == [f"p/qwen-q4 #{q4}", f"p/qwen-q8 #{q8}",
                                                                   f"p/qwen-f16 #{f16}"]  # fmt: skip


def test_missing_levels_and_refusals(db: Engine, three_models: list[int]) -> None:
    q4, q8, _ = three_models
    one_level = BenchSpec(levels=(2,), requests_per_point=SPEC.requests_per_point, workload=SPEC.workload,
                          saturation=SaturationPolicy.disabled(), seed=5)  # fmt: skip
    short = _run_id(db, stored_run(db, spec=one_level, model="qwen-q2").run_uid)
    t = compare_runs(q.run_points(db, [q4, short]), [q4, short], ["output_throughput"])
    assert t.filter(pl.col("run_id") == short).select("level", "value").rows()[0] == (1.0, None)
    other = BenchSpec(levels=(1, 2), requests_per_point=3, workload=SyntheticWorkload(LengthDist(99), LengthDist(4)),
                      saturation=SaturationPolicy.disabled(), seed=5)  # fmt: skip
    diff = _run_id(db, stored_run(db, spec=other, model="qwen-q8").run_uid)
    with pytest.raises(NotComparable, match=rf"run\(s\) {diff} ran a different workload than run {q4}"):
        compare_runs(q.run_points(db, [q4, diff]), [q4, diff])
    with pytest.raises(ValueError, match="at least two runs"):
        compare_runs(q.run_points(db, [q4]), [q4])
    with pytest.raises(ValueError, match="no stored sweep points for run\\(s\\) 999999"):
        compare_runs(q.run_points(db, [q4, 999999]), [q4, 999999])
    with pytest.raises(ValueError, match="unknown metric"):
        compare_runs(q.run_points(db, [q4, q8]), [q4, q8], ["speed"])


def test_workload_filter_lists_comparable_runs_across_models(db: Engine, three_models: list[int]) -> None:
    runs = q.list_runs(db, workload_key=SPEC.workload_key())
    assert sorted(runs["run_id"].to_list()) == sorted(three_models)
    assert q.list_runs(db, workload_key="nope").height == 0


@pytest.fixture
def cli_env(db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(tmp_path / "no-fleet.yaml"))
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def test_cli_compare(cli_env: Engine, three_models: list[int]) -> None:
    from cli.bench import bench

    q4, q8, f16 = three_models
    out = CliRunner().invoke(bench, ["compare", str(q4), str(q8), str(f16), "--metric", "output_throughput"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[:3] == [f"#{q4}: p/qwen-q4 (qwen-Q4_K_M.gguf)", f"#{q8}: p/qwen-q8 (qwen-Q8_0.gguf)",
                         f"#{f16}: p/qwen-f16 (qwen-F16.gguf)"]  # fmt: skip
    assert "Output throughput (tok/s)" in out.output
    row = next(line for line in lines if line.strip().startswith("concurrency=2"))
    assert row.split() == ["concurrency=2", "180.0", "150.0", "(0.83x", "worse)", "90.0", "(0.50x", "worse)"]
    other = BenchSpec(levels=(1,), requests_per_point=3, workload=SyntheticWorkload(LengthDist(7), LengthDist(4)),
                      saturation=SaturationPolicy.disabled(), seed=5)  # fmt: skip
    diff = _run_id(cli_env, stored_run(cli_env, spec=other).run_uid)
    refused = CliRunner().invoke(bench, ["compare", str(q4), str(diff)])
    assert refused.exit_code == 1 and "ran a different workload" in refused.output
    assert "Traceback" not in refused.output
    bad = CliRunner().invoke(bench, ["compare", str(q4)])
    assert bad.exit_code == 2 and "at least two runs" in bad.output and "Traceback" not in bad.output
