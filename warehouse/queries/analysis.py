"""Long-range analysis over the Parquet lake with DuckDB (months of history without touching Postgres).

The lake is written by ``warehouse.exports`` (``<lake>/<table>/date=YYYY-MM-DD/part-0.parquet``). Every
function takes the lake directory, a date range ``[start, end)`` of partitions and a grain (``day``,
``week`` starting Monday, or ``month``) and returns a polars DataFrame with a fixed schema; a table with
no exported partition yet gives an empty frame. Filtering on the hive ``date`` column prunes whole
partitions, so a three-month view opens ~90 files per table whatever the lake's size. Periods come from
the partition date (a UTC day), so no time-zone conversion happens in DuckDB.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

GRAINS = ("day", "week", "month")


def table_glob(lake: Path, table: str) -> str:
    return str(lake / table / "date=*" / "*.parquet")


def has_table(lake: Path, table: str) -> bool:
    return any((lake / table).glob("date=*/*.parquet"))


def _query(
    lake: Path, table: str, sql: str, params: list[Any], schema: dict[str, Any], grain: str | None = None
) -> pl.DataFrame:
    if grain is not None and grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}, got {grain!r}")
    if not has_table(lake, table):
        return pl.DataFrame(schema=schema)
    src = f"read_parquet({_quote(table_glob(lake, table))}, hive_partitioning = true)"
    with duckdb.connect() as con:
        rel = con.execute(sql.format(src=src, grain=grain), params)
        names = [d[0] for d in rel.description or []]
        rows = rel.fetchall()
    return pl.DataFrame(rows, schema=names, orient="row").cast(schema).select(list(schema))  # type: ignore[arg-type]


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


USAGE_SCHEMA = {
    "period": pl.Date,
    "provider_id": pl.Utf8,
    "requests": pl.Int64,
    "errors": pl.Int64,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cache_tokens": pl.Int64,
    "swaps": pl.Int64,
    "busy_h": pl.Float64,
}

_USAGE = """
SELECT date_trunc('{grain}', date)::DATE AS period, provider_id,
       sum(requests) AS requests, sum(errors) AS errors, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(cache_tokens) AS cache_tokens, sum(swaps) AS swaps,
       sum(busy_ms) / 3600000.0 AS busy_h
FROM {src}
WHERE date >= ? AND date < ?
GROUP BY ALL
ORDER BY period, provider_id
"""


def usage_trend(lake: Path, start: date, end: date, grain: str = "week") -> pl.DataFrame:
    """Requests, errors, tokens, swaps and busy hours per period and provider (``rollup_activity_1d``)."""
    return _query(lake, "rollup_activity_1d", _USAGE, [start, end], USAGE_SCHEMA, grain)


SPEED_SCHEMA = {
    "period": pl.Date,
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "n": pl.Int64,
    "gen_p50": pl.Float64,
    "gen_p95": pl.Float64,
    "prompt_p50": pl.Float64,
}

_SPEED = """
SELECT date_trunc('{grain}', date)::DATE AS period, provider_id, model_id,
       count(*) FILTER (WHERE tokens_per_second > 0) AS n,
       quantile_cont(tokens_per_second, 0.5) FILTER (WHERE tokens_per_second > 0) AS gen_p50,
       quantile_cont(tokens_per_second, 0.95) FILTER (WHERE tokens_per_second > 0) AS gen_p95,
       quantile_cont(prompt_per_second, 0.5) FILTER (WHERE prompt_per_second > 0) AS prompt_p50
FROM {src}
WHERE date >= ? AND date < ?
GROUP BY ALL
HAVING count(*) FILTER (WHERE tokens_per_second > 0) >= ?
ORDER BY period, provider_id, model_id
"""


def speed_trend(
    lake: Path, start: date, end: date, grain: str = "week", min_samples: int = 1
) -> pl.DataFrame:
    """Generation/prompt speed percentiles per period and model, from the exported raw ``activity`` rows.

    Exact percentiles over every request of the period (``-1``/``0`` sentinels excluded), which is what
    would be slow against months of raw rows in Postgres.
    """
    return _query(lake, "activity", _SPEED, [start, end, min_samples], SPEED_SCHEMA, grain)


ENERGY_SCHEMA = {
    "period": pl.Date,
    "provider_id": pl.Utf8,
    "energy_kwh": pl.Float64,
    "power_w_mean": pl.Float64,
    "temp_c_mean": pl.Float64,
    "temp_c_max": pl.Float64,
    "util_pct_mean": pl.Float64,
}

_ENERGY = """
SELECT date_trunc('{grain}', date)::DATE AS period, provider_id,
       sum(energy_j) / 3600000.0 AS energy_kwh,
       sum(power_w_mean * samples) / sum(samples) AS power_w_mean,
       sum(temp_c_mean * samples) / sum(samples) AS temp_c_mean,
       max(temp_c_max) AS temp_c_max,
       sum(util_pct_mean * samples) / sum(samples) AS util_pct_mean
FROM {src}
WHERE date >= ? AND date < ?
GROUP BY ALL
ORDER BY period, provider_id
"""


def energy_trend(lake: Path, start: date, end: date, grain: str = "week") -> pl.DataFrame:
    """GPU energy (kWh, summed over a host's GPUs), mean power, temperature and utilisation per period and host."""
    return _query(lake, "rollup_gpu_1h", _ENERGY, [start, end], ENERGY_SCHEMA, grain)


_SIMULATED = """
SELECT DISTINCT provider_id FROM read_parquet({src}, hive_partitioning = true, union_by_name = true)
WHERE date >= ? AND date < ? AND simulated
"""


def simulated_providers(lake: Path, start: date, end: date) -> list[str]:
    """Providers that were simulated hosts (the demo fleet: synthetic speeds, power and energy) in any exported
    row of ``[start, end)``: the ``simulated`` flag of the activity, rollup and GPU exports. Partitions exported
    before the flag existed have no such column and count as not simulated."""
    found: set[str] = set()
    for table in ("rollup_activity_1d", "rollup_gpu_1h", "activity"):
        if not has_table(lake, table):
            continue
        with duckdb.connect() as con:
            try:
                rows = con.execute(_SIMULATED.format(src=_quote(table_glob(lake, table))), [start, end]).fetchall()
            except duckdb.BinderException:  # no partition of this table has the column yet
                continue
        found.update(str(r[0]) for r in rows)
    return sorted(found)


INVENTORY_SCHEMA = {"table": pl.Utf8, "partitions": pl.Int64, "first_day": pl.Date, "last_day": pl.Date}


def lake_inventory(lake: Path) -> pl.DataFrame:
    """Exported tables with their partition count and first/last day (from directory names only)."""
    rows = []
    if lake.is_dir():
        for tdir in sorted(p for p in lake.iterdir() if p.is_dir() and not p.name.startswith(".")):
            days = sorted(
                date.fromisoformat(d.name.removeprefix("date="))
                for d in tdir.glob("date=*")
                if (d / "part-0.parquet").exists()
            )
            if days:
                rows.append(
                    {"table": tdir.name, "partitions": len(days), "first_day": days[0], "last_day": days[-1]}
                )
    return pl.DataFrame(rows, schema=INVENTORY_SCHEMA)
