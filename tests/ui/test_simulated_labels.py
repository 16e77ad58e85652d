"""Simulated is always labelled: every page that draws numbers of a simulated host (the demo fleet, whose
/api/hardware says ``"simulated": true``) says "(simulated)" next to them — tiles, tables, chart legends and
titles — and nothing of a real host is labelled. Known data: the seeded fleet of `tests.ui.conftest.live_fleet`
(alpha: GPU, perf, 60 requests; beta offline; gamma idle) with alpha made simulated; the benchmark, digest and
lake pages on their own known rows."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text, update
from streamlit.testing.v1 import AppTest

from core.settings import get_settings
from tests.ui.conftest import run_page

SIMULATED_BOOT = """UPDATE instance_boots SET hardware = '{"simulated": true}' WHERE provider_id = :p"""


def simulate(engine: Engine, provider_id: str = "alpha") -> None:
    with engine.begin() as c:
        c.execute(text(SIMULATED_BOOT), {"p": provider_id})


def charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def title(chart: dict[str, Any]) -> str:
    t = chart["layout"].get("title")
    return str(t["text"] if isinstance(t, dict) else t)


def names(chart: dict[str, Any]) -> list[str]:
    return [t.get("name") for t in chart["data"] if t.get("name")]


def test_home_tiles_say_the_gpus_are_simulated(live_fleet: datetime, app_env: Engine) -> None:
    """alpha's one GPU (250 W) is the fleet's only GPU: the fleet-wide GPU tiles are all simulated."""
    simulate(app_env)
    at = run_page("app.py")
    assert not at.exception, at.exception
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["GPUs (simulated)"] == "1"
    assert tiles["GPU power now (simulated)"] == "250 W"
    assert "Hottest GPU (simulated)" in tiles and "GPUs" not in tiles


def test_home_tiles_of_a_real_fleet_are_not_labelled(live_fleet: datetime, app_env: Engine) -> None:
    at = run_page("app.py")
    assert not at.exception, at.exception
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["GPUs"] == "1" and tiles["GPU power now"] == "250 W"
    assert not [label for label in tiles if "simulated" in label]


def test_partly_simulated_fleet_figures_say_how_many() -> None:
    from ui.widgets import simulated_suffix

    assert simulated_suffix(1, 3) == " (incl. 1 simulated)"
    assert simulated_suffix(3, 3) == " (simulated)"
    assert simulated_suffix(0, 3) == "" and simulated_suffix(0, 0) == ""


def test_fleet_host_tiles_of_a_simulated_host(live_fleet: datetime, app_env: Engine) -> None:
    simulate(app_env)
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert {"CPU (simulated)", "RAM of 31.2 GiB (simulated)", "Load (1 min) (simulated)"} <= set(labels), labels


def test_activity_labels_the_simulated_hosts_requests_and_speeds(live_fleet: datetime, app_env: Engine) -> None:
    simulate(app_env)
    at = run_page("pages/2_Activity.py")
    assert not at.exception, at.exception
    rows = at.dataframe[0].value
    assert set(rows["provider_id"]) == {"alpha (simulated)"} and len(rows) == 50  # 60 requests, 50 per page
    assert any("Includes requests served by simulated hosts (alpha" in c.value for c in at.caption)
    hist = [title(c) for c in charts(at)]
    assert hist == ["Prompt processing speed (incl. simulated hosts)", "Generation speed (incl. simulated hosts)"]


def test_activity_of_a_real_host_is_not_labelled(live_fleet: datetime, app_env: Engine) -> None:
    at = run_page("pages/2_Activity.py")
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["provider_id"]) == {"alpha"}
    assert [title(c) for c in charts(at)] == ["Prompt processing speed", "Generation speed"]
    assert not [c.value for c in at.caption if "simulated" in c.value]


def test_performance_legends_name_the_simulated_host(live_fleet: datetime, app_env: Engine) -> None:
    simulate(app_env)
    at = run_page("pages/5_Performance.py")
    assert not at.exception, at.exception
    drawn = {title(c): c for c in charts(at)}
    assert names(drawn["CPU utilisation"]) == ["alpha (simulated)", "gamma"]
    assert names(drawn["GPU power"]) == ["alpha (simulated)"]  # energy above all: the one GPU's power
    assert drawn["GPU power"]["layout"]["showlegend"] is True  # shown even for one line
    assert any("*(simulated)* are the demo fleet" in c.value for c in at.caption)


def test_models_page_labels_a_simulated_hosts_load_times(live_fleet: datetime, app_env: Engine) -> None:
    simulate(app_env)
    at = run_page("pages/4_Models.py")
    at.selectbox(key="models_pick").set_value("alpha/qwen").run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "Load time p50 (simulated)" in labels and "Last load time (simulated)" in labels
    assert [m.value for m in at.metric if m.label == "Load time p50 (simulated)"] == ["3.0 s"]
    assert "Load times (simulated host)" in [title(c) for c in charts(at)]
    assert [e.label for e in at.expander if "(simulated)" in e.label] == [
        e.label for e in at.expander if e.label.startswith("alpha")
    ]
    favorites = at.dataframe[0].value
    assert set(favorites["provider_id"]) == {"alpha (simulated)"}  # beta's favorite is hidden (offline)
    # a real host's model is not labelled
    at.selectbox(key="models_pick").set_value("gamma/embed").run()
    assert not [m.label for m in at.metric if "simulated" in m.label]


def test_benchmark_energy_and_latency_of_a_simulated_run(app_env: Engine) -> None:
    from tests.bench_engine.test_page import seeded
    from warehouse.schema_bench import bench_runs

    run_ids = seeded(app_env)
    with app_env.begin() as conn:
        conn.execute(update(bench_runs).where(bench_runs.c.id == run_ids[2]).values(simulated=True, j_per_token=23.2))
        conn.execute(update(bench_runs).where(bench_runs.c.id == run_ids[1]).values(j_per_token=0.1234))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "pages/6_Benchmarks.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    rows = at.dataframe[0].value
    assert dict(zip(rows["run_id"], rows["energy"], strict=True)) == {
        run_ids[2]: "23.2 J/token (simulated)", run_ids[1]: "0.123 J/token", run_ids[0]: "—"}
    latency = [title(c) for c in charts(at) if title(c).startswith("TTFT per request")]
    assert len(latency) == 1 and latency[0].startswith(f"TTFT per request — #{run_ids[2]} ")
    assert latency[0].endswith(" (simulated)")  # the newest run, picked first, is the simulated one
    at.selectbox(key="bench_baseline_run").set_value(run_ids[2]).run()
    assert any(f"Run #{run_ids[2]} measured a simulated host" in c.value for c in at.caption)


def test_benchmark_band_of_a_simulated_baseline(app_env: Engine) -> None:
    from tests.bench_engine.test_page import seeded
    from warehouse.schema_bench import bench_runs

    run_ids = seeded(app_env)  # runs 0 and 1 are the baseline
    with app_env.begin() as conn:
        conn.execute(update(bench_runs).where(bench_runs.c.id.in_(run_ids)).values(simulated=True))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "pages/6_Benchmarks.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    curves = names(charts(at)[0])
    assert "baseline ± noise (simulated)" in curves and "baseline median (simulated)" in curves


@pytest.fixture()
def lake_env(app_env: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    return tmp_path / "lake"


D = datetime(2026, 3, 2, tzinfo=UTC)


def scenario(db: Engine) -> None:
    """tests.flows.synthetic: provider p1, five requests and GPU samples on 2026-03-02, a boot that says simulated."""
    from tests.flows.synthetic import add_boot, load_activity_scenario, load_gpu_scenario
    from warehouse.rollups import rollup_window

    load_gpu_scenario(db)
    load_activity_scenario(db)
    with db.begin() as conn:
        add_boot(conn, "boot-sim", D, D + timedelta(hours=20))
        rollup_window(conn, D - timedelta(days=1), D + timedelta(days=1))
    simulate(db, "p1")


def test_digest_figures_and_tables_label_the_simulated_host(lake_env: Path, app_env: Engine) -> None:
    from reports.digest import build_digest, render_digest, store_report

    scenario(app_env)
    rendered = render_digest(build_digest(app_env, "daily", D))
    with app_env.begin() as conn:
        store_report(conn, rendered)
    at = run_page("pages/7_Reports.py")
    assert not at.exception, at.exception
    drawn = {title(c): c for c in charts(at)}
    assert drawn["Tokens per provider/model"]["data"][0]["y"] == ["p1/m2 (simulated)", "p1/m1 (simulated)"]
    assert names(drawn["Requests per hour (UTC)"]) == ["p1 (simulated)"]
    assert drawn["Generation speed (tokens/s)"]["data"][0]["x"] == ["p1/m1 (simulated)"]
    body = "\n".join(m.value for m in at.markdown)
    # every table row of p1 says so (usage m1 m2, speeds m1, uptime, errors m1, swaps m1 m2, and the sections added
    # since, such as swap thrash); the headline names it
    rows = [line for line in body.splitlines() if line.startswith("| p1")]
    assert len(rows) >= 7 and all(line.startswith("| p1 \\(simulated\\) |") for line in rows), rows
    assert "Simulated hosts (the demo fleet" in body


def test_exports_flag_simulated_requests_and_samples(lake_env: Path, app_env: Engine) -> None:
    import polars as pl

    from warehouse.exports import export_days

    scenario(app_env)
    export_days(app_env, lake_env, [D.date()], ["activity", "gpu_samples", "perf_samples"])
    for table, n in (("activity", 5), ("gpu_samples", 6), ("perf_samples", 3)):
        flags = pl.read_parquet(lake_env / table / f"date={D.date()}" / "part-0.parquet")["simulated"].to_list()
        assert flags == [True] * n, table


def test_analysis_labels_the_simulated_host_everywhere(lake_env: Path, app_env: Engine) -> None:
    from warehouse.exports import export_days

    scenario(app_env)
    export_days(app_env, lake_env, [D.date()], ["activity", "rollup_activity_1d", "rollup_gpu_1h"])
    at = run_page("pages/8_Analysis.py")
    assert not at.exception, at.exception
    drawn = {title(c): c for c in charts(at)}
    assert names(drawn["Tokens and requests"]) == ["p1 (simulated) output tokens", "requests"]
    assert names(drawn["Generation speed (tokens/s)"]) == ["p1/m1 (simulated) p50", "p1/m1 (simulated) p95"]
    assert names(drawn["GPU energy (kWh)"]) == ["p1 (simulated)"]
    assert list(at.dataframe[0].value["provider_id"]) == ["p1 (simulated)"]
    assert any("Simulated hosts (the demo fleet) in this range: p1." in c.value for c in at.caption)


def test_analysis_of_a_lake_exported_before_the_flag(lake_env: Path, app_env: Engine) -> None:
    """Partitions written before exports carried ``simulated`` read as not simulated (no error)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from warehouse.queries.analysis import simulated_providers

    old = lake_env / "rollup_activity_1d" / "date=2026-03-01"
    old.mkdir(parents=True)
    pq.write_table(pa.table({"provider_id": ["p1"], "requests": [1]}), old / "part-0.parquet")
    assert simulated_providers(lake_env, date(2026, 3, 1), date(2026, 3, 3)) == []
    scenario(app_env)
    from warehouse.exports import export_days

    export_days(app_env, lake_env, [D.date()], ["rollup_activity_1d"])
    assert simulated_providers(lake_env, date(2026, 3, 1), date(2026, 3, 3)) == ["p1"]
    assert simulated_providers(lake_env, date(2026, 3, 1), date(2026, 3, 2)) == []
