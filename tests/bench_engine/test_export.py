"""`boocontrol bench export`: the files read back and compared with the stored rows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from core.settings import get_settings
from warehouse import bench_store
from warehouse.queries import bench as q

from .test_store import stored_run


@pytest.fixture()
def two_runs(db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(tmp_path / "no-fleet.yaml"))
    get_settings.cache_clear()
    uids = [stored_run(db).run_uid for _ in range(2)]
    ids = dict(zip(q.list_runs(db)["run_uid"], q.list_runs(db)["run_id"], strict=True))
    yield [int(ids[u]) for u in uids]
    get_settings.cache_clear()


def test_json_export_reads_back_as_the_stored_rows(db: Engine, two_runs: list[int], tmp_path: Path) -> None:
    from cli.bench import bench

    out = tmp_path / "runs.json"
    res = CliRunner().invoke(bench, ["export", *map(str, two_runs), "--format", "json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["format"] == "boocontrol-bench-export" and [r["run"]["id"] for r in data["runs"]] == two_runs
    for rid, exported in zip(two_runs, data["runs"], strict=True):
        stored_points = q.run_points(db, [rid])
        assert [p["output_throughput"] for p in exported["points"]] == stored_points["output_throughput"].to_list()
        assert [p["ttft_p50_ms"] for p in exported["points"]] == stored_points["ttft_p50_ms"].to_list()
        with db.connect() as conn:
            summaries = bench_store.point_summaries(conn, rid)
        assert [p["summary"] for p in exported["points"]] == [s["summary"] for s in summaries]
        assert len(exported["requests"]) == q.run_requests(db, rid).height > 0
        assert exported["run"]["params"] == q.run_detail(db, rid)["params"]  # type: ignore[index]


def test_csv_export_one_row_per_point_with_intervals(db: Engine, two_runs: list[int]) -> None:
    from cli.bench import bench

    res = CliRunner().invoke(bench, ["export", *map(str, two_runs), "--format", "csv"])
    assert res.exit_code == 0, res.output
    frame = pl.read_csv(io.StringIO(res.output))
    stored = q.run_points(db, two_runs)
    assert frame.height == stored.height
    assert frame["output_throughput"].to_list() == pytest.approx(stored["output_throughput"].to_list())
    with db.connect() as conn:
        s0 = bench_store.point_summaries(conn, two_runs[0])[0]["summary"]
    row = frame.filter((pl.col("run_id") == two_runs[0]) & (pl.col("idx") == 0)).row(0, named=True)
    assert row["ttft_ms_p50_low"] == pytest.approx(s0["intervals"]["ttft_ms"]["p50"]["low"])
    assert row["ttft_ms_p50_high"] == pytest.approx(s0["intervals"]["ttft_ms"]["p50"]["high"])
    # unknown runs: a one-line usage error
    bad = CliRunner().invoke(bench, ["export", "999999"])
    assert bad.exit_code == 2 and "no run 999999" in bad.output
