"""What the alert rules see: `engines.alerts.gather` over known rows of every input on the real Postgres, and the
findings those give (exact values)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from engines.alerts import Policy, findings, gather
from tests.flows.synthetic import add_gpu_samples, add_perf_samples, add_provider, add_transition
from warehouse import schema as s
from warehouse.schema_alerts import canary_probes
from warehouse.schema_bench import bench_points, bench_runs
from warehouse.schema_evals import eval_runs, eval_scores, eval_suites

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _activity(conn, uid: int, at: datetime, status: int) -> None:
    conn.execute(insert(s.activity).values(
        provider_id="h1", epoch="e1", upstream_id=uid, finished_at=at, model_id="qwen",
        req_path="/v1/chat/completions", resp_content_type="application/json", status_code=status,
        input_tokens=1, output_tokens=1, cache_tokens=-1, draft_tokens=-1, draft_acc_tokens=-1,
        prompt_per_second=-1, tokens_per_second=-1, duration_ms=100, has_capture=False))


def _bench_run(conn, rid: int, started: datetime, peak: float, workload: str = "w1") -> None:
    conn.execute(insert(bench_runs).values(
        id=rid, run_uid=f"r{rid}", provider_id="h1", model_id="qwen", status="completed", mode="concurrency",
        workload_key=workload, params={}, started_at=started))
    for idx, tps in enumerate((peak / 2, peak)):
        conn.execute(insert(bench_points).values(
            run_id=rid, idx=idx, mode="concurrency", level=idx + 1, started_at=started, finished_at=started,
            requests=10, completed=10, failed=0, cancelled=0, duration_s=1, request_throughput=1,
            output_throughput=tps, total_token_throughput=tps, prompt_throughput=1, goodput=1, prompt_tokens=1,
            output_tokens=1, peak_concurrency=1, mean_concurrency=1, saturated=False, summary={}))


def _eval(conn, rid: int, at: datetime, value: float, stale: bool = False) -> None:
    conn.execute(insert(eval_runs).values(
        id=rid, run_uid=f"e{rid}", suite_id=1, provider_id="h1", model_id="qwen", status="completed",
        config_key="k", harness_version="1", sampling={}, samples_per_item=1, params={}, started_at=at))
    conn.execute(insert(eval_scores).values(
        run_id=rid, metric="pass@1", value=value, n_items=10, suite_name="humaneval", suite_version="1",
        provider_id="h1", model_id="qwen", harness_version="1", sampling={}, computed_at=at,
        stale_reason="model file changed" if stale else None, stale_since=at if stale else None))


def test_gather_reads_every_rule_input(db) -> None:
    with db.begin() as conn:
        for pid in ("h1", "h2"):
            add_provider(conn, pid)
        conn.execute(text("INSERT INTO connector_health (provider_id, status, updated_at) VALUES "
                          "('h1', 'connected', :t), ('h2', 'disconnected', :t)"), {"t": NOW})
        add_perf_samples(conn, [(NOW - timedelta(minutes=7), 5.0)], pid="h2")
        add_gpu_samples(conn, [(NOW - timedelta(minutes=10), 250.0)], pid="h1", temp_c=99.0)  # too old
        add_gpu_samples(conn, [(NOW - timedelta(minutes=1), 250.0)], pid="h1", temp_c=88.0,
                        mem_used_mb=23500.0, mem_total_mb=24000.0)
        for i in range(20):  # 20 requests in the last 15 min, 5 failed; one more failed but a probe
            _activity(conn, i + 1, NOW - timedelta(minutes=10, seconds=-i), 500 if i < 5 else 200)
        _activity(conn, 99, NOW - timedelta(minutes=2), 502)
        conn.execute(insert(canary_probes).values(
            provider_id="h1", model_id="qwen", sent_at=NOW - timedelta(minutes=2, seconds=1), ok=False,
            status_code=502, error="upstream died", activity_upstream_id=99,
            activity_finished_at=NOW - timedelta(minutes=2)))
        _activity(conn, 100, NOW - timedelta(minutes=20), 500)  # outside the error window
        conn.execute(text("INSERT INTO gaps (provider_id, stream, from_id, to_id, detected_at, reason) VALUES "
                          "('h2', 'activity', 5, 9, :a, 'ring overflow'), "
                          "('h2', 'activity', 20, 21, :b, 'restart'), ('h1', 'activity', 1, 2, :old, 'old')"),
                     {"a": NOW - timedelta(minutes=30), "b": NOW - timedelta(minutes=5),
                      "old": NOW - timedelta(hours=3)})
        for k, peak in enumerate((100.0, 90.0, 110.0, 60.0)):  # newest run 60 vs median(110, 90, 100) = 100
            _bench_run(conn, k + 1, NOW - timedelta(days=4 - k), peak)
        _bench_run(conn, 9, NOW - timedelta(days=10), 1.0, workload="other")  # another workload: not compared
        conn.execute(insert(eval_suites).values(id=1, name="humaneval", version="1", kind="code", n_items=10))
        _eval(conn, 1, NOW - timedelta(days=3), 0.6)
        _eval(conn, 2, NOW - timedelta(days=2), 0.5)
        _eval(conn, 3, NOW - timedelta(days=1), 0.9, stale=True)  # stale: not the newest current score
        for minute in range(0, 60, 2):  # 30 loads of h1 in the last hour (starting, ready)
            add_transition(conn, NOW - timedelta(minutes=minute, seconds=30), "stopped", "starting", pid="h1")
            add_transition(conn, NOW - timedelta(minutes=minute, seconds=25), "starting", "ready", pid="h1")
        add_transition(conn, NOW - timedelta(hours=2), "stopped", "starting", pid="h1")  # too old
        conn.execute(insert(canary_probes).values(
            provider_id="h2", model_id="llama", sent_at=NOW - timedelta(minutes=3), ok=True, ttft_ms=2500.0,
            total_ms=2600.0, status_code=200))

    snap = gather(db, NOW, Policy())
    assert [(h.provider_id, h.status, h.last_seen_at) for h in snap.hosts] == [
        ("h1", "connected", None), ("h2", "disconnected", NOW - timedelta(minutes=7))]
    assert [(g.provider_id, g.temp_c, g.mem_used_mb) for g in snap.gpus] == [("h1", 88.0, 23500.0)]
    assert [(e.provider_id, e.requests, e.errors) for e in snap.errors] == [("h1", 20, 5)]
    assert [(g.provider_id, g.gaps, g.last_reason) for g in snap.gaps] == [("h2", 2, "restart")]
    assert [(b.run_id, b.peak_tps, b.baseline_tps) for b in snap.bench] == [(4, 60.0, 100.0)]
    assert [(e.run_id, e.value, e.previous) for e in snap.evals] == [(2, 0.5, 0.6)]
    assert [(t.provider_id, t.loads_last_hour) for t in snap.thrash] == [("h1", 30)]
    assert [(c.provider_id, c.model_id, c.ok) for c in snap.canaries] == [("h1", "qwen", False), ("h2", "llama", True)]

    active = sorted((f.rule, f.subject) for f in findings(snap, Policy()) if f.active)
    assert active == [
        ("bench_drift", "h1/qwen"),  # 40 % below
        ("canary_slo", "h1/qwen"),  # failed
        ("canary_slo", "h2/llama"),  # 2500 ms > 2000 ms
        ("error_rate", "h1"),  # 5 of 20 = 25 % (the failed probe is not counted)
        ("eval_regression", "h1/qwen/humaneval/pass@1"),  # 0.5 vs 0.6: 17 % below
        ("gap", "h2"),
        ("gpu_temperature", "h1/g0"),  # 88 °C
        ("host_unreachable", "h2"),
        ("thrash", "h1"),  # 30 loads in the hour
        ("vram", "h1/g0"),  # 97.9 %
    ]
