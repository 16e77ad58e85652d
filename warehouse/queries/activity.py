"""Fleet-wide request activity: filtered, paginated rows; speed percentiles and histograms.

Speeds follow llama-swap's own statistics (docs/llama-swap-api.md §4.2): only rows with a positive value count
(``-1`` = not reported, ``0`` = failed parse), percentiles use linear interpolation
(``percentile_cont``) and histograms use Sturges' rule clamped to 5…20 bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame
from warehouse.queries.canaries import not_a_probe

STATUSES = ("all", "ok", "error")
# metric name -> column; identifiers come from this fixed table only, never from callers
SPEED_COLUMNS = {"prompt": "prompt_per_second", "generation": "tokens_per_second"}


@dataclass(frozen=True)
class ActivityFilter:
    start: datetime
    end: datetime
    provider_ids: tuple[str, ...] = ()
    model_ids: tuple[str, ...] = ()
    status: str = "all"  # all | ok (2xx) | error (anything else)

    def where(self, alias: str = "a") -> tuple[str, dict[str, Any]]:
        """A WHERE clause built from fixed fragments, with every value bound as a parameter."""
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        clauses = [f"{alias}.finished_at >= :start", f"{alias}.finished_at < :end"]
        params: dict[str, Any] = {"start": self.start, "end": self.end}
        if self.provider_ids:
            clauses.append(f"{alias}.provider_id = ANY(:providers)")
            params["providers"] = list(self.provider_ids)
        if self.model_ids:
            clauses.append(f"{alias}.model_id = ANY(:models)")
            params["models"] = list(self.model_ids)
        if self.status == "ok":
            clauses.append(f"{alias}.status_code BETWEEN 200 AND 299")
        elif self.status == "error":
            clauses.append(f"{alias}.status_code NOT BETWEEN 200 AND 299")
        return " AND ".join(clauses), params


@dataclass(frozen=True)
class ActivityPage:
    rows: pl.DataFrame
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return (self.total + self.page_size - 1) // self.page_size if self.total else 0


ROW_SCHEMA = {
    "finished_at": UTC_TS,
    "provider_id": pl.Utf8,
    "epoch": pl.Utf8,
    "upstream_id": pl.Int64,
    "model_id": pl.Utf8,
    "req_path": pl.Utf8,
    "status_code": pl.Int64,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cache_tokens": pl.Int64,
    "prompt_tps": pl.Float64,
    "gen_tps": pl.Float64,
    "duration_ms": pl.Int64,
    "has_capture": pl.Boolean,
    "capture_stored": pl.Boolean,
    "error_msg": pl.Utf8,
    "probe": pl.Boolean,  # a canary probe's row (engines.canary), not a user's request
}


def activity_page(db: Db, f: ActivityFilter, page: int = 1, page_size: int = 50) -> ActivityPage:
    """One page of matching rows, newest first, and the total number of matching rows.

    Server-side pagination with LIMIT/OFFSET over ``ix_activity_time``; the order is total
    (finished_at, provider, epoch, upstream id) so pages never overlap or skip rows.
    """
    page = max(1, int(page))
    page_size = max(1, min(int(page_size), 1000))
    where, params = f.where("a")
    total = frame(db, text(f"SELECT count(*) AS n FROM activity a WHERE {where}"), params, {"n": pl.Int64})
    sql = text(
        f"""
SELECT a.finished_at, a.provider_id, a.epoch, a.upstream_id, a.model_id, a.req_path, a.status_code,
       a.input_tokens, a.output_tokens, NULLIF(a.cache_tokens, -1) AS cache_tokens,
       CASE WHEN a.prompt_per_second > 0 THEN a.prompt_per_second END AS prompt_tps,
       CASE WHEN a.tokens_per_second > 0 THEN a.tokens_per_second END AS gen_tps,
       a.duration_ms, a.has_capture, (c.upstream_id IS NOT NULL) AS capture_stored, a.error_msg,
       NOT {not_a_probe("a")} AS probe
