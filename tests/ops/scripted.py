"""A scripted swap sequence on a known host, with exactly known thrash numbers (tests/ops/test_thrash.py).

Host h1, window [12:00, 13:00) of 2026-03-02, models A, B, C:

* 11:59:00 A starting, 11:59:05 ready (5 s, before the window: only its load time counts, for A's median)
* 12:00:00 A stopping, :01 stopped; 12:00:02 B starting, :12 ready (10 s)  -> B evicts A
* 12:10:00 B stopping, :01 stopped; 12:10:01 A starting, :05 ready (4 s)   -> A evicts B (reversal 1)
* 12:20:00 A stopping, :00.5 stopped; 12:20:01 B starting, :09 ready (8 s) -> B evicts A (reversal 2)
* 12:30:00 C starting, 12:30:03 stopped: a failed load (3 s)
* 12:50:00 B stopped (straight from ready); 12:50:01 A ready from stopped: a load without a measured time
  (estimated at A's median 4.5 s) -> A evicts B, 30 min after the previous one: no reversal
* 13:00:30 C starting, :32 ready: after the window

Requests: r1 B (12:00:01.5-12:00:13, capture User-Agent app-x) triggers B's 12:00 load; r2 A (12:10:01-12:10:06)
triggers A's 12:10 load, the gateway says consumer team-a; warm action #7 by ops triggers B's 12:20 load; r3 C
(12:29:59.7-12:30:03.2, status 500, no capture) triggers C's failed load; r4 A (12:50:00.5-12:50:02, capture
app-x) triggers A's 12:50 load; r5 A 12:14:58-12:15:00 serves; a canary probe row A 12:16:00 (100 ms) is left
out. Host h2: one request 12:05:00 (1 s).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert

from tests.flows.synthetic import add_provider, add_transition
from warehouse import schema as s
from warehouse.schema_alerts import canary_probes
from warehouse.schema_gateway import gateway_requests

DAY = datetime(2026, 3, 2, tzinfo=UTC)
START = DAY + timedelta(hours=12)
END = DAY + timedelta(hours=13)


def t(hh: int, mm: int, ss: float = 0) -> datetime:
    return DAY + timedelta(hours=hh, minutes=mm, seconds=ss)


def _activity(conn: Connection, pid: str, uid: int, model: str, finished: datetime, duration_ms: int,
              status: int = 200,
              out: int = 5, user_agent: str | None = None) -> None:
    conn.execute(insert(s.activity).values(
        provider_id=pid, epoch="e1", upstream_id=uid, finished_at=finished, model_id=model,
        req_path="/v1/chat/completions", resp_content_type="application/json", status_code=status,
        input_tokens=10, output_tokens=out, cache_tokens=-1, draft_tokens=-1, draft_acc_tokens=-1,
        prompt_per_second=100.0, tokens_per_second=20.0, duration_ms=duration_ms,
        has_capture=user_agent is not None, error_msg=None if status == 200 else "boom"))
    if user_agent is not None:
        conn.execute(insert(s.captures).values(
            provider_id=pid, epoch="e1", upstream_id=uid, req_path="/v1/chat/completions",
            req_headers={"Content-Type": "application/json", "User-Agent": user_agent}, resp_headers={},
            req_body=b"{}", resp_body=b"{}", size_bytes=4, truncated=False, fetched_at=finished))


def load(engine: Engine, shift: timedelta = timedelta(0)) -> None:
    """The scripted rows, every time moved by ``shift`` (page tests place them relative to now)."""
    def t(hh: int, mm: int, ss: float = 0) -> datetime:
        return DAY + timedelta(hours=hh, minutes=mm, seconds=ss) + shift

    with engine.begin() as conn:
        add_provider(conn, "h1")
        add_provider(conn, "h2")
        seq = [
            (t(11, 59, 0), "stopped", "starting", "A"), (t(11, 59, 5), "starting", "ready", "A"),
            (t(12, 0, 0), "ready", "stopping", "A"), (t(12, 0, 1), "stopping", "stopped", "A"),
            (t(12, 0, 2), "stopped", "starting", "B"), (t(12, 0, 12), "starting", "ready", "B"),
            (t(12, 10, 0), "ready", "stopping", "B"), (t(12, 10, 1), "stopping", "stopped", "B"),
            (t(12, 10, 1), "stopped", "starting", "A"), (t(12, 10, 5), "starting", "ready", "A"),
            (t(12, 20, 0), "ready", "stopping", "A"), (t(12, 20, 0.5), "stopping", "stopped", "A"),
            (t(12, 20, 1), "stopped", "starting", "B"), (t(12, 20, 9), "starting", "ready", "B"),
            (t(12, 30, 0), "stopped", "starting", "C"), (t(12, 30, 3), "starting", "stopped", "C"),
            (t(12, 50, 0), "ready", "stopped", "B"), (t(12, 50, 1), "stopped", "ready", "A"),
            (t(13, 0, 30), "stopped", "starting", "C"), (t(13, 0, 32), "starting", "ready", "C"),
        ]
        for at, frm, to, model in seq:
            add_transition(conn, at, frm, to, model=model, pid="h1")
        _activity(conn, "h1", 1, "B", t(12, 0, 13), 11500, user_agent="app-x")
        _activity(conn, "h1", 2, "A", t(12, 10, 6), 5000)
        _activity(conn, "h1", 3, "A", t(12, 15, 0), 2000)
        _activity(conn, "h1", 4, "A", t(12, 16, 0), 100, out=1)  # the canary probe's row
        _activity(conn, "h1", 5, "C", t(12, 30, 3.2), 3500, status=500, out=0)
        _activity(conn, "h1", 6, "A", t(12, 50, 2), 1500, user_agent="app-x")
        _activity(conn, "h2", 1, "Z", t(12, 5, 0), 1000)
        conn.execute(insert(canary_probes).values(
            provider_id="h1", model_id="A", sent_at=t(12, 15, 59.9), ok=True,
            ttft_ms=40.0, total_ms=100.0, status_code=200, activity_upstream_id=4, activity_finished_at=t(12, 16, 0)))
        conn.execute(insert(gateway_requests).values(
            request_id="00000000-0000-0000-0000-000000000001", started_at=t(12, 10, 1.2), replica="g1",
            consumer="team-a", consumer_source="key", requested_model="h1/A", provider_id="h1", model_id="A",
            endpoint="/v1/chat/completions", stream=False, status=200, total_ms=4800.0))
        conn.execute(insert(s.actions).values(
            id=7, provider_id="h1", action="warm", target="B", requested_by="ops", requested_at=t(12, 20, 0),
            started_at=t(12, 20, 0.5), finished_at=t(12, 20, 9.5), status="succeeded"))
