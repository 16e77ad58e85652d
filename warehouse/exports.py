"""Parquet exports for notebook analysis: one file per table and UTC day in a hive-partitioned lake.

Layout::

    <lake>/<table>/date=YYYY-MM-DD/part-0.parquet

* **Exact replacement.** ``export_day`` writes the day to a staging file under ``<lake>/.staging/`` (same
  filesystem), then ``os.replace``-s it over ``part-0.parquet`` (atomic: a reader sees the old file or the
  new one, never a partial one) and removes any other file in the partition. A day with no rows removes
  the partition, so a partition always mirrors what the database held for that day when it was exported.
  (The export flow does not re-export days older than a table's raw retention; see flows/exports.py.)
* **Stable schemas.** Every table has an explicit ``pyarrow`` schema (``EXPORTS`` below, documented in
  ``docs/notebooks.md``): timestamps are ``timestamp[us, tz=UTC]``, ``jsonb`` columns are JSON text,
  ``double precision[]`` is ``list<double>``. Columns are only ever added at the end, never renamed. The
  ``date`` partition column is not stored in the files; hive-aware readers add it.
* **Fast path.** ``COPY (SELECT ...) TO STDOUT (FORMAT CSV)`` is streamed through ``pyarrow``'s CSV reader
  with the explicit column types into a ``ParquetWriter``; memory stays bounded by the row-group size.
  Rows are ordered by the day's time column and key, so re-exporting unchanged data gives the same rows in
  the same order.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Engine

log = logging.getLogger(__name__)

TS = pa.timestamp("us", tz="UTC")
JSON = pa.string()  # JSON text of a jsonb column
FLOATS = pa.list_(pa.float64())
ROW_GROUP_ROWS = 256_000


@dataclass(frozen=True)
class Col:
    name: str
    type: pa.DataType
    sql: str | None = None  # SQL expression when it is not the column itself


@dataclass(frozen=True)
class ExportTable:
    """One exported table: its day column, ordering key and explicit Arrow schema."""

    name: str
    time_column: str
    order_by: str
    columns: tuple[Col, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])

    def query(self) -> str:
        select = ", ".join(f"{c.sql} AS {c.name}" if c.sql else c.name for c in self.columns)
        return (
            f"SELECT {select} FROM {self.name} "
            f"WHERE {self.time_column} >= %(start)s AND {self.time_column} < %(end)s "
            f"ORDER BY {self.order_by}"
        )


def _simulated(table: str, time_column: str, span: str) -> Col:
    """``simulated``: the row's host was a simulator then (the demo fleet: synthetic speeds, power and energy) —
    the newest boot first seen before the row's period ended (``span`` after ``time_column``; a sample or request
    is a point: ``0 seconds``) said ``"simulated": true`` in its /api/hardware."""
    return Col("simulated", pa.bool_(), (
        "COALESCE((SELECT ib.hardware->'simulated' = 'true'::jsonb FROM instance_boots ib "
        f"WHERE ib.provider_id = {table}.provider_id AND ib.first_seen_at < {table}.{time_column} + interval '{span}' "
        "ORDER BY ib.first_seen_at DESC LIMIT 1), false)"))


def _rollup_activity(name: str) -> ExportTable:
    return ExportTable(
        name,
        "bucket_start",
        "bucket_start, provider_id, model_id",
        (
            Col("provider_id", pa.string()),
            Col("model_id", pa.string()),
            Col("bucket_start", TS),
            Col("requests", pa.int32()),
            Col("errors", pa.int32()),
            Col("input_tokens", pa.int64()),
            Col("output_tokens", pa.int64()),
            Col("cache_tokens", pa.int64()),
            Col("request_ms", pa.int64()),
            Col("busy_ms", pa.int64()),
            Col("prompt_tps_samples", pa.int32()),
            Col("prompt_tps_p50", pa.float64()),
            Col("prompt_tps_p95", pa.float64()),
            Col("prompt_tps_p99", pa.float64()),
            Col("gen_tps_samples", pa.int32()),
            Col("gen_tps_p50", pa.float64()),
            Col("gen_tps_p95", pa.float64()),
            Col("gen_tps_p99", pa.float64()),
            Col("swaps", pa.int32()),
            Col("loads_timed", pa.int32()),
            Col("load_ms_sum", pa.int64()),
            Col("load_ms_max", pa.int64()),
            _simulated(name, "bucket_start", "1 hour" if name.endswith("_1h") else "1 day"),
        ),
    )


EXPORTS: dict[str, ExportTable] = {
    t.name: t
    for t in (
        ExportTable(
            "activity",
            "finished_at",
            "finished_at, provider_id, epoch, upstream_id",
            (
                Col("provider_id", pa.string()),
                Col("epoch", pa.string()),
                Col("upstream_id", pa.int64()),
                Col("finished_at", TS),
                Col("model_id", pa.string()),
                Col("req_path", pa.string()),
                Col("resp_content_type", pa.string()),
                Col("status_code", pa.int16()),
                Col("input_tokens", pa.int32()),
                Col("output_tokens", pa.int32()),
                Col("cache_tokens", pa.int32()),
                Col("draft_tokens", pa.int32()),
                Col("draft_acc_tokens", pa.int32()),
                Col("prompt_per_second", pa.float64()),
                Col("tokens_per_second", pa.float64()),
                Col("duration_ms", pa.int32()),
                Col("has_capture", pa.bool_()),
                Col("error_msg", pa.string()),
                Col("metadata", JSON, "metadata::text"),
                Col("ingested_at", TS),
                _simulated("activity", "finished_at", "0 seconds"),
            ),
        ),
        ExportTable(
            "perf_samples",
            "sampled_at",
            "sampled_at, provider_id",
            (
                Col("provider_id", pa.string()),
                Col("sampled_at", TS),
                Col("cpu_util_pct", pa.float64()),
                Col("cpu_util_per_core", FLOATS, "array_to_string(cpu_util_per_core, ',')"),
                Col("mem_total_mb", pa.float64()),
                Col("mem_used_mb", pa.float64()),
                Col("mem_free_mb", pa.float64()),
                Col("swap_total_mb", pa.float64()),
                Col("swap_used_mb", pa.float64()),
                Col("load_avg_1", pa.float64()),
                Col("load_avg_5", pa.float64()),
                Col("load_avg_15", pa.float64()),
                Col("net_io", JSON, "net_io::text"),
                _simulated("perf_samples", "sampled_at", "0 seconds"),
            ),
        ),
        ExportTable(
            "gpu_samples",
            "sampled_at",
            "sampled_at, provider_id, gpu_key",
            (
                Col("provider_id", pa.string()),
                Col("gpu_key", pa.string()),
                Col("sampled_at", TS),
                Col("gpu_index", pa.int32()),
                Col("name", pa.string()),
                Col("temp_c", pa.float64()),
                Col("vram_temp_c", pa.float64()),
                Col("util_pct", pa.float64()),
                Col("mem_util_pct", pa.float64()),
                Col("mem_used_mb", pa.float64()),
                Col("mem_total_mb", pa.float64()),
                Col("fan_pct", pa.float64()),
                Col("power_w", pa.float64()),
                _simulated("gpu_samples", "sampled_at", "0 seconds"),
            ),
        ),
        ExportTable(
            "model_transitions",
            "observed_at",
            "observed_at, provider_id, model_id, to_state",
            (
                Col("provider_id", pa.string()),
                Col("model_id", pa.string()),
                Col("observed_at", TS),
                Col("boot_marker", pa.string()),
                Col("from_state", pa.string()),
                Col("to_state", pa.string()),
                Col("source", pa.string()),
            ),
        ),
        ExportTable(
            "instance_boots",
            "first_seen_at",
            "first_seen_at, provider_id, boot_marker",
            (
                Col("provider_id", pa.string()),
                Col("boot_marker", pa.string()),
                Col("version", pa.string()),
                Col("commit", pa.string(), '"commit"'),
                Col("build_date", pa.string()),
                Col("first_seen_at", TS),
                Col("last_seen_at", TS),
                Col("hardware", JSON, "hardware::text"),
                Col("simulated", pa.bool_(), "COALESCE(hardware->'simulated' = 'true'::jsonb, false)"),
            ),
        ),
        ExportTable(
            "rollup_host_1h",
            "bucket_start",
            "bucket_start, provider_id",
            (
                Col("provider_id", pa.string()),
                Col("bucket_start", TS),
                Col("samples", pa.int32()),
                Col("cpu_util_pct_mean", pa.float64()),
                Col("cpu_util_pct_max", pa.float64()),
                Col("mem_used_mb_mean", pa.float64()),
                Col("mem_used_mb_max", pa.float64()),
                Col("mem_total_mb", pa.float64()),
                Col("load_avg_1_mean", pa.float64()),
                Col("load_avg_1_max", pa.float64()),
                Col("gpu_count", pa.int32()),
                Col("gpu_energy_j", pa.float64()),
                _simulated("rollup_host_1h", "bucket_start", "1 hour"),
            ),
        ),
        ExportTable(
            "rollup_gpu_1h",
            "bucket_start",
            "bucket_start, provider_id, gpu_key",
            (
                Col("provider_id", pa.string()),
                Col("gpu_key", pa.string()),
                Col("bucket_start", TS),
                Col("gpu_index", pa.int32()),
                Col("name", pa.string()),
                Col("samples", pa.int32()),
                Col("temp_c_mean", pa.float64()),
                Col("temp_c_max", pa.float64()),
                Col("vram_used_mb_mean", pa.float64()),
                Col("vram_used_mb_max", pa.float64()),
                Col("vram_total_mb", pa.float64()),
                Col("util_pct_mean", pa.float64()),
                Col("util_pct_max", pa.float64()),
                Col("power_w_mean", pa.float64()),
                Col("power_w_max", pa.float64()),
                Col("energy_j", pa.float64()),
                Col("covered_s", pa.float64()),
                _simulated("rollup_gpu_1h", "bucket_start", "1 hour"),
            ),
        ),
        _rollup_activity("rollup_activity_1h"),
        _rollup_activity("rollup_activity_1d"),
    )
}


@dataclass(frozen=True)
class ExportResult:
    table: str
    day: date
    rows: int
    path: Path | None  # None when the day had no rows (the partition was removed)
    bytes: int


def partition_dir(lake: Path, table: str, day: date) -> Path:
    return lake / table / f"date={day.isoformat()}"


def day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


class _CopyReader(io.RawIOBase):
    """A readable file over the chunks of a psycopg ``COPY ... TO STDOUT``."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = bytes(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _csv_types(table: ExportTable) -> dict[str, pa.DataType]:
    return {c.name: (pa.string() if c.type == FLOATS else c.type) for c in table.columns}