FROM activity a
LEFT JOIN captures c ON c.provider_id = a.provider_id AND c.epoch = a.epoch AND c.upstream_id = a.upstream_id
WHERE {where}
ORDER BY a.finished_at DESC, a.provider_id, a.epoch DESC, a.upstream_id DESC
LIMIT :limit OFFSET :offset
"""
    )
    rows = frame(db, sql, {**params, "limit": page_size, "offset": (page - 1) * page_size}, ROW_SCHEMA)
    return ActivityPage(rows=rows, total=int(total["n"][0]), page=page, page_size=page_size)


def speed_stats(db: Db, f: ActivityFilter) -> pl.DataFrame:
    """Per metric (prompt, generation): n, min, mean, max, p50, p95, p99 of the positive values (tok/s)."""
    where, params = f.where("a")
    parts = []
    for metric, col in SPEED_COLUMNS.items():
        parts.append(
            f"""
SELECT '{metric}' AS metric, count(*) AS n, min(a.{col}) AS min, avg(a.{col}) AS mean, max(a.{col}) AS max,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY a.{col}) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY a.{col}) AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY a.{col}) AS p99
FROM activity a WHERE {where} AND a.{col} > 0 AND {not_a_probe("a")}"""
        )
    schema = {"metric": pl.Utf8, "n": pl.Int64}
    schema.update({k: pl.Float64 for k in ("min", "mean", "max", "p50", "p95", "p99")})
    return frame(db, text(" UNION ALL ".join(parts)), params, schema)


def speed_histogram(db: Db, f: ActivityFilter, metric: str) -> pl.DataFrame:
    """Histogram of one speed metric: bins (1-based), their bounds in tok/s, and counts.

    Bin count follows Sturges (``ceil(log2 n) + 1``) clamped to 5…20; a single distinct value gives one
    bin of width 0. Empty bins are returned with count 0.
    """
    col = SPEED_COLUMNS[metric]
    where, params = f.where("a")
    sql = text(
        f"""
WITH v AS (SELECT a.{col} AS x FROM activity a WHERE {where} AND a.{col} > 0 AND {not_a_probe("a")}),
s AS (SELECT count(*) AS n, min(x) AS lo, max(x) AS hi FROM v),
k AS (SELECT n, lo, hi,
             CASE WHEN hi = lo THEN 1
                  ELSE LEAST(20, GREATEST(5, ceil(log(2, n::numeric)) + 1))::int END AS bins
      FROM s WHERE n > 0),
c AS (SELECT CASE WHEN k.bins = 1 THEN 1 ELSE LEAST(width_bucket(v.x, k.lo, k.hi, k.bins), k.bins) END AS bin,
             count(*) AS n
      FROM v CROSS JOIN k GROUP BY 1)
SELECT b.bin, k.lo + (b.bin - 1) * (k.hi - k.lo) / k.bins AS bin_start,
       k.lo + b.bin * (k.hi - k.lo) / k.bins AS bin_end, COALESCE(c.n, 0) AS count
FROM k CROSS JOIN LATERAL generate_series(1, k.bins) AS b(bin)
LEFT JOIN c ON c.bin = b.bin
ORDER BY b.bin
"""
    )
    schema = {"bin": pl.Int64, "bin_start": pl.Float64, "bin_end": pl.Float64, "count": pl.Int64}
    return frame(db, sql, params, schema)


def model_choices(db: Db) -> list[str]:
    """Model ids known anywhere in the fleet (for filter widgets); read from the small models table."""
    df = frame(db, text("SELECT DISTINCT model_id FROM models ORDER BY 1"), {}, {"model_id": pl.Utf8})
    return [str(m) for m in df["model_id"].to_list()]


def current_epoch(db: Db, provider_id: str) -> str | None:
    """The provider's newest activity id sequence; only its ids still name captures llama-swap holds."""
    df = frame(
        db,
        text("SELECT epoch FROM activity_epochs WHERE provider_id = :p ORDER BY started_at DESC LIMIT 1"),
        {"p": provider_id},
        {"epoch": pl.Utf8},
    )
    return str(df["epoch"][0]) if df.height else None
