"""Hand-made warehouse rows for query-layer and page tests (one function per table)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from warehouse import schema as s

T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def provider(
    conn: Connection,
    pid: str,
    *,
    label: str | None = None,
    active: bool = True,
    status: str | None = "connected",
    version: str | None = "v250",
    last_error: str | None = None,
    base_url: str | None = None,
) -> None:
    conn.execute(
        insert(s.providers).values(
            id=pid,
            label=label or pid.upper(),
            base_url=base_url or f"http://{pid}.test:8080",
            kind="llama-swap",
            active=active,
        )
    )
    if status is not None:
        conn.execute(
            insert(s.connector_health).values(
                provider_id=pid,
                status=status,
                version=version,
                last_error=last_error,
                last_error_at=T0 if last_error else None,
                connected_since=T0 - timedelta(hours=1),
                last_event_at=T0,
                updated_at=T0,
            )
        )


def boot(
    conn: Connection,
    pid: str,
    marker: str,
    *,
    first_seen: datetime,
    last_seen: datetime | None = None,
    version: str = "v250",
) -> None:
    conn.execute(
        insert(s.instance_boots).values(
            provider_id=pid,
            boot_marker=marker,
            version=version,
            first_seen_at=first_seen,
            last_seen_at=last_seen or first_seen,
        )
    )


def epoch(conn: Connection, pid: str, name: str, started: datetime, reason: str = "boot") -> None:
    conn.execute(
        insert(s.activity_epochs).values(provider_id=pid, epoch=name, started_at=started, reason=reason)
    )


def model(conn: Connection, pid: str, mid: str, state: str | None = "stopped", **kw: Any) -> None:
    conn.execute(
        insert(s.models).values(
            provider_id=pid,
            model_id=mid,
            state=state,
            first_seen_at=T0 - timedelta(days=1),
            last_seen_at=T0,
            **kw,
        )
    )


def transition(conn: Connection, pid: str, mid: str, at: datetime, to: str, frm: str | None = None) -> None:
    conn.execute(
        insert(s.model_transitions).values(
            provider_id=pid, model_id=mid, observed_at=at, from_state=frm, to_state=to, source="sse"
        )
    )


def perf(
    conn: Connection, pid: str, at: datetime, cpu: float, mem_used: float = 8000.0, mem_total: float = 32000.0
) -> None:
    conn.execute(
        insert(s.perf_samples).values(
            provider_id=pid,
            sampled_at=at,
            raw_ts=at.isoformat(),
            cpu_util_pct=cpu,
            cpu_util_per_core=[cpu],
            mem_total_mb=mem_total,
            mem_used_mb=mem_used,
            mem_free_mb=mem_total - mem_used,
            swap_total_mb=0,
            swap_used_mb=0,
            load_avg_1=1.0,
            load_avg_5=1.0,
            load_avg_15=1.0,
        )
    )


def gpu(
    conn: Connection,
    pid: str,
    at: datetime,
    *,
    key: str = "GPU-0",
    index: int = 0,
    temp: float = 60.0,
    util: float = 50.0,
    used: float = 10000.0,
    total: float = 24000.0,
    power: float = 200.0,
) -> None:
    conn.execute(
        insert(s.gpu_samples).values(
            provider_id=pid,
            gpu_key=key,
            sampled_at=at,
            raw_ts=at.isoformat(),
            gpu_index=index,
            name="RTX Test",
            temp_c=temp,
            vram_temp_c=0,
            util_pct=util,
            mem_util_pct=100 * used / total,
            mem_used_mb=used,
            mem_total_mb=total,
            fan_pct=30,
            power_w=power,
        )
    )


def inflight(conn: Connection, pid: str, at: datetime, requests: list[dict[str, Any]]) -> None:
    conn.execute(
        insert(s.inflight_snapshots).values(
            provider_id=pid, observed_at=at, count=len(requests), requests=requests
        )
    )


def activity(
    conn: Connection,
    pid: str,
    ep: str,
    uid: int,
    at: datetime,
    *,
    model_id: str = "m1",
    status: int = 200,
    pps: float = -1,
    tps: float = -1,
    inp: int = 10,
    out: int = 20,
    duration_ms: int = 1000,
    has_capture: bool = False,
    error: str | None = None,
    path: str = "/v1/chat/completions",
) -> None:
    conn.execute(
        insert(s.activity).values(
            provider_id=pid,
            epoch=ep,
            upstream_id=uid,
            finished_at=at,
            model_id=model_id,
            req_path=path,
            resp_content_type="application/json",
            status_code=status,
            input_tokens=inp,
            output_tokens=out,
            cache_tokens=-1,
            draft_tokens=-1,
            draft_acc_tokens=-1,
            prompt_per_second=pps,
            tokens_per_second=tps,
            duration_ms=duration_ms,
            has_capture=has_capture,
            error_msg=error,
        )
    )


def log(conn: Connection, pid: str, source: str, at: datetime, text: str) -> None:
    conn.execute(
        insert(s.logs).values(
            provider_id=pid, source=source, received_at=at, text=text, event_uid=uuid.uuid4()
        )
    )


def favorite(conn: Connection, pid: str, mid: str) -> None:
    conn.execute(insert(s.favorites).values(provider_id=pid, model_id=mid))


def gap(
    conn: Connection,
    pid: str,
    stream: str,
    epoch: str | None,
    from_id: int | None,
    to_id: int | None,
    *,
    detected: datetime,
    reason: str,
    from_at: datetime | None = None,
    to_at: datetime | None = None,
) -> None:
    conn.execute(
        insert(s.gaps).values(
            provider_id=pid,
            stream=stream,
            epoch=epoch,
            from_id=from_id,
            to_id=to_id,
            from_at=from_at,
            to_at=to_at,
            detected_at=detected,
            reason=reason,
        )
    )
