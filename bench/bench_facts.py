"""What re-reading the routing facts costs: `gateway.facts.load_facts` on a busy fleet's warehouse.

Every gateway replica calls load_facts every ``BOOCONTROL_GATEWAY_FACTS_REFRESH_SECONDS`` (5 s), so its cost
is paid continuously by Postgres. A throwaway database gets ``--hosts`` llama-swap hosts with ``--models`` models
each, two measured loads per model, ``--rows-per-day`` activity rows per day for ``--days`` days (the live
window reads the last 24 h), a benchmark run with two points and 8 requests per model and an eval score per
model; then load_facts runs ``--runs`` times and each of its queries is timed on its own (medians).

    .venv/bin/python bench/bench_facts.py
    .venv/bin/python bench/bench_facts.py --hosts 100 --rows-per-day 500000
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from gateway.facts import LIVE_SAMPLE, LIVE_WINDOW_S, load_facts
from warehouse.cluster import EmbeddedCluster
from warehouse.db import make_engine, psycopg_dsn
from warehouse.migrate import upgrade
from warehouse.queries import routing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(dsn: str, hosts: int, models: int, rows_per_day: int, days: int, now: datetime) -> None:
    span_s = days * 86400
    total = rows_per_day * days
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("""INSERT INTO providers (id, label, base_url, kind)
                     SELECT 'h' || h, 'host ' || h, 'http://10.0.0.' || h || ':8080', 'llama-swap'
                     FROM generate_series(0, %(h)s - 1) h""", {"h": hosts})
        c.execute("""INSERT INTO connector_health (provider_id, status, updated_at)
                     SELECT id, 'connected', %(now)s FROM providers""", {"now": now})
        c.execute("""INSERT INTO models (provider_id, model_id, state, context_length, first_seen_at, last_seen_at)
                     SELECT 'h' || h, 'm' || m, CASE WHEN m = 0 THEN 'ready' ELSE 'stopped' END, 32768, %(now)s,
                            %(now)s
                     FROM generate_series(0, %(h)s - 1) h, generate_series(0, %(m)s - 1) m""",
                  {"h": hosts, "m": models, "now": now})
        c.execute("""INSERT INTO model_transitions (provider_id, model_id, observed_at, from_state, to_state, source)
                     SELECT 'h' || h, 'm' || m, %(now)s - (k || ' hours')::interval + (s || ' seconds')::interval,
                            CASE WHEN s = 0 THEN 'stopped' ELSE 'starting' END,
                            CASE WHEN s = 0 THEN 'starting' ELSE 'ready' END, 'sse'
                     FROM generate_series(0, %(h)s - 1) h, generate_series(0, %(m)s - 1) m,
                          generate_series(1, 2) k, (VALUES (0), (5)) v(s)""",
                  {"h": hosts, "m": models, "now": now})
        c.execute("""INSERT INTO activity (provider_id, epoch, upstream_id, finished_at, model_id, req_path,
                        resp_content_type, status_code, input_tokens, output_tokens, cache_tokens, draft_tokens,
                        draft_acc_tokens, prompt_per_second, tokens_per_second, duration_ms, has_capture)
                     SELECT 'h' || (i %% %(h)s), 'e', i, %(now)s - (i * %(step)s) * interval '1 second',
                            'm' || ((i / %(h)s) %% %(m)s), '/v1/chat/completions', 'application/json',
                            CASE WHEN i %% 50 = 0 THEN 500 ELSE 200 END, 200 + i %% 2000, 50 + i %% 400, -1, -1,
                            -1, 800 + i %% 900, 20 + i %% 60, 1000 + i %% 9000, false
                     FROM generate_series(1, %(n)s) i""",
                  {"h": hosts, "m": models, "now": now, "n": total, "step": span_s / total})
        for h in range(hosts):
            for m in range(models):
                rid = c.execute("""INSERT INTO bench_runs (run_uid, provider_id, model_id, status, mode, params,
                                     started_at, j_per_token) VALUES (%s, %s, %s, 'completed', 'concurrency', '{}',
                                     %s, 0.4) RETURNING id""",
                                (f"r{h}-{m}", f"h{h}", f"m{m}", now - timedelta(days=1))).fetchone()
                assert rid is not None
                for idx, level in ((0, 1), (1, 8)):
                    pid = c.execute("""INSERT INTO bench_points (run_id, idx, mode, level, started_at, finished_at,
                        requests, completed, failed, cancelled, duration_s, request_throughput, output_throughput,
                        total_token_throughput, prompt_throughput, goodput, prompt_tokens, output_tokens,
                        peak_concurrency, mean_concurrency, saturated, summary, ttft_p50_ms, tpot_p50_ms)
                        VALUES (%s, %s, 'concurrency', %s, %s, %s, 8, 8, 0, 0, 10, 1, 1, 1, 1, 1, 8000, 800, %s, 1,
                                false, '{}', 300, 12) RETURNING id""",
                                    (rid[0], idx, level, now, now, level)).fetchone()
                    assert pid is not None
                    c.execute("""INSERT INTO bench_requests (point_id, seq, run_id, sent_at, send_offset_ms, ttft_ms,
                                   chunk_ms, cancelled, retries, prompt_tokens, output_tokens)
                                 SELECT %s, s, %s, %s, 0, 300 + s, '{}', false, 0, 1000, 100
                                 FROM generate_series(0, 7) s""", (pid[0], rid[0], now))
        c.execute("""INSERT INTO eval_suites (name, version, kind, n_items) VALUES ('humaneval', 'v1', 'code', 164)""")
        c.execute("""INSERT INTO eval_runs (run_uid, suite_id, provider_id, model_id, status, config_key,
                       harness_version, sampling, samples_per_item, params, started_at)
                     SELECT 'e' || p.id || m.model_id, 1, p.id, m.model_id, 'completed', 'k', 'h', '{}', 1, '{}', %s
                     FROM providers p JOIN models m ON m.provider_id = p.id""", (now,))
        c.execute("""INSERT INTO eval_scores (run_id, metric, value, n_items, suite_name, suite_version, provider_id,
                       model_id, harness_version, sampling)
                     SELECT id, 'pass@1', random(), 164, 'humaneval', 'v1', provider_id, model_id, 'h', '{}'
                     FROM eval_runs""")
        c.execute("VACUUM ANALYZE")


def timed(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--rows-per-day", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    cluster = EmbeddedCluster(Path(tempfile.mkdtemp(prefix="boocontrol-bench-")), free_port(), fast_unsafe=True)
    cluster.start()
    try:
        cluster.ensure_database("bench")
        url = cluster.url("bench")
        upgrade(url)
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = time.perf_counter()
        populate(psycopg_dsn(url), args.hosts, args.models, args.rows_per_day, args.days, now)
        print(f"populated in {time.perf_counter() - t0:.1f} s: {args.hosts * args.models} models, "
              f"{args.rows_per_day * args.days:,} activity rows over {args.days} days")
        engine = make_engine(url)
        since = now - timedelta(seconds=LIVE_WINDOW_S)
        print(f"load average {os.getloadavg()[0]:.2f} (2 shared cores); medians of {args.runs} runs")
        facts = load_facts(engine, now)
        with_live = sum(1 for m in facts.models if m.live is not None)
        print(f"load_facts: {timed(lambda: load_facts(engine, now), args.runs):,.0f} ms "
              f"({len(facts.models)} models, {with_live} with live speed)")
        for name, fn in (
            ("routable_models", lambda: routing.routable_models(engine)),
            ("eval_quality", lambda: routing.eval_quality(engine)),
            ("live_speed (24 h)", lambda: routing.live_speed(engine, since, now, 5, LIVE_SAMPLE)),
            ("bench_speed", lambda: routing.bench_speed(engine, now)),
            ("energy", lambda: routing.energy(engine, now)),
            ("host_leases", lambda: routing.host_leases(engine, now)),
            ("canary_results", lambda: routing.canary_results(engine, now - timedelta(minutes=15), now)),
        ):
            print(f"  {name:<20} {timed(fn, args.runs):>8,.0f} ms")
        engine.dispose()
    finally:
        cluster.stop("immediate")


if __name__ == "__main__":
    main()
