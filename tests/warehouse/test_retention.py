"""Retention against synthetic rows: exact cutoffs, batching, captures capped and budgeted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, text

from tests.flows.synthetic import add_gpu_samples, add_perf_samples, add_provider, add_request
from warehouse import schema as s
from warehouse.retention import (
    RetentionPolicy,
    cap_capture_rows,
    cutoffs,
    delete_before,
    prune,
    prune_captures_to_budget,
)

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def count(engine, table):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_cutoffs_are_aligned_as_documented():
    c = cutoffs(NOW, RetentionPolicy())
    assert c["perf_samples"] == datetime(2026, 3, 8, 11, 59, tzinfo=UTC)  # floor_hour(now - 48 h) - 60 s
    assert c["activity"] == datetime(2025, 12, 10, tzinfo=UTC)  # floor_day(now - 90 d)
    assert c["rollup_activity_5m"] == datetime(2025, 12, 10, tzinfo=UTC)
    assert c["raw_events"] == NOW - timedelta(days=14)
    assert c["logs"] == NOW - timedelta(days=7)


def test_delete_before_keeps_the_row_at_the_cutoff_and_batches(db):
    cutoff = datetime(2026, 3, 8, 11, 59, tzinfo=UTC)
    with db.begin() as conn:
        add_provider(conn)
        samples = [(cutoff - timedelta(seconds=5 * i), 100.0) for i in range(1, 12)]
        add_gpu_samples(conn, samples + [(cutoff, 1.0), (cutoff + timedelta(seconds=5), 1.0)])
    deleted = delete_before(db, "gpu_samples", "sampled_at", cutoff, batch_rows=3)
    assert deleted == 11
    with db.connect() as conn:
        left = conn.execute(select(s.gpu_samples.c.sampled_at).order_by("sampled_at")).scalars().all()
    assert left == [cutoff, cutoff + timedelta(seconds=5)]
    assert delete_before(db, "gpu_samples", "sampled_at", cutoff, batch_rows=3) == 0


def _capture(conn, uid, fetched_at, req, resp):
    conn.execute(
        insert(s.captures).values(
            provider_id="p1",
            epoch="e1",
            upstream_id=uid,
            req_path="/v1/chat/completions",
            req_body=req,
            resp_body=resp,
            size_bytes=len(req or b"") + len(resp or b""),
            truncated=False,
            fetched_at=fetched_at,
        )
    )


def test_captures_are_capped_per_row(db):
    with db.begin() as conn:
        _capture(conn, 1, NOW, b"a" * 100, b"b" * 900)  # 1000 bytes: req keeps 100, resp 400
        _capture(conn, 2, NOW, b"a" * 800, b"b" * 800)  # req keeps 250, resp 250
        _capture(conn, 3, NOW, b"a" * 10, b"b" * 10)  # untouched
        _capture(conn, 4, NOW, None, b"b" * 600)
    assert cap_capture_rows(db, 500, batch_rows=2) == 3
    with db.connect() as conn:
        got = {
            r.upstream_id: (len(r.req_body or b""), len(r.resp_body or b""), r.size_bytes, r.truncated)
            for r in conn.execute(select(s.captures))
        }
    assert got == {
        1: (100, 400, 500, True),
        2: (250, 250, 500, True),
        3: (10, 10, 20, False),
        4: (0, 500, 500, True),
    }
    assert cap_capture_rows(db, 500) == 0


def test_capture_budget_prunes_oldest_first(db):
    with db.begin() as conn:
        for i in range(10):  # 100 bytes each, uid 9 is the newest
            _capture(conn, i, NOW - timedelta(minutes=10 - i), b"x" * 50, b"y" * 50)
    assert prune_captures_to_budget(db, 450, batch_rows=2) == 6
    with db.connect() as conn:
        left = sorted(conn.execute(select(s.captures.c.upstream_id)).scalars())
        total = conn.execute(select(func.sum(s.captures.c.size_bytes))).scalar_one()
    assert left == [6, 7, 8, 9]
    assert total == 400
    assert prune_captures_to_budget(db, 450) == 0


def test_prune_applies_every_keep_period(db):
    policy = RetentionPolicy(batch_rows=2, capture_total_bytes=10_000)
    c = cutoffs(NOW, policy)
    with db.begin() as conn:
        add_provider(conn)
        add_perf_samples(conn, [(c["perf_samples"] - timedelta(seconds=1), 1.0), (c["perf_samples"], 2.0)])
        add_gpu_samples(conn, [(c["gpu_samples"] - timedelta(hours=5), 1.0), (NOW, 1.0)])
        add_request(conn, c["activity"] - timedelta(seconds=1), 10)
        add_request(conn, c["activity"], 10)
        for t in (c["raw_events"] - timedelta(minutes=1), c["raw_events"] + timedelta(minutes=1)):
            conn.execute(
                insert(s.raw_events).values(
                    event_uid=uuid.uuid4(), provider_id="p1", received_at=t, type="logData", payload={}
                )
            )
            conn.execute(
                insert(s.inflight_snapshots).values(provider_id="p1", observed_at=t, count=0, requests=[])
            )
        for t in (c["logs"] - timedelta(minutes=1), c["logs"], c["logs"] + timedelta(minutes=1)):
            conn.execute(
                insert(s.logs).values(
                    provider_id="p1", source="proxy", received_at=t, text="x", event_uid=uuid.uuid4()
                )
            )
        for t in (c["rollup_activity_1h"] - timedelta(hours=1), c["rollup_activity_1h"]):
            conn.execute(
                text(
                    "INSERT INTO rollup_activity_1h (provider_id, model_id, bucket_start, requests, errors,"
                    " input_tokens, output_tokens, cache_tokens, request_ms, busy_ms, prompt_tps_samples,"
                    " gen_tps_samples, swaps, loads_timed, load_ms_sum)"
                    " VALUES ('p1', 'm1', :t, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)"
                ),
                {"t": t},
            )
    result = prune(db, NOW, policy)
    assert result.rows["perf_samples"] == 1
    assert result.rows["gpu_samples"] == 1
    assert result.rows["activity"] == 1
    assert result.rows["raw_events"] == 1
    assert result.rows["inflight_snapshots"] == 1
    assert result.rows["logs"] == 1
    assert result.rows["rollup_activity_1h"] == 1
    assert result.rows["captures"] == 0
    for table, left in {
        "perf_samples": 1,
        "gpu_samples": 1,
        "activity": 1,
        "raw_events": 1,
        "inflight_snapshots": 1,
        "logs": 2,
        "rollup_activity_1h": 1,
    }.items():
        assert count(db, table) == left, table
    again = prune(db, NOW, policy)
    assert again.total == 0


def test_capping_a_stored_capture_matches_the_ingest_cap(db):
    import base64

    from warehouse.captures import decode_capture

    payload = {
        "req_path": "/v1/chat/completions",
        "req_headers": {"Content-Type": "application/json"},
        "resp_headers": {"Content-Type": "text/event-stream"},
        "req_body": base64.b64encode(b"q" * 3000).decode(),
        "resp_body": base64.b64encode(b"r" * 5000).decode(),
    }
    stored = decode_capture(payload, cap_bytes=1 << 20)  # stored under a bigger cap
    want = decode_capture(payload, cap_bytes=4000)
    assert want.truncated and not stored.truncated
    with db.begin() as conn:
        conn.execute(
            insert(s.captures).values(
                provider_id="p1",
                epoch="e1",
                upstream_id=1,
                req_path=stored.req_path,
                req_headers=stored.req_headers,
                resp_headers=stored.resp_headers,
                req_body=stored.req_body,
                resp_body=stored.resp_body,
                size_bytes=stored.size_bytes,
                truncated=False,
                fetched_at=NOW,
            )
        )
    assert cap_capture_rows(db, 4000) == 1
    with db.connect() as conn:
        row = conn.execute(select(s.captures)).one()
    assert (row.req_body, row.resp_body, row.size_bytes, row.truncated) == (
        want.req_body,
        want.resp_body,
        want.size_bytes,
        True,
    )
