"""Export flow: closed UTC days of the warehouse to the hive-partitioned Parquet lake."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, get_run_logger

from flows.windows import days_ending, yesterday
from tasks.warehouse import export_day
from warehouse.exports import EXPORTS


@flow(name="export-parquet")
def export_parquet(
    day: date | None = None, days: int = 1, tables: list[str] | None = None, lake_dir: str | None = None
) -> list[dict[str, Any]]:
    """Export ``days`` UTC days ending with ``day`` (default: yesterday) of ``tables`` (default: all).

    Each (table, day) replaces ``<lake>/<table>/date=<day>/part-0.parquet`` exactly. ``lake_dir``
    defaults to ``<data_dir>/lake``. Days the database no longer fully holds are skipped.
    """
    names = tables or sorted(EXPORTS)
    unknown = sorted(set(names) - set(EXPORTS))
    if unknown:
        raise ValueError(f"unknown export tables {unknown}; known: {sorted(EXPORTS)}")
    results = [export_day(t, d, lake_dir) for d in days_ending(day or yesterday(), days) for t in names]
    get_run_logger().info(
        "exported %d partitions, %d rows", len(results), sum(int(r["rows"]) for r in results)
    )
    return results