def _finish_batch(batch: pa.RecordBatch, table: ExportTable) -> pa.RecordBatch:
    """Turn the text forms of list columns into lists; everything else came typed from the CSV reader."""
    arrays = []
    for col, arr in zip(table.columns, batch.columns, strict=True):
        if col.type == FLOATS:
            empty = pc.fill_null(pc.equal(arr, ""), False)
            lists = pc.split_pattern(pc.if_else(empty, None, arr), ",").cast(FLOATS)
            arr = pc.if_else(empty, pa.scalar([], FLOATS), lists)
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=table.schema)


def _stream_day(engine: Engine, table: ExportTable, day: date, dest: Path) -> int:
    start, end = day_window(day)
    convert = pacsv.ConvertOptions(
        column_types=_csv_types(table),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )
    read = pacsv.ReadOptions(column_names=[c.name for c in table.columns], block_size=8 << 20)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    rows = 0
    with engine.connect() as conn:
        conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            sql = f"COPY ({table.query()}) TO STDOUT (FORMAT CSV)"
            with cur.copy(sql, {"start": start, "end": end}) as copy:
                chunks = iter(copy)
                first = next(chunks, None)
                if first is None:  # no rows: the CSV reader refuses an empty stream
                    return 0
                reader = pacsv.open_csv(
                    io.BufferedReader(_CopyReader(itertools.chain([first], chunks)), 1 << 20),
                    read_options=read,
                    parse_options=parse,
                    convert_options=convert,
                )
                pending: list[pa.RecordBatch] = []
                pending_rows = 0
                with pq.ParquetWriter(dest, table.schema, compression="zstd") as writer:
                    for batch in reader:
                        pending.append(_finish_batch(batch, table))
                        pending_rows += batch.num_rows
                        if pending_rows >= ROW_GROUP_ROWS:
                            writer.write_table(pa.Table.from_batches(pending, table.schema))
                            rows += pending_rows
                            pending, pending_rows = [], 0
                    if pending:
                        writer.write_table(pa.Table.from_batches(pending, table.schema))
                        rows += pending_rows
    return rows


