"""The Benchmarks page (AppTest) on stored runs, and the figure builders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import streamlit as st
from sqlalchemy import Engine, update
from streamlit.testing.v1 import AppTest

from core.settings import get_settings
from engines.bench.report import band_frame, bands_for, with_pareto
from reports import bench_figures as bf
from warehouse import bench_store
from warehouse.queries import bench as q
from warehouse.schema_bench import bench_points, bench_runs

from .test_store import SPEC, stored_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def page_env(db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Engine]:
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(tmp_path / "no-fleet.yaml"))
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield db
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


def seeded(db: Engine) -> list[int]:
    outs = [stored_run(db) for _ in range(3)]
    ids = {u: i for u, i in zip(q.list_runs(db)["run_uid"], q.list_runs(db)["run_id"], strict=True)}
    run_ids = [ids[o.run_uid] for o in outs]
    with db.begin() as conn:
        bench_store.set_baseline(conn, run_ids[0])
        bench_store.set_baseline(conn, run_ids[1])
        conn.execute(update(bench_points).where(bench_points.c.run_id == run_ids[2])
                     .values(tpot_p50_ms=bench_points.c.tpot_p50_ms * 3 + 1))  # fmt: skip
    return run_ids


def test_page_on_an_empty_database(page_env: Engine) -> None:
    at = AppTest.from_file(str(ROOT / "pages/6_Benchmarks.py"), default_timeout=60).run()
    assert not at.exception
    assert "No benchmark runs yet" in at.info[0].value


def test_page_shows_runs_drift_curves_and_pareto(page_env: Engine) -> None:
    run_ids = seeded(page_env)
    at = AppTest.from_file(str(ROOT / "pages/6_Benchmarks.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="bench_model").value == "p/m"
    assert "slower than the baseline" in at.warning[0].value
    assert at.multiselect(key="bench_runs").value == sorted(run_ids, reverse=True)
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    # the interval table of the first selected run: one row per stored point, every figure with its interval
    sure = next(d.value for d in at.dataframe if "prefill tok/s (server timings)" in d.value.columns)
    stored = q.run_points(page_env, [run_ids[2]])
    assert sure["level"].tolist() == [f"{v:g}" for v in stored["level"].to_list()]
    assert all(" [" in cell and "–" in cell for cell in sure["TTFT p50 ms"])
    assert any("How sure: 95 % bootstrap intervals of" in e.label for e in at.expander)
    downloads = at.get("download_button")
    assert len(downloads) == 3  # json, csv and the html report (built when clicked)
    from ui import bench_data

    exported = json.loads(bench_data.export(tuple(sorted(run_ids, reverse=True)), "json"))
    assert [r["run"]["id"] for r in exported["runs"]] == sorted(run_ids, reverse=True)
    report_html = bench_data.export(tuple(sorted(run_ids, reverse=True)), "html")  # what the HTML button sends
    assert report_html.startswith("<!doctype html>") and all(f"Run #{r} " in report_html for r in run_ids)
    at.selectbox(key="bench_metric").set_value("output_throughput").run()
    assert not at.exception
    at.selectbox(key="bench_baseline_run").set_value(run_ids[2]).run()
    at.button(key="bench_baseline_add").click().run()
    assert not at.exception
    assert q.baseline_run_ids(page_env, "p", "m") == sorted(run_ids)


def test_figures(db: Engine) -> None:
    run_ids = seeded(db)
    pts = q.run_points(db, run_ids)
    band = band_frame(bands_for(db, "p", "m", SPEC.workload_key()), "tpot_p50_ms", "concurrency")
    fig = bf.sweep_curves(pts, "tpot_p50_ms", "concurrency", band)
    names = [t.name for t in fig.data]
    assert names[:2] == ["baseline ± noise", "baseline median"] and len(names) == 2 + 3
    assert fig.layout.yaxis.title.text == "TPOT p50 (ms)"
    assert list(fig.data[2].x) == [1.0, 2.0]
    empty = bf.sweep_curves(pts, "tpot_p50_ms", "rate")
    assert empty.layout.annotations[0].text == "no sweep points for this selection"
    par = bf.pareto(with_pareto(pts, "output_throughput", "tpot_p50_ms"))
    assert par.data[-1].name == "Pareto frontier" and len(par.data[-1].x) >= 1
    assert bf.pareto(pl.DataFrame()).layout.annotations
    dist = bf.latency_distribution(q.run_requests(db, run_ids[0]), "ttft_ms")
    assert [t.name for t in dist.data] == ["1", "2"]


def test_page_compares_models_of_the_same_workload(page_env: Engine) -> None:
    mine = seeded(page_env)  # p/m, three runs
    uid = stored_run(page_env, model="m-q8").run_uid
    runs = q.list_runs(page_env)
    q8 = int(runs.filter(runs["run_uid"] == uid)["run_id"][0])
    with page_env.begin() as conn:
        conn.execute(
            update(bench_points).where(bench_points.c.run_id == mine[2]).values(output_throughput=120.0)
        )
        conn.execute(update(bench_points).where(bench_points.c.run_id == q8).values(output_throughput=30.0))
    at = AppTest.from_file(str(ROOT / "pages/6_Benchmarks.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    at.selectbox(key="bench_model").set_value("p/m").run()
    cmp = at.multiselect(key="bench_compare_runs")
    assert cmp.value == [mine[2]]  # the newest selected run of p/m is the reference
    expected = [f"#{i} p/{m} " for i, m in zip([*mine, q8], ["m", "m", "m", "m-q8"], strict=True)]
    assert sorted(o[: len(e)] for o, e in zip(sorted(cmp.options), sorted(expected), strict=True)) == sorted(
        expected
    )
    assert "Pick a second run: 3 other run(s)" in at.caption[-1].value
    cmp.set_value([mine[2], q8]).run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    row = table[(table["metric"] == "Output throughput (tok/s)") & (table["level"] == 1.0)]
    assert row[f"#{mine[2]}"].tolist() == ["120.0"] and row[f"#{q8}"].tolist() == ["30.0 (0.25x worse)"]
    curves = at.get("plotly_chart")[-1]
    names = [t["name"] for t in json.loads(curves.proto.spec)["data"]]
    assert names == [f"p/m #{mine[2]}", f"p/m-q8 #{q8}"]


def test_runs_table_has_named_columns_and_no_none(page_env: Engine) -> None:
    """Headings a person reads ("Energy", not ``j_per_token``) and "—" for what a run did not measure."""
    seeded(page_env)
    at = AppTest.from_file(str(ROOT / "pages/6_Benchmarks.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    table = at.dataframe[0]
    labels = {k: v.get("label") for k, v in json.loads(table.proto.columns).items()}
    assert labels["energy"] == "Energy" and labels["foreign_requests"] == "Other clients' requests"
    assert list(table.proto.column_order)[:3] == ["run_id", "started_at", "status"]
    rows = table.value
    assert set(rows["energy"]) == {"—"}  # no power readings in the seeded runs
    assert not rows.isna().any().any()


def test_simulated_runs_are_labelled_wherever_their_numbers_appear(page_env: Engine) -> None:
    """A run of a simulated host (the demo fleet) is marked in the runs table, the run choices, the curves' legend
    and a warning; the others are not."""
    run_ids = seeded(page_env)
    with page_env.begin() as conn:
        conn.execute(update(bench_runs).where(bench_runs.c.id == run_ids[2]).values(simulated=True))
    at = AppTest.from_file(str(ROOT / "pages/6_Benchmarks.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning if "simulated host" in w.value][0].startswith(
        "1 of these runs measured a simulated host (the demo fleet)")
    rows = at.dataframe[0].value
    assert dict(zip(rows["run_id"], rows["simulated"], strict=True)) == {
        run_ids[0]: False, run_ids[1]: False, run_ids[2]: True}
    options = at.multiselect(key="bench_runs").options
    assert [o.startswith(f"#{run_ids[2]} ") for o in options] == [o.endswith(" (simulated)") for o in options]
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert [n for n in names if n.endswith(" (simulated)")] == [n for n in names if f"#{run_ids[2]} " in n + " "]
    assert len([n for n in names if n.endswith(" (simulated)")]) == 1
