"""Parquet exports read back with DuckDB and Polars and compared row for row with Postgres."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from tests.flows.synthetic import (
    add_boot,
    add_gpu_samples,
    add_perf_samples,
    add_provider,
    add_request,
    add_transition,
    at,
    load_activity_scenario,
)
from warehouse.exports import EXPORTS, FLOATS, export_day, export_days, partition_dir
from warehouse.rollups import rollup_window

DAY = date(2026, 3, 2)


def _load(db):
    load_activity_scenario(db)
    with db.begin() as conn:
        add_request(conn, at(23, 59, 59.999), 5, model="m 'quoted', \"x\"", error="line1\nline2, with comma")
        add_request(conn, at(0, 0, 0, day=at(0, 0) + timedelta(days=1)), 5)  # next day: not exported
        add_request(conn, at(0, 0, 0), 7, error="")  # first instant of the day, empty (not NULL) text
        add_perf_samples(conn, [(at(12, 0, 0), 10.0), (at(12, 0, 5), 20.0)])
        conn.execute(text("UPDATE perf_samples SET cpu_util_per_core = '{}' WHERE cpu_util_pct = 20"))
        add_gpu_samples(conn, [(at(12, 0, 0), 100.0), (at(12, 0, 5), 150.5)])
        add_transition(conn, at(1, 0), None, "ready", model="m3")
        add_boot(conn, "boot-a", at(0, 30), at(18, 0))
    with db.begin() as conn:
        rollup_window(conn, at(0, 0), at(23, 59))


def _pg_rows(db, table, day=DAY):
    spec = EXPORTS[table]
    # the database's own values: arrays as arrays (the export query turns them into text for COPY)
    select = ", ".join(c.name if c.type == FLOATS else (c.sql or c.name) for c in spec.columns)
    sql = (
        f"SELECT {select} FROM {table} WHERE {spec.time_column} >= :start AND {spec.time_column} < :end "
        f"ORDER BY {spec.order_by}"
    )
    start = at(0, 0)
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), {"start": start, "end": start + timedelta(days=1)})]


@pytest.mark.parametrize("table", sorted(EXPORTS))
def test_export_reads_back_row_for_row_with_duckdb_and_polars(db, tmp_path, table):
    _load(db)
    res = export_day(db, table, DAY, tmp_path)
    expected = _pg_rows(db, table)
    assert res.rows == len(expected)
    assert res.rows > 0, "every exported table has rows in the fixture day"
    spec = EXPORTS[table]
    names = [c.name for c in spec.columns]
    jsons = {c.name for c in spec.columns if c.sql and c.sql.endswith("::text")}

    def canon(row):
        out = []
        for name, v in zip(names, row, strict=True):
            if name in jsons and v is not None:
                v = json.loads(v) if isinstance(v, str) else v
            if isinstance(v, float):
                v = round(v, 9)
            if isinstance(v, list):
                v = [float(x) for x in v]
            out.append(v)
        return tuple(out)

    glob = str(tmp_path / table / "*" / "*.parquet")
    cols = ", ".join(f'"{n}"' for n in names)
    duck = duckdb.sql(f"SELECT {cols}, date FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()
    assert {r[-1] for r in duck} == {DAY}
    assert [canon(r[:-1]) for r in duck] == [canon(r) for r in expected]

    pol = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert pol.columns == [*names, "date"]
    assert [canon(r[:-1]) for r in pol.iter_rows()] == [canon(r) for r in expected]

    assert pq.read_schema(res.path).remove_metadata() == spec.schema


def test_reexport_replaces_the_partition_exactly(db, tmp_path):
    _load(db)
    first = export_day(db, "activity", DAY, tmp_path)
    stray = partition_dir(tmp_path, "activity", DAY) / "part-1.parquet"
    stray.write_bytes(b"old")
    with db.begin() as conn:
        conn.execute(text("DELETE FROM activity WHERE model_id = 'm1'"))
    second = export_day(db, "activity", DAY, tmp_path)
    assert (first.rows, second.rows) == (7, 1)  # only the oddly named model is left
    files = sorted(p.name for p in partition_dir(tmp_path, "activity", DAY).iterdir())
    assert files == ["part-0.parquet"]
    assert pq.read_table(second.path).num_rows == second.rows
    assert not any((tmp_path / ".staging").iterdir())
    with db.begin() as conn:
        conn.execute(text("DELETE FROM activity"))
    empty = export_day(db, "activity", DAY, tmp_path)
    assert empty.rows == 0 and empty.path is None
    assert not partition_dir(tmp_path, "activity", DAY).exists()


def test_export_days_covers_tables_and_days(db, tmp_path):
    with db.begin() as conn:
        add_provider(conn)
        add_request(conn, at(10, 0), 5)
        add_request(conn, at(10, 0, day=at(0, 0) + timedelta(days=1)), 5)
    out = export_days(db, tmp_path, [DAY, DAY + timedelta(days=1)], ["activity"])
    assert [(r.day, r.rows) for r in out] == [(DAY, 1), (DAY + timedelta(days=1), 1)]
    n = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/activity/*/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert n == [(2,)]


def test_analysis_queries_over_the_lake(db, tmp_path):
    from tests.flows.synthetic import load_gpu_scenario
    from warehouse.queries import analysis

    assert analysis.usage_trend(tmp_path, DAY, DAY + timedelta(days=1)).height == 0  # no lake yet
    load_gpu_scenario(db)
    load_activity_scenario(db)
    later = at(0, 0) + timedelta(days=8)  # Tuesday of the next week
    with db.begin() as conn:
        add_request(conn, later + timedelta(hours=3), 100, tps=10.0)
        add_request(conn, later + timedelta(hours=4), 100, tps=20.0, status=503)
    with db.begin() as conn:
        rollup_window(conn, at(0, 0), later + timedelta(days=1))
    days = [DAY + timedelta(days=i) for i in range(9)]
    export_days(db, tmp_path, days, ["activity", "rollup_activity_1d", "rollup_gpu_1h"])

    inv = analysis.lake_inventory(tmp_path)
    assert inv.to_dicts() == [
        {"table": "activity", "partitions": 2, "first_day": DAY, "last_day": DAY + timedelta(days=8)},
        {
            "table": "rollup_activity_1d",
            "partitions": 2,
            "first_day": DAY,
            "last_day": DAY + timedelta(days=8),
        },
        {"table": "rollup_gpu_1h", "partitions": 1, "first_day": DAY, "last_day": DAY},
    ]
    week = analysis.usage_trend(tmp_path, DAY, DAY + timedelta(days=14), "week")
    assert week.select("period", "requests", "errors").rows() == [
        (DAY, 5, 1),
        (DAY + timedelta(days=7), 2, 1),
    ]
    month = analysis.usage_trend(tmp_path, DAY, DAY + timedelta(days=14), "month")
    assert month.select("period", "requests").rows() == [(date(2026, 3, 1), 7)]
    pruned = analysis.usage_trend(tmp_path, DAY + timedelta(days=1), DAY + timedelta(days=14), "day")
    assert pruned.select("period", "requests").rows() == [(DAY + timedelta(days=8), 2)]

    speeds = analysis.speed_trend(tmp_path, DAY, DAY + timedelta(days=14), "week")
    assert speeds.select("period", "model_id", "n", "gen_p50").rows() == [
        (DAY, "m1", 4, 35.0),
        (DAY + timedelta(days=7), "m1", 2, 15.0),
    ]
    energy = analysis.energy_trend(tmp_path, DAY, DAY + timedelta(days=14), "week")
    assert energy["energy_kwh"].to_list() == [pytest.approx(10000 / 3.6e6)]
    assert energy["power_w_mean"].to_list() == [pytest.approx(150)]
    with pytest.raises(ValueError):
        analysis.usage_trend(tmp_path, DAY, DAY, "year")


NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks.md"


def test_notebooks_doc_lists_every_exported_table_and_column():
    doc = NOTEBOOKS.read_text()
    for name, spec in EXPORTS.items():
        assert f"### `{name}`" in doc
        section = doc.split(f"### `{name}`", 1)[1].split("### ", 1)[0]
        for col in spec.columns:
            assert f"| `{col.name}` | `{col.type}` |" in section, (name, col.name)


def test_notebooks_doc_snippets_run_against_a_lake(db, tmp_path):
    import re

    from tests.flows.synthetic import load_gpu_scenario

    load_gpu_scenario(db)
    load_activity_scenario(db)
    with db.begin() as conn:
        rollup_window(conn, at(0, 0), at(23, 0))
    export_days(db, tmp_path, [DAY], ["activity", "rollup_gpu_1h", "rollup_activity_1d"])
    blocks = re.findall(r"```python\n(.*?)```", NOTEBOOKS.read_text(), re.S)
    assert len(blocks) == 3
    for code in blocks:
        code = code.replace('"/home/me/.local/share/boocontrol/lake"', repr(str(tmp_path)))
        code = code.replace("DATE '2026-01-01'", "DATE '2026-03-01'").replace("2026, 1, 1", "2026, 3, 1")
        scope: dict = {}
        exec(compile(code, "notebooks.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert scope["daily"]["output_tokens"].sum() == 195


def test_rows_of_a_simulated_host_are_flagged_by_the_boot_of_their_period(db, tmp_path):
    """Energy and speeds of the demo fleet are synthetic: each rollup row carries the flag of the host's boot that
    was current in its period (the newest first seen before the period ended)."""
    _load(db)

    def flags(table: str) -> list[bool]:
        res = export_day(db, table, DAY, tmp_path)
        return pl.read_parquet(res.path)["simulated"].to_list()

    assert flags("rollup_gpu_1h") == [False] and flags("instance_boots") == [False]
    with db.begin() as conn:
        conn.execute(text("""UPDATE instance_boots SET hardware = '{"simulated": true}' WHERE boot_marker = 'boot-a'"""))
    assert flags("rollup_gpu_1h") == [True] and flags("instance_boots") == [True]
    assert set(flags("rollup_host_1h")) == {True} and set(flags("rollup_activity_1h")) == {True}
    with db.begin() as conn:  # a real llama-swap replaced the demo host at 11:00, before the 12:00 GPU bucket
        add_boot(conn, "boot-b", at(11, 0), at(18, 0))
    assert flags("rollup_gpu_1h") == [False] and flags("instance_boots") == [True, False]
