"""A known fleet for the routing tests (facts, `route explain`, the Routing page), written with the stores'
own insert functions (warehouse.bench_store, warehouse.eval_store) and tests/ui/seed.py.

The fleet, relative to ``now``:

* ``gpu`` (llama-swap at 10.0.0.5, connected):
  * ``qwen-coder`` ready, window 32 768; 10 live requests (1 000 prompt tokens at 2 000 tok/s -> TTFT 500 ms,
    50 tok/s -> 20 ms/token, 3 s end to end; a canary probe's own request is left out); last canary ok (an
    older failure no longer counts); humaneval pass@1 0.6;
  * ``llama-8b`` stopped, window 8 192, loads measured 4 s and 6 s (median 5 s); bench run: TTFT p50 300 ms,
    p90 400 ms, 10 ms/token, prefill 600 tokens in 300 ms = 2 000 tok/s, 0.5 J/token; humaneval pass@1 0.4
    (and a stale 0.95 that must not count);
  * ``nomic-embed`` ready (an embedding model);
* ``cpu`` (llama-swap, connected) ``qwen-coder`` ready, window 65 536, its host under a bench lease, its last
  canary probe failed;
* ``cloud`` (openai kind at https://api.example.com, connected) ``gpt-x``, window 131 072; bench run: TTFT
  p50 800 ms, 15 ms/token, prefill 4 000 tokens in 800 ms = 5 000 tok/s; humaneval pass@1 0.9;
* ``down`` (llama-swap, disconnected) ``qwen-coder`` ready.

``auto:code`` for a 30 000-token prompt with 512 output tokens therefore picks ``cloud/gpt-x`` (score 1.0:
6 000 + 512 x 15 = 13 680 ms, best quality), then ``gpu/qwen-coder`` (15 000 + 512 x 20 = 25 240 ms: speed
13 680 / 25 240 = 0.541997; quality 0.6 / 0.9 = 0.666667; score (3 x 0.666667 + 0.541997) / 4 = 0.635499).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, update

from tests.ui import seed
from warehouse import bench_store, eval_store
from warehouse.schema import providers
from warehouse.schema_alerts import canary_probes
from warehouse.schema_evals import eval_scores
from warehouse.schema_fleet import leases

_N = 0


def _uid(prefix: str) -> str:
    global _N
    _N += 1
    return f"{prefix}-{_N}"


def bench_run(conn: Connection, pid: str, mid: str, at: datetime, *, ttft: tuple[float, float], tpot: float,
              prompt_tokens: int, j_per_token: float | None = None, simulated: bool = False) -> int:
    uid = _uid("bench")
    run_id = bench_store.insert_run(conn, {
        "run_uid": uid, "provider_id": pid, "model_id": mid, "status": "completed", "mode": "concurrency",
        "params": {}, "started_at": at, "finished_at": at + timedelta(minutes=1), "j_per_token": j_per_token,
        "simulated": simulated,
    })
    zeros = {k: 0.0 for k in ("request_throughput", "output_throughput", "total_token_throughput",
                              "prompt_throughput", "goodput", "mean_concurrency")}
    for idx, level, factor in ((0, 1.0, 1.0), (1, 8.0, 3.0)):  # the second point (under load) must not count
        point: dict[str, Any] = {
            "idx": idx, "mode": "concurrency", "level": level, "started_at": at, "finished_at": at,
            "requests": 4, "completed": 4, "failed": 0, "cancelled": 0, "duration_s": 10.0, **zeros,
            "prompt_tokens": 4 * prompt_tokens, "output_tokens": 400, "peak_concurrency": int(level),
            "saturated": False, "summary": {},
            "ttft_p50_ms": ttft[0] * factor, "ttft_p90_ms": ttft[1] * factor, "ttft_p95_ms": ttft[1] * factor,
            "ttft_p99_ms": ttft[1] * factor, "tpot_p50_ms": tpot * factor, "tpot_p90_ms": tpot * factor,
            "e2e_p50_ms": (ttft[0] + 100 * tpot) * factor, "decode_tps_mean": 1000 / (tpot * factor),
        }
        reqs = [{"seq": i, "sent_at": at, "send_offset_ms": 0.0, "chunk_ms": [], "cancelled": False, "retries": 0,
                 "output_tokens": 100, "prompt_tokens": prompt_tokens, "ttft_ms": ttft[0] * factor}
                for i in range(4)]  # fmt: skip
        bench_store.insert_point(conn, uid, point, reqs)
    return run_id


def eval_score(conn: Connection, pid: str, mid: str, suite: str, metric: str, value: float,
               *, stale: str | None = None) -> None:
    suite_id, _ = eval_store.ensure_suite(conn, suite, "v1", "code", [])
    common = {"harness_version": "h1", "sampling": {"temperature": 0}}
    run_id = eval_store.insert_run(conn, {
        "run_uid": _uid("eval"), "suite_id": suite_id, "provider_id": pid, "model_id": mid, "status": "completed",
        "config_key": _uid("cfg"), "samples_per_item": 1, "params": {}, "started_at": seed.T0, **common,
    })
    eval_store.write_scores(conn, run_id, [{
        "metric": metric, "value": value, "n_items": 10, "suite_name": suite, "suite_version": "v1",
        "provider_id": pid, "model_id": mid, **common,
    }])
    if stale:
        conn.execute(update(eval_scores).where(eval_scores.c.run_id == run_id).values(stale_reason=stale))


def known_fleet(engine: Engine, now: datetime) -> None:
    with engine.begin() as c:
        seed.provider(c, "gpu", base_url="http://10.0.0.5:8080")
        seed.provider(c, "cpu")
        seed.provider(c, "cloud", base_url="https://api.example.com")
        c.execute(update(providers).where(providers.c.id == "cloud").values(kind="openai"))
        seed.provider(c, "down", status="disconnected", last_error="connect: connection refused")
        seed.model(c, "gpu", "qwen-coder", state="ready", context_length=32768)
        seed.model(c, "gpu", "llama-8b", state="stopped", context_length=8192)
        seed.model(c, "gpu", "nomic-embed", state="ready", context_length=8192)
        seed.model(c, "cpu", "qwen-coder", state="ready", context_length=65536)
        seed.model(c, "cloud", "gpt-x", state=None, context_length=131072)
        seed.model(c, "down", "qwen-coder", state="ready", context_length=32768)
        for start, secs in ((now - timedelta(hours=3), 4), (now - timedelta(hours=2), 6)):
            seed.transition(c, "gpu", "llama-8b", start, "starting", "stopped")
            seed.transition(c, "gpu", "llama-8b", start + timedelta(seconds=secs), "ready", "starting")
        seed.epoch(c, "gpu", "ep1", now - timedelta(hours=5))
        for i in range(10):
            seed.activity(c, "gpu", "ep1", i + 1, now - timedelta(minutes=30 - i), model_id="qwen-coder",
                          pps=2000.0, tps=50.0, inp=1000, out=100, duration_ms=3000)
        # older than the live window, and a failed request: neither counts
        seed.activity(c, "gpu", "ep1", 100, now - timedelta(hours=30), model_id="qwen-coder", pps=10.0, tps=1.0)
        seed.activity(c, "gpu", "ep1", 101, now - timedelta(minutes=5), model_id="qwen-coder", status=500,
                      pps=1.0, tps=1.0)
        # a canary probe's own request (one token, slow): left out of the live speed
        probe_at = now - timedelta(minutes=3)
        seed.activity(c, "gpu", "ep1", 102, probe_at, model_id="qwen-coder", pps=5.0, tps=2.0, inp=10, out=1)
        c.execute(insert(canary_probes).values(provider_id="gpu", model_id="qwen-coder", sent_at=probe_at, ok=True,
                                               activity_upstream_id=102, activity_finished_at=probe_at))
        # canaries: an old failure no longer counts, the newest result per model does
        c.execute(insert(canary_probes), [
            {"provider_id": "gpu", "model_id": "qwen-coder", "sent_at": now - timedelta(minutes=30), "ok": False},
            {"provider_id": "cpu", "model_id": "qwen-coder", "sent_at": now - timedelta(minutes=4), "ok": True},
            {"provider_id": "cpu", "model_id": "qwen-coder", "sent_at": now - timedelta(minutes=2), "ok": False,
             "error": "HTTP 500"},
        ])
        bench_run(c, "gpu", "llama-8b", now - timedelta(days=3), ttft=(900.0, 900.0), tpot=90.0, prompt_tokens=600,
                  j_per_token=2.0)  # an older run: the newer one below speaks
        bench_run(c, "gpu", "llama-8b", now - timedelta(days=1), ttft=(300.0, 400.0), tpot=10.0, prompt_tokens=600,
                  j_per_token=0.5)
        bench_run(c, "cloud", "gpt-x", now - timedelta(days=1), ttft=(800.0, 1000.0), tpot=15.0, prompt_tokens=4000)
        eval_score(c, "gpu", "qwen-coder", "humaneval", "pass@1", 0.6)
        eval_score(c, "gpu", "llama-8b", "humaneval", "pass@1", 0.4)
        eval_score(c, "gpu", "llama-8b", "humaneval", "pass@1", 0.95, stale="model file changed")
        eval_score(c, "cloud", "gpt-x", "humaneval", "pass@1", 0.9)
        c.execute(insert(leases).values(provider_id="cpu", scope="host", holder="bench@box:1", purpose="bench run 7",
                                        acquired_at=now - timedelta(minutes=2), heartbeat_at=now,
                                        expires_at=now + timedelta(minutes=5)))  # fmt: skip
        c.execute(insert(leases).values(provider_id="gpu", scope="host", holder="old@box:2", purpose="expired",
                                        acquired_at=now - timedelta(hours=1), heartbeat_at=now - timedelta(hours=1),
                                        expires_at=now - timedelta(minutes=30)))  # fmt: skip
