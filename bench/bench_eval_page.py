"""Evals page read benchmark: many models, each with several runs of every suite.

Builds a throwaway Postgres (embedded cluster, fsync off) with ``--models`` provider/models, each with ``--runs``
completed runs of humaneval (164 items × ``--samples``), ifeval (32), chat (10 items, 2 judged turns each, and
pairwise verdicts against the next model) and needle (30 cells), scores written through `warehouse.eval_store`,
and a benchmark run per model. Then measures the read side (`warehouse.queries.evals`: every leaderboard with
its bootstrap intervals, quality vs speed, run vs run, digest rows) and the page itself
(`AppTest.from_file("pages/9_Evals.py").run()` with empty data caches: every tab renders), first call and
median of 5 (page: of 3).

    .venv/bin/python bench/bench_eval_page.py [--models 30] [--runs 3] [--samples 1]

Target: the page renders in under 2 s for 30 models (median of 3 renders with empty data caches; the first
run also pays the one-time imports of a fresh process).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, insert  # noqa: E402

from warehouse import bench_store, eval_store  # noqa: E402
from warehouse.cluster import EmbeddedCluster  # noqa: E402
from warehouse.db import make_engine  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402
from warehouse.schema_evals import eval_answers, eval_judgments  # noqa: E402

SUITES = {"humaneval": ("code", 164, None), "ifeval": ("instructions", 32, 8), "chat": ("chat", 10, 8),
          "needle": ("needle", 30, 5)}  # fmt: skip
METRIC = {"code": "pass@1", "instructions": "prompt_strict", "chat": "judge_score", "needle": "accuracy"}


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times[0], statistics.median(times)


def generate(engine: Engine, models: int, runs: int, samples: int, now: datetime) -> int:
    rng = random.Random(7)
    n_answers = 0
    with engine.begin() as conn:
        items: dict[str, dict[str, int]] = {}
        for name, (kind, n, cats) in SUITES.items():
            _, ids = eval_store.ensure_suite(conn, name, f"{name}-v1", kind, [
                {"key": f"{name}-{i}", "idx": i, "category": None if cats is None else f"cat{i % cats}",
                 "payload": {"prompt": f"item {i}"}} for i in range(n)])  # fmt: skip
            items[name] = ids
    chat_answers: dict[tuple[int, int], list[int]] = {}
    for m in range(models):
        skill = 0.2 + 0.6 * m / max(models - 1, 1)
        with engine.begin() as conn:
            for r in range(runs):
                finished = now - timedelta(days=7 * (runs - r))
                for name, (kind, _n, _c) in SUITES.items():
                    rid = eval_store.insert_run(conn, {
                        "run_uid": f"ev-{m}-{r}-{name}", "suite_id": _suite_id(conn, items[name]),
                        "provider_id": f"host-{m % 5}", "model_id": f"model-{m:02d}", "status": "completed",
                        "config_key": f"ck-{m}-{name}", "model_file": f"/m/model-{m}.gguf", "harness_version": "evals-1",
                        "sampling": {"samples": samples}, "samples_per_item": samples, "params": {},
                        "started_at": finished - timedelta(minutes=30), "finished_at": finished})  # fmt: skip
                    rows = []
                    for key, item_id in items[name].items():
                        for s in range(samples if kind == "code" else 1):
                            ok = rng.random() < skill
                            detail: dict[str, Any] = {}
                            if kind == "needle":
                                i = int(key.rsplit("-", 1)[1])
                                detail = {"found": int(ok), "asked": 1, "length_fraction": [0.125, 0.25, 0.5, 0.75, 1][i % 5],
                                          "depth": (i // 5) / 5, "target_tokens": 1000 * (i % 5 + 1)}  # fmt: skip
                            rows.append({"run_id": rid, "item_id": item_id, "sample_idx": s, "text": f"answer {key}",
                                         "answered_at": finished, "passed": None if kind == "chat" else ok,
                                         "score": float(ok) * (9 if kind == "chat" else 1) + (1 if kind == "chat" else 0),
                                         "detail": detail, "scored_at": finished, "completion_tokens": 50,
                                         "latency_ms": 300.0})  # fmt: skip
                    ids = list(conn.execute(insert(eval_answers).returning(eval_answers.c.id), rows).scalars())
                    n_answers += len(ids)
                    if kind == "chat":
                        chat_answers[(m, r)] = ids
                        conn.execute(insert(eval_judgments), [
                            {"answer_id": a, "judge_provider_id": "host-0", "judge_model_id": "judge",
                             "prompt_version": "judge-1", "sampling": {}, "raw": "[[7]]", "parsed": True,
                             "verdict": f"turn {t}: rating", "score": 7.0} for a in ids for t in (1, 2)])  # fmt: skip
                    eval_store.write_scores(conn, rid, [{
                        "metric": METRIC[kind], "value": skill, "n_items": len(items[name]), "suite_name": name,
                        "suite_version": f"{name}-v1", "provider_id": f"host-{m % 5}", "model_id": f"model-{m:02d}",
                        "harness_version": "evals-1", "sampling": {"samples": samples}}])  # fmt: skip
            uid = f"b-{m}"
            bench_store.insert_run(conn, {"run_uid": uid, "provider_id": f"host-{m % 5}", "model_id": f"model-{m:02d}",
                                          "status": "completed", "mode": "concurrency", "params": {},
                                          "started_at": now - timedelta(days=1)})  # fmt: skip
            bench_store.insert_point(conn, uid, {
                "idx": 0, "mode": "concurrency", "level": 1.0, "started_at": now, "finished_at": now, "requests": 3,
                "completed": 3, "failed": 0, "cancelled": 0, "duration_s": 1.0, "request_throughput": 1.0,
                "output_throughput": 50.0, "total_token_throughput": 50.0, "prompt_throughput": 1.0, "goodput": 1.0,
                "prompt_tokens": 1, "output_tokens": 1, "peak_concurrency": 1, "mean_concurrency": 1.0,
                "decode_tps_mean": 20.0 + 100.0 * rng.random(), "saturated": False, "summary": {}}, [])  # fmt: skip
    with engine.begin() as conn:  # pairwise: newest chat run of model m against model m+1, both orders, turn 1
        rows = []
        for m in range(models - 1):
            for a, b in zip(chat_answers[(m, runs - 1)], chat_answers[(m + 1, runs - 1)], strict=True):
                rows += [{"answer_id": a, "other_answer_id": b, "swapped": sw, "judge_provider_id": "host-0",
                          "judge_model_id": "judge", "prompt_version": "judge-1", "sampling": {},
                          "raw": "[[B>A]]" if not sw else "[[A>B]]", "parsed": True, "verdict": "turn 1: ok",
                          "score": -1.0 if not sw else 1.0} for sw in (False, True)]  # fmt: skip
        conn.execute(insert(eval_judgments), rows)
    return n_answers


def _suite_id(conn: Any, item_ids: dict[str, int]) -> int:
    from sqlalchemy import select

    from warehouse.schema_evals import eval_items

    return int(conn.execute(select(eval_items.c.suite_id).where(eval_items.c.id == next(iter(item_ids.values()))))
               .scalar_one())  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--port", type=int, default=55531)
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-eval-page-"))
    cluster = EmbeddedCluster(base, args.port, fast_unsafe=True)
    cluster.start()
    try:
        url = cluster.url("bench")
        cluster.ensure_database("bench")
        upgrade(url)
        engine = make_engine(url)
        now = datetime.now(UTC).replace(microsecond=0)
        t = time.perf_counter()
        n = generate(engine, args.models, args.runs, args.samples, now)
        print(f"generated {n:,} answers ({args.models} models × {args.runs} runs × 4 suites) in "
              f"{time.perf_counter() - t:.1f} s")  # fmt: skip

        from warehouse.queries import evals as q

        results = {f"leaderboard {s} (with bootstrap intervals)": timed(lambda s=s: q.leaderboard(engine, s), 5)
                   for s in SUITES}  # fmt: skip
        results["quality_vs_speed humaneval"] = timed(lambda: q.quality_vs_speed(engine, "humaneval"), 5)
        results["pair_verdicts"] = timed(lambda: q.pair_verdicts(engine), 5)
        from ui.eval_data import pairwise

        results["pairwise Bradley-Terry, 500 resamples (ui)"] = timed(lambda: pairwise(q.pair_verdicts(engine)), 5)
        results["compare_runs (humaneval)"] = timed(lambda: q.compare_runs(engine, 1, 5), 5)
        results["period_scores (one week)"] = timed(lambda: q.period_scores(engine, now - timedelta(days=7), now), 5)
        results["list_runs"] = timed(lambda: q.list_runs(engine), 5)
        print("\nquery layer (seconds: first call, median of 5)")
        for name, (first, med) in results.items():
            print(f"  {name:<52} {first:6.3f}  {med:6.3f}")

        os.environ["BOOCONTROL_DATABASE_URL"] = url
        os.environ["BOOCONTROL_FLEET_FILE"] = str(base / "no-fleet.yaml")
        import streamlit as st
        from streamlit.testing.v1 import AppTest

        from core.settings import get_settings

        get_settings.cache_clear()
        AppTest.from_string("import streamlit as st\nst.write('warm-up')").run()

        def render() -> None:
            st.cache_data.clear()
            at = AppTest.from_file(str(ROOT / "pages/9_Evals.py"), default_timeout=120)
            at.run()
            assert not at.exception, at.exception
            assert len(at.get("plotly_chart")) >= 6

        first, med = timed(render, 3)
        # the first run also imports the page's modules (plotly, the eval engine, numpy: seconds, once per server
        # process); the target is judged on the median, a page opened on a running cockpit with empty data caches
        print(f"\npages/9_Evals.py, empty data caches (first run incl. imports, median of 3): {first:.3f} s, "
              f"{med:.3f} s — target < 2 s (median): {'OK' if med < 2 else 'MISSED'}")  # fmt: skip
        print(json.dumps({"models": args.models, "runs": args.runs, "answers": n, "page_first_s": round(first, 3),
                          "page_median_s": round(med, 3)}))  # fmt: skip
        engine.dispose()
    finally:
        cluster.stop("immediate")


if __name__ == "__main__":
    main()
