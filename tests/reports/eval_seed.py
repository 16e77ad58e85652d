"""Known eval runs written through `warehouse.eval_store` (the engine's own write functions), for the query,
digest and page tests of the Evals cockpit. Every number the tests expect follows from this file by hand.

Providers: ``gpu`` (a real host) and ``demo`` (a simulated one: its boot's /api/hardware says so). Models:
gpu/alpha, gpu/beta and demo/``bad"name<b>`` (a hostile id). The week under test starts Monday `W0`.

* ifeval (8 items; i1-i4 ``length``, i5-i8 ``format``): #R1 alpha 8/8 (last week), #R2 alpha 7/8 (fails i2),
  #R3 beta 1/8 (passes i5), #R4 bad 0/8 with its score marked stale (on W0 + 3 days 1 hour).
* humaneval (2 items): #R5 alpha, HumanEval/0 passes (exit 0), HumanEval/1 fails (exit 1, AssertionError).
* chat (c1 writing, c2 math; 2 turns): #R6 alpha ratings c1 [[8]] + unparseable, c2 [[6]] [[4]] → 6.0;
  #R7 beta c1 [[5]] [[5]], c2 [[3]] [[3]] → 4.0; pairwise verdicts (judge gpu/judge) alpha vs beta:
  c1 turn 1 A>B / B>A (alpha +1: 0.75), c2 turn 1 A>>B / B>>A (alpha +2: 1.0), c1 turn 2 A>B / A>B
  (moves with the order: a tie, 0.5).
* needle: #R8 alpha, cells (target tokens, depth) → found/asked: (500, 0) 1/1, (500, 1) 0/1, (1000, 0) 1/1,
  (1000, 1) 1/1, (1000, multi) 2/3.
* bench: alpha's newest completed run decodes 40 tok/s at concurrency 1 (30 at 2; an older run 99), beta 60,
  bad 10.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, update

from tests.ui import seed
from warehouse import bench_store, eval_store
from warehouse import schema as s
from warehouse.schema_evals import eval_scores

W0 = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
BAD = 'bad"name<b>'
SAMPLING = {"temperature": 0.0, "top_p": 1.0, "seed": 1234, "max_tokens": 768, "samples": 1}
IFEVAL_ITEMS = [f"i{k}" for k in range(1, 9)]


@dataclass
class Seeded:
    runs: dict[str, int]  # R1..R8 -> run id
    answers: dict[tuple[str, str], int]  # (run name, item key) -> answer id


def _suite(conn: Connection, name: str, kind: str, items: list[tuple[str, str | None, dict[str, Any]]]) -> dict[str, int]:
    _, ids = eval_store.ensure_suite(
        conn, name, f"{name}-v1", kind,
        [{"key": k, "idx": i, "category": c, "payload": p} for i, (k, c, p) in enumerate(items)],
    )  # fmt: skip
    return ids


def _run(conn: Connection, name: str, suite_ids: dict[str, int], provider: str, model: str, finished: datetime,
         judge: str | None = None) -> int:  # fmt: skip
    from sqlalchemy import select

    from warehouse.schema_evals import eval_items

    any_item = next(iter(suite_ids.values()))
    suite_id = conn.execute(select(eval_items.c.suite_id).where(eval_items.c.id == any_item)).scalar_one()
    return eval_store.insert_run(conn, {
        "run_uid": f"ev-{name}", "suite_id": suite_id, "provider_id": provider, "model_id": model,
        "status": "completed", "config_key": f"ck-{name}", "model_file": "/models/m.gguf",
        "harness_version": "evals-1", "sampling": SAMPLING, "samples_per_item": 1, "judge": judge,
        "params": {}, "started_at": finished - timedelta(minutes=10), "finished_at": finished,
    })  # fmt: skip


def _answer(conn: Connection, run_id: int, item_id: int, text: str, t: datetime) -> int:
    aid = eval_store.insert_answer(conn, {"run_id": run_id, "item_id": item_id, "sample_idx": 0, "seed": 1234,
                                          "text": text, "completion_tokens": 10, "latency_ms": 100.0,
                                          "answered_at": t})  # fmt: skip
    assert aid is not None
    return aid


def _scores(conn: Connection, run_id: int, suite: str, provider: str, model: str, metrics: dict[str, float],
            n_items: int, judge: str | None = None) -> None:  # fmt: skip
    eval_store.write_scores(conn, run_id, [
        {"metric": m, "value": v, "n_items": n_items, "suite_name": suite, "suite_version": f"{suite}-v1",
         "provider_id": provider, "model_id": model, "model_file": "/models/m.gguf", "server_version": None,
         "harness_version": "evals-1", "sampling": SAMPLING, "judge": judge}
        for m, v in metrics.items()])  # fmt: skip


def _judgment(answer_id: int, raw: str, score: float | None, turn: int, other: int | None = None,
              swapped: bool = False) -> dict[str, Any]:  # fmt: skip
    return {"answer_id": answer_id, "other_answer_id": other, "swapped": swapped, "judge_provider_id": "gpu",
            "judge_model_id": "judge", "prompt_version": "judge-1", "sampling": {"temperature": 0.0},
            "raw": raw, "parsed": score is not None,
            "verdict": f"turn {turn}: " + ("rating" if score is not None else "no [[n]] rating"), "score": score}  # fmt: skip


def seed_evals(db: Engine) -> Seeded:
    runs: dict[str, int] = {}
    answers: dict[tuple[str, str], int] = {}
    with db.begin() as conn:
        seed.provider(conn, "gpu")
        seed.provider(conn, "demo")
        conn.execute(insert(s.instance_boots).values(provider_id="demo", boot_marker="b1", version="v250",
                                                     hardware={"simulated": True}, first_seen_at=W0 - timedelta(days=30),
                                                     last_seen_at=W0))  # fmt: skip

        # --- ifeval
        if_ids = _suite(conn, "ifeval", "instructions",
                        [(k, "length" if i < 4 else "format", {"prompt": f"Prompt of {k}.", "checks": []})
                         for i, k in enumerate(IFEVAL_ITEMS)])  # fmt: skip
        plan = {
            "R1": ("gpu", "alpha", W0 - timedelta(days=2), set(IFEVAL_ITEMS)),
            "R2": ("gpu", "alpha", W0 + timedelta(days=1), set(IFEVAL_ITEMS) - {"i2"}),
            "R3": ("gpu", "beta", W0 + timedelta(days=2), {"i5"}),
            "R4": ("demo", BAD, W0 + timedelta(days=3), set()),
        }
        for name, (p, m, t, passed) in plan.items():
            rid = runs[name] = _run(conn, name, if_ids, p, m, t)
            for k in IFEVAL_ITEMS:
                aid = answers[(name, k)] = _answer(conn, rid, if_ids[k], f"{m} answers {k}", t)
                ok = k in passed
                eval_store.record_verdict(conn, aid, ok, float(ok), {"checks": [
                    {"type": "word_count", "passed": ok, "detail": "8 words" if ok else "180 words > 50"}]})  # fmt: skip
            _scores(conn, rid, "ifeval", p, m, {"prompt_strict": len(passed) / 8, "instruction_strict": len(passed) / 8}, 8)
        eval_store.set_stale(conn, [(sid, "model file changed: /models/a.gguf -> /models/b.gguf")
                                    for sid in _score_ids(conn, runs["R4"])])  # fmt: skip
        conn.execute(update(eval_scores).where(eval_scores.c.run_id == runs["R4"])
                     .values(stale_since=W0 + timedelta(days=3, hours=1)))  # fmt: skip

        # --- humaneval
        he_ids = _suite(conn, "humaneval", "code", [(f"HumanEval/{k}", None, {"prompt": f"def f{k}():\n"})
                                                    for k in range(2)])  # fmt: skip
        t = W0 + timedelta(days=1, hours=2)
        rid = runs["R5"] = _run(conn, "R5", he_ids, "gpu", "alpha", t)
        for k, ok in ((0, True), (1, False)):
            key = f"HumanEval/{k}"
            aid = answers[("R5", key)] = _answer(conn, rid, he_ids[key], f"```python\ndef f{k}(): ...\n```", t)
            eval_store.record_verdict(
                conn, aid, ok, float(ok), {"exit_code": 0 if ok else 1, "killed_reason": None},
                {"backend": "bubblewrap", "exit_code": 0 if ok else 1, "signal": None, "timed_out": False,
                 "killed_reason": None, "stdout": "ran 3 tests\n" if ok else "",
                 "stderr": "" if ok else "Traceback (most recent call last):\nAssertionError: <b>wrong</b>\n",
                 "stdout_truncated": False, "stderr_truncated": False, "duration_s": 0.12},
            )  # fmt: skip
        _scores(conn, rid, "humaneval", "gpu", "alpha", {"pass@1": 0.5}, 2)

        # --- chat, single ratings and pairwise verdicts
        ch_ids = _suite(conn, "chat", "chat", [("c1", "writing", {"turns": ["Write a haiku.", "Now in French."]}),
                                               ("c2", "math", {"turns": ["2+2?", "Times 3?"]})])  # fmt: skip
        t = W0 + timedelta(days=2, hours=5)
        ratings = {"R6": ("alpha", {"c1": [8.0, None], "c2": [6.0, 4.0]}),
                   "R7": ("beta", {"c1": [5.0, 5.0], "c2": [3.0, 3.0]})}  # fmt: skip
        for name, (m, per_item) in ratings.items():
            rid = runs[name] = _run(conn, name, ch_ids, "gpu", m, t, judge="gpu/judge@judge-1")
            parsed_all: list[float] = []
            for key, turns in per_item.items():
                aid = answers[(name, key)] = _answer(conn, rid, ch_ids[key], json.dumps([f"{m} {key} one",
                                                                                        f"{m} {key} two"]), t)  # fmt: skip
                js = [_judgment(aid, f"[[{v:g}]]" if v is not None else "I'd say eight out of ten", v, n + 1)
                      for n, v in enumerate(turns)]  # fmt: skip
                parsed = [v for v in turns if v is not None]
                parsed_all += parsed
                eval_store.record_judged(conn, aid, sum(parsed) / len(parsed), {"turns": len(turns)}, js)
            _scores(conn, rid, "chat", "gpu", m, {"judge_score": sum(parsed_all) / len(parsed_all)}, 2,
                    judge="gpu/judge@judge-1")  # fmt: skip
        pairs = [("c1", 1, "[[A>B]]", 1, "[[B>A]]", -1), ("c2", 1, "[[A>>B]]", 2, "[[B>>A]]", -2),
                 ("c1", 2, "[[A>B]]", 1, "[[A>B]]", 1)]  # fmt: skip
        rows = []
        for key, turn, raw1, v1, raw2, v2 in pairs:
            a, b = answers[("R6", key)], answers[("R7", key)]
            rows += [_judgment(a, raw1, float(v1), turn, other=b, swapped=False),
                     _judgment(a, raw2, float(v2), turn, other=b, swapped=True)]  # fmt: skip
        eval_store.insert_judgments(conn, rows)

        # --- needle
        cells = [("L0.5-d0", 0.5, 500, 0.0, 1, 1), ("L0.5-d1", 0.5, 500, 1.0, 0, 1), ("L1-d0", 1.0, 1000, 0.0, 1, 1),
                 ("L1-d1", 1.0, 1000, 1.0, 1, 1), ("L1-multi3", 1.0, 1000, None, 2, 3)]  # fmt: skip
        nd_ids = _suite(conn, "needle", "needle", [(c[0], f"{c[1]:g}", {"prompt": "haystack"}) for c in cells])
        t = W0 + timedelta(days=4)
        rid = runs["R8"] = _run(conn, "R8", nd_ids, "gpu", "alpha", t)
        for key, frac, tokens, depth, found, asked in cells:
            aid = answers[("R8", key)] = _answer(conn, rid, nd_ids[key], "The code is 12345.", t)
            eval_store.record_verdict(conn, aid, found == asked, found / asked, {
                "found": found, "asked": asked, "length_fraction": frac, "depth": depth, "target_tokens": tokens,
                "prompt_tokens": tokens - 3})  # fmt: skip
        _scores(conn, rid, "needle", "gpu", "alpha", {"accuracy": 11 / 15}, 5)

        # --- benchmark speeds
        for uid, p, m, started, levels in (("b-old", "gpu", "alpha", W0 - timedelta(days=20), [(1, 99.0)]),
                                           ("b-new", "gpu", "alpha", W0 - timedelta(days=1), [(2, 30.0), (1, 40.0)]),
                                           ("b-beta", "gpu", "beta", W0 - timedelta(days=1), [(1, 60.0)]),
                                           ("b-bad", "demo", BAD, W0 - timedelta(days=1), [(1, 10.0)])):  # fmt: skip
            bench_store.insert_run(conn, {"run_uid": uid, "provider_id": p, "model_id": m, "status": "completed",
                                          "mode": "concurrency", "params": {}, "started_at": started,
                                          "finished_at": started + timedelta(minutes=5)})  # fmt: skip
            for idx, (level, tps) in enumerate(levels):
                bench_store.insert_point(conn, uid, _point(idx, level, tps, started), [])
    return Seeded(runs, answers)


def _score_ids(conn: Connection, run_id: int) -> list[int]:
    return [int(r["id"]) for r in eval_store.scores(conn) if int(r["run_id"]) == run_id]


def _point(idx: int, level: float, tps: float, t: datetime) -> dict[str, Any]:
    return {"idx": idx, "mode": "concurrency", "level": float(level), "started_at": t, "finished_at": t,
            "requests": 3, "completed": 3, "failed": 0, "cancelled": 0, "duration_s": 1.0,
            "request_throughput": 3.0, "output_throughput": tps, "total_token_throughput": tps,
            "prompt_throughput": 1.0, "goodput": 3.0, "prompt_tokens": 30, "output_tokens": 30,
            "peak_concurrency": int(level), "mean_concurrency": float(level), "decode_tps_mean": tps,
            "saturated": False, "summary": {}}  # fmt: skip
