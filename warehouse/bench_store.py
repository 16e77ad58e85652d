"""Writes of the benchmark engine (and the one activity read it needs). Plain rows in, ids out.

The engine converts its results to plain dicts (``engines.bench.service``); this module only knows
SQL. Every function takes an open ``Connection``; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from warehouse.schema import activity
from warehouse.schema_bench import (
    bench_baselines,
    bench_capacity_searches,
    bench_points,
    bench_requests,
    bench_runs,
)


class UnknownRun(LookupError):
    pass


def insert_run(conn: Connection, row: Mapping[str, Any]) -> int:
    """Insert a run row (status ``running`` or ``refused``); returns its id."""
    return int(conn.execute(insert(bench_runs).values(**row).returning(bench_runs.c.id)).scalar_one())


def run_id_of(conn: Connection, run_uid: str) -> int:
    rid = conn.execute(select(bench_runs.c.id).where(bench_runs.c.run_uid == run_uid)).scalar()
    if rid is None:
        raise UnknownRun(run_uid)
    return int(rid)


def finish_run(conn: Connection, run_uid: str, fields: Mapping[str, Any]) -> None:
    conn.execute(update(bench_runs).where(bench_runs.c.run_uid == run_uid).values(**fields))


def insert_point(
    conn: Connection, run_uid: str, point: Mapping[str, Any], requests: Sequence[Mapping[str, Any]]
) -> int:
    """Insert one sweep point and its request rows; returns the point id."""
    run_id = run_id_of(conn, run_uid)
    point_id = int(
        conn.execute(
            insert(bench_points).values(run_id=run_id, **point).returning(bench_points.c.id)
        ).scalar_one()
    )
    if requests:
        conn.execute(
            insert(bench_requests), [{**r, "run_id": run_id, "point_id": point_id} for r in requests]
        )
    return point_id


def update_point_energy(
    conn: Connection,
    run_uid: str,
    idx: int,
    energy_j: float | None,
    j_per_token: float | None,
    samples: int | None,
) -> None:
    run_id = run_id_of(conn, run_uid)
    conn.execute(
        update(bench_points)
        .where(and_(bench_points.c.run_id == run_id, bench_points.c.idx == idx))
        .values(energy_j=energy_j, j_per_token=j_per_token, energy_samples=samples)
    )


def set_baseline(conn: Connection, run_id: int, note: str | None = None) -> tuple[str, str]:
    """Add a completed run to its provider/model baseline set; returns (provider_id, model_id)."""
    row = conn.execute(
        select(bench_runs.c.provider_id, bench_runs.c.model_id, bench_runs.c.status).where(
            bench_runs.c.id == run_id
        )
    ).first()
    if row is None:
        raise UnknownRun(str(run_id))
    if row.status != "completed":
        raise ValueError(f"run {run_id} is {row.status}; only completed runs can be part of a baseline")
    stmt = pg_insert(bench_baselines).values(
        provider_id=row.provider_id, model_id=row.model_id, run_id=run_id, note=note
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                bench_baselines.c.provider_id,
                bench_baselines.c.model_id,
                bench_baselines.c.run_id,
            ],
            set_={"note": stmt.excluded.note},
        )
    )
    return str(row.provider_id), str(row.model_id)


def clear_baseline(conn: Connection, provider_id: str, model_id: str, run_id: int | None = None) -> int:
    """Remove one run (or all runs) from a provider/model baseline; returns rows removed."""
    cond = and_(bench_baselines.c.provider_id == provider_id, bench_baselines.c.model_id == model_id)
    if run_id is not None:
        cond = and_(cond, bench_baselines.c.run_id == run_id)
    return int(conn.execute(delete(bench_baselines).where(cond)).rowcount or 0)


def activity_length_pairs(
    conn: Connection,
    provider_id: str,
    model_id: str,
    since: datetime | None = None,
    limit: int = 5000,
) -> list[tuple[int, int]]:
    """(prompt tokens, output tokens) of the newest successful stored requests of a provider/model.

    With llama.cpp timings, ``input_tokens`` counts only newly processed prompt tokens and the cached
    ones are in ``cache_tokens``; the prompt length a client sent is their sum (cache -1 = unknown).
    Rows with no token data (0 or -1 outputs) are skipped.
    """
    prompt = activity.c.input_tokens + func.greatest(activity.c.cache_tokens, 0)
    stmt = (
        select(prompt.label("p"), activity.c.output_tokens.label("o"))
        .where(
            activity.c.provider_id == provider_id,
            activity.c.model_id == model_id,
            activity.c.status_code == 200,
            activity.c.output_tokens > 0,
            activity.c.input_tokens >= 0,
        )
        .order_by(activity.c.finished_at.desc())
        .limit(limit)
    )
    if since is not None:
        stmt = stmt.where(activity.c.finished_at >= since)
    return [(int(p), int(o)) for p, o in conn.execute(stmt)]


def point_summaries(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """The stored ``PointSummary`` of every point of a run (intervals, lengths, server prefill), in sweep order."""
    rows = conn.execute(
        select(bench_points.c.idx, bench_points.c.level, bench_points.c.summary)
        .where(bench_points.c.run_id == run_id)
        .order_by(bench_points.c.idx)
    )
    return [{"idx": int(r.idx), "level": float(r.level), "summary": dict(r.summary)} for r in rows]


def insert_capacity_search(conn: Connection, row: Mapping[str, Any]) -> int:
    """Open a capacity search (status ``running``, or ``refused``/``failed`` when it never measured); its id."""
    q = insert(bench_capacity_searches).values(**row).returning(bench_capacity_searches.c.id)
    return int(conn.execute(q).scalar_one())


def update_capacity_search(conn: Connection, search_id: int, fields: Mapping[str, Any]) -> None:
    conn.execute(update(bench_capacity_searches).where(bench_capacity_searches.c.id == search_id).values(**fields))


def capacity_searches(conn: Connection, provider_id: str | None = None, model_id: str | None = None,
                      limit: int = 200) -> list[dict[str, Any]]:
    """Stored searches, newest first (optionally of one provider/model)."""
    q = select(bench_capacity_searches).order_by(bench_capacity_searches.c.id.desc()).limit(limit)
    if provider_id is not None:
        q = q.where(bench_capacity_searches.c.provider_id == provider_id)
    if model_id is not None:
        q = q.where(bench_capacity_searches.c.model_id == model_id)
    return [dict(r) for r in conn.execute(q).mappings()]