def export_day(engine: Engine, table: str, day: date, lake: Path) -> ExportResult:
    """Write ``table``'s rows of UTC ``day`` to ``<lake>/<table>/date=<day>/part-0.parquet``, replacing it."""
    spec = EXPORTS[table]
    staging = lake / ".staging" / f"{table}-{day.isoformat()}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        tmp = staging / "part-0.parquet"
        rows = _stream_day(engine, spec, day, tmp)
        final_dir = partition_dir(lake, table, day)
        if rows == 0:
            if final_dir.exists():
                shutil.rmtree(final_dir)
            log.info("export %s %s: no rows, partition removed", table, day)
            return ExportResult(table, day, 0, None, 0)
        final_dir.mkdir(parents=True, exist_ok=True)
        final = final_dir / "part-0.parquet"
        size = tmp.stat().st_size
        os.replace(tmp, final)
        for other in final_dir.iterdir():
            if other.name != final.name:
                other.unlink() if other.is_file() else shutil.rmtree(other)
        log.info("export %s %s: %d rows, %d bytes", table, day, rows, size)
        return ExportResult(table, day, rows, final, size)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_days(
    engine: Engine, lake: Path, days: list[date], tables: list[str] | None = None
) -> list[ExportResult]:
    """Export every (table, day) pair; tables default to all of ``EXPORTS``."""
    return [export_day(engine, t, d, lake) for d in days for t in (tables or list(EXPORTS))]
