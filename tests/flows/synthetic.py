"""Synthetic warehouse rows with exactly known aggregates, shared by rollup, retention, export, report and flow tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from warehouse import schema as s

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


def at(hh: int, mm: int, ss: float = 0, day: datetime = T0) -> datetime:
    base = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return base + timedelta(hours=hh, minutes=mm, seconds=ss)


def add_provider(conn: Connection, pid: str = "p1") -> None:
    conn.execute(
        pg_insert(s.providers)
        .values(id=pid, label=pid.upper(), base_url=f"http://{pid}:8080", kind="llama-swap")
        .on_conflict_do_nothing()
    )


def add_gpu_samples(
    conn: Connection, rows: list[tuple[datetime, float]], pid: str = "p1", gpu: str = "g0", **extra: Any
) -> None:
    values = []
    for t, p in rows:
        v = dict(
            provider_id=pid,
            gpu_key=gpu,
            sampled_at=t,
            raw_ts=t.isoformat(),
            gpu_index=0,
            name="RTX Test",
            temp_c=50.0,
            vram_temp_c=0.0,
            util_pct=50.0,
            mem_util_pct=40.0,
            mem_used_mb=1000.0,
            mem_total_mb=24000.0,
            fan_pct=30.0,
            power_w=p,
        )
        v.update(extra)
        values.append(v)
    conn.execute(insert(s.gpu_samples), values)


def add_perf_samples(conn: Connection, rows: list[tuple[datetime, float]], pid: str = "p1") -> None:
    conn.execute(
        insert(s.perf_samples),
        [
            dict(
                provider_id=pid,
                sampled_at=t,
                raw_ts=t.isoformat(),
                cpu_util_pct=cpu,
                cpu_util_per_core=[cpu, cpu],
                mem_total_mb=64000.0,
                mem_used_mb=1000.0 + cpu,
                mem_free_mb=60000.0,
                swap_total_mb=0.0,
                swap_used_mb=0.0,
                load_avg_1=cpu / 100,
                load_avg_5=0.5,
                load_avg_15=0.5,
                net_io={"eth0": [1, 2]},
            )
            for t, cpu in rows
        ],
    )


_ID = iter(range(1, 10_000_000))


def add_request(
    conn: Connection,
    finished_at: datetime,
    duration_ms: int,
    status: int = 200,
    inp: int = 10,
    out: int = 5,
    cache: int = -1,
    pps: float = -1,
    tps: float = -1,
    model: str = "m1",
    pid: str = "p1",
    error: str | None = None,
) -> None:
    conn.execute(
        insert(s.activity).values(
            provider_id=pid,
            epoch="e1",
            upstream_id=next(_ID),
            finished_at=finished_at,
            model_id=model,
            req_path="/v1/chat/completions",
            resp_content_type="application/json",
            status_code=status,
            input_tokens=inp,
            output_tokens=out,
            cache_tokens=cache,
            draft_tokens=-1,
            draft_acc_tokens=-1,
            prompt_per_second=pps,
            tokens_per_second=tps,
            duration_ms=duration_ms,
            has_capture=False,
            error_msg=error,
        )
    )


def add_transition(
    conn: Connection, t: datetime, frm: str | None, to: str, model: str = "m1", pid: str = "p1"
) -> None:
    conn.execute(
        insert(s.model_transitions).values(
            provider_id=pid, model_id=model, observed_at=t, from_state=frm, to_state=to, source="sse"
        )
    )


def add_boot(conn: Connection, marker: str, first: datetime, last: datetime, pid: str = "p1") -> None:
    conn.execute(
        insert(s.instance_boots).values(
            provider_id=pid, boot_marker=marker, version="v250", first_seen_at=first, last_seen_at=last
        )
    )


def load_gpu_scenario(engine: Engine) -> None:
    """GPU power samples around the 12:05 and 12:10 boundaries (see test_rollups for the expected joules)."""
    with engine.begin() as conn:
        add_provider(conn)
        add_gpu_samples(
            conn,
            [
                (at(12, 4, 40), 100.0),
                (at(12, 4, 50), 100.0),
                (at(12, 5, 0), 200.0),  # exactly on a bucket boundary
                (at(12, 5, 10), 100.0),
                (at(12, 9, 50), 300.0),  # 280 s after the previous sample: a gap, no energy
                (at(12, 10, 20), 100.0),  # crosses the 12:10 boundary
            ],
        )
        add_perf_samples(conn, [(at(12, 4, 50), 10.0), (at(12, 5, 0), 30.0), (at(12, 5, 10), 50.0)])


def load_activity_scenario(engine: Engine) -> None:
    """Five requests of m1 around the 12:05 boundary, loads of m1 and m2 (see test_rollups)."""
    with engine.begin() as conn:
        add_provider(conn)
        add_request(conn, at(12, 1, 0), 2000, inp=100, out=50, cache=10, pps=1000.0, tps=50.0)
        add_request(conn, at(12, 2, 0), 4000, inp=200, out=100, cache=-1, pps=2000.0, tps=30.0)
        add_request(conn, at(12, 5, 0), 1000, status=500, inp=0, out=0, cache=0, pps=0, tps=0, error="boom")
        add_request(conn, at(12, 5, 30), 31000, inp=300, out=20, cache=-1, pps=-1, tps=40.0)
        add_request(conn, at(12, 6, 0), 10000, inp=50, out=25, cache=5, pps=500.0, tps=20.0)
        add_transition(conn, at(12, 3, 0), "stopped", "starting")
        add_transition(conn, at(12, 3, 12.5), "starting", "ready")
        add_transition(conn, at(12, 7, 0), "ready", "stopped")
        add_transition(conn, at(12, 8, 0), "stopped", "ready")
        add_transition(conn, at(12, 58, 0), "stopped", "starting", model="m2")
        add_transition(conn, at(13, 0, 0), "starting", "ready", model="m2")
