"""Eval runs end to end against a scripted OpenAI-compatible server (known answers → exact scores), the real
Postgres and the real bubblewrap sandbox: pass@k, instruction checks, resuming a stopped run without
re-asking, stale scores after a model file change, the lease and the takeover confirmation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, select

from core.providers import Provider
from engines.evals.options import EvalOptions
from engines.evals.runner import EvalRefused, run_eval
from engines.evals.sandbox import BubblewrapSandbox
from engines.evals.suites import load_humaneval, load_ifeval
from tests.conftest import truncate_all
from tests.support.scripted_openai import ScriptState, run_scripted_server
from warehouse import eval_store, lease
from warehouse.db import psycopg_dsn
from warehouse.schema_evals import eval_answers, eval_runs, eval_sandbox_outcomes, eval_scores

BASE_UID = 2_100_300_000  # away from the sandbox tests' and the default uids

HE = {i.key: i for i in load_humaneval().items}
def _canonical() -> dict[str, str]:
    import gzip
    import json

    from engines.evals.suites import humaneval_path

    with gzip.open(humaneval_path(), "rt") as f:
        return {p["task_id"]: p["prompt"] + p["canonical_solution"] for p in map(json.loads, f)}


SOLUTIONS = _canonical()


def entry_of(msg: str) -> str:
    for key, item in HE.items():
        if item.payload["prompt"] in msg:
            return key
    raise AssertionError("not a HumanEval prompt")


@pytest.fixture()
def db(engine: Engine) -> Iterator[Engine]:
    truncate_all(engine)
    yield engine


@pytest.fixture()
def sandbox() -> BubblewrapSandbox:
    sb = BubblewrapSandbox(base_uid=BASE_UID)
    sb.check()
    return sb


def provider(base_url: str) -> Provider:
    return Provider("scripted", "scripted", base_url, kind="openai")


def run(db: Engine, base: str, suite_name: str, sandbox: BubblewrapSandbox | None = None, **opts: object):  # type: ignore[no-untyped-def]
    suite = load_humaneval() if suite_name == "humaneval" else load_ifeval()
    options = EvalOptions(suite=suite_name, **opts)  # type: ignore[arg-type]
    return asyncio.run(run_eval(db, provider(base), "scripted", suite, options, confirm_takeover=True,
                                sandbox=sandbox))  # fmt: skip


def test_humaneval_pass_at_k_exact(db: Engine, sandbox: BubblewrapSandbox) -> None:
    # HumanEval/0: samples 0 and 1 right (c=2 of 5); HumanEval/2: all 5 right; HumanEval/4: none (a stub,
    # a syntax error, an infinite loop, a wrong answer, prose)
    wrong = ["```python\ndef mean_absolute_deviation(numbers):\n    return 0.0\n```", "```python\ndef (:\n```",
             "```python\ndef mean_absolute_deviation(numbers):\n    while True: pass\n```", "I cannot do that.",
             "```python\ndef mean_absolute_deviation(numbers):\n    return 1.0\n```"]  # fmt: skip

    def script(msg: str, seed: int) -> str:
        key, i = entry_of(msg), seed - 1234
        good = f"Sure:\n```python\n{SOLUTIONS[key]}```"
        if key == "HumanEval/0":
            return good if i < 2 else "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
        if key == "HumanEval/2":
            return good
        return wrong[i]

    with run_scripted_server(script, ScriptState(delay_s=0.2)) as srv:  # answers overlap: slots are used
        out = run(db, srv.base_url, "humaneval", sandbox, items="HumanEval/0,HumanEval/2,HumanEval/4", samples=5,
                  sandbox_wall_s=3.0)  # fmt: skip
    assert out.status == "completed" and out.asked == 15 and out.parallel == 2  # /props total_slots
    assert out.metrics == {"pass@1": pytest.approx((2 / 5 + 1 + 0) / 3), "pass@5": pytest.approx(2 / 3)}
    assert srv.state.peak_in_flight == 2
    assert sorted(s for _, s in srv.state.asked) == sorted([1234 + i for i in range(5)] * 3)
    with db.connect() as conn:
        scores = {r["metric"]: r for r in eval_store.scores(conn)}
        run_row = eval_store.get_run(conn, out.run_id)
        boxes = conn.execute(select(eval_sandbox_outcomes.c.killed_reason, eval_sandbox_outcomes.c.exit_code,
                                    eval_sandbox_outcomes.c.stderr)).all()  # fmt: skip
    assert scores["pass@1"]["value"] == pytest.approx(7 / 15)
    assert scores["pass@1"]["model_file"] == "/models/scripted-q4.gguf" == run_row["model_file"]
    assert scores["pass@1"]["sampling"] == {"temperature": 0.8, "top_p": 1.0, "seed": 1234, "max_tokens": 768,
                                            "samples": 5}  # fmt: skip
    assert run_row["server_version"] == "b9999-scripted" and run_row["parallel"] == 2
    assert len(boxes) == 15
    assert sum(1 for kr, code, _ in boxes if kr is None and code == 0) == 7
    assert any(kr == "wall_clock" for kr, _, _ in boxes)  # the endless loop was killed, not waited for
    assert any("SyntaxError" in err for _, _, err in boxes)


def test_instruction_checks_scored_per_item(db: Engine) -> None:
    answers = {
        "bullets-4": "- a\n- b\n- c\n- d",  # pass
        "json-person": '{"name": "Ada", "age": 36, "city": "London"}',  # pass
        "ends-with": "Recursion calls itself. Is there anything else I can help with?",  # pass
        "uppercase": "Careful, WET FLOOR",  # fail
        "combo-bullets-words": "- kiwi\n- apple\n- fig",  # bullets ok, words ok, forbidden 'apple' fails
    }
    suite = load_ifeval()
    by_prompt = {i.prompt: i.key for i in suite.items}
    with run_scripted_server(lambda msg, seed: answers[by_prompt[msg]]) as srv:
        out = run(db, srv.base_url, "ifeval", items=",".join(answers))
    assert out.metrics == {"prompt_strict": pytest.approx(3 / 5), "instruction_strict": pytest.approx(5 / 7)}
    assert srv.state.asked and all(s == 1234 for _, s in srv.state.asked)  # one greedy sample, fixed seed
    with db.connect() as conn:
        rows = {r["item_key"]: r for r in eval_store.run_items(conn, out.run_id)}
        sampling = eval_store.get_run(conn, out.run_id)["sampling"]
    assert {k: r["passed"] for k, r in rows.items()} == {
        "bullets-4": True, "json-person": True, "ends-with": True, "uppercase": False,
        "combo-bullets-words": False,
    }  # fmt: skip
    assert [c["passed"] for c in rows["combo-bullets-words"]["detail"]["checks"]] == [True, True, False]
    assert rows["combo-bullets-words"]["score"] == pytest.approx(2 / 3)
    assert sampling["temperature"] == 0.0 and sampling["seed"] == 1234


def test_stopped_run_resumes_without_reasking(db: Engine) -> None:
    suite = load_ifeval()
    keys = [i.key for i in suite.items[:6]]
    state = ScriptState(total_slots=1, delay_s=0.15)

    async def stop_after(n: int) -> None:
        task = asyncio.create_task(run_eval(db, provider(srv.base_url), "scripted", suite,
                                            EvalOptions(suite="ifeval", limit=6), confirm_takeover=True))  # fmt: skip
        while True:
            with db.connect() as conn:
                stored = conn.execute(select(eval_answers.c.id)).all()
            if len(stored) >= n:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with run_scripted_server(lambda msg, seed: "- x", state) as srv:
        asyncio.run(stop_after(3))
        with db.connect() as conn:
            [first] = conn.execute(select(eval_runs.c.id, eval_runs.c.status)).all()
            stored_first = len(conn.execute(select(eval_answers.c.id)).all())
        assert first.status == "cancelled" and 3 <= stored_first < 6
        asked_first = len(state.asked)
        out = run(db, srv.base_url, "ifeval", limit=6)
    assert out.resumed and out.run_id == first.id and out.status == "completed"
    assert out.reused == stored_first and out.asked == 6 - stored_first
    second = [m for m, _ in state.asked[asked_first:]]
    by_prompt = {i.prompt: i.key for i in suite.items}
    assert sorted(by_prompt[m] for m in second) == sorted(keys[stored_first:])  # only the unanswered ones
    with db.connect() as conn:
        assert len(conn.execute(select(eval_answers.c.id)).all()) == 6
        row = eval_store.get_run(conn, out.run_id)
    assert row["resumes"] == 1 and row["status"] == "completed"
    # a completed run is not resumed: the same command starts a new run
    with run_scripted_server(lambda msg, seed: "- x") as srv2:
        again = run(db, srv2.base_url, "ifeval", limit=6)
    assert not again.resumed and again.run_id != out.run_id and again.asked == 6


def test_changed_model_file_marks_earlier_scores_stale(db: Engine) -> None:
    state = ScriptState()
    with run_scripted_server(lambda msg, seed: "- x", state) as srv:
        first = run(db, srv.base_url, "ifeval", limit=2)
        same = run(db, srv.base_url, "ifeval", limit=2)  # nothing changed: nothing stale
        with db.connect() as conn:
            assert all(s["stale_reason"] is None for s in eval_store.scores(conn))
        state.model_path = "/models/scripted-q8.gguf"
        third = run(db, srv.base_url, "ifeval", limit=2)
    with db.connect() as conn:
        rows = conn.execute(select(eval_scores.c.run_id, eval_scores.c.metric, eval_scores.c.stale_reason)).all()
    stale = {(r.run_id, r.metric): r.stale_reason for r in rows}
    for run_id in (first.run_id, same.run_id):
        for metric in ("prompt_strict", "instruction_strict"):
            assert stale[(run_id, metric)] == (
                "model file changed: /models/scripted-q4.gguf -> /models/scripted-q8.gguf")
    assert stale[(third.run_id, "prompt_strict")] is None
    assert third.stale_marked == 4
    # other sampling for the same metric supersedes it; a different suite's scores are untouched
    with run_scripted_server(lambda msg, seed: "- x", state) as srv:
        fourth = run(db, srv.base_url, "ifeval", limit=2, seed=7)
    with db.connect() as conn:
        fresh = [(s["run_id"], s["metric"]) for s in eval_store.scores(conn, include_stale=False)]
        reason = {s["run_id"]: s["stale_reason"] for s in eval_store.scores(conn)}
    assert sorted(fresh) == [(fourth.run_id, "instruction_strict"), (fourth.run_id, "prompt_strict")]
    assert reason[third.run_id] == "sampling changed"


def test_refused_without_confirmation_or_while_the_host_lease_is_held(db: Engine, db_url: str) -> None:
    suite = load_ifeval()
    with run_scripted_server(lambda msg, seed: "x") as srv:
        with pytest.raises(EvalRefused, match="takeover confirmation"):
            asyncio.run(run_eval(db, provider(srv.base_url), "scripted", suite, EvalOptions(suite="ifeval"),
                                 confirm_takeover=False))  # fmt: skip
        held = lease.acquire_blocking(psycopg_dsn(db_url), "scripted", lease.SCOPE_HOST, "someone", "bench run x",
                                      ttl_s=30, wait_s=0)  # fmt: skip
        try:
            with pytest.raises(EvalRefused, match=re.escape("bench run x")):
                asyncio.run(run_eval(db, provider(srv.base_url), "scripted", suite,
                                     EvalOptions(suite="ifeval", limit=1), confirm_takeover=True, slot_wait_s=0))
        finally:
            with psycopg.connect(psycopg_dsn(db_url)) as c:
                lease.release(c, "scripted", lease.SCOPE_HOST, "someone")
        assert srv.state.asked == []
    assert held is not None


def test_failed_requests_are_recorded_and_asked_again(db: Engine) -> None:
    suite = load_ifeval()
    by_prompt = {i.prompt: i.key for i in suite.items}
    broken = {"words-min-120"}

    def script(msg: str, seed: int) -> str:
        if by_prompt[msg] in broken:
            raise RuntimeError("upstream exploded")  # → HTTP 500
        return "- x"

    with run_scripted_server(script) as srv:
        first = run(db, srv.base_url, "ifeval", limit=3)
        assert first.status == "failed" and first.failed_requests == 1 and first.metrics == {}
        with db.connect() as conn:
            row = eval_store.get_run(conn, first.run_id)
            errors = [a["error"] for a in eval_store.stored_answers(conn, first.run_id) if a["error"]]
            assert eval_store.scores(conn) == []  # no score from an incomplete run
        assert row["stop_reason"].startswith("1 request(s) failed") and errors[0].startswith("HTTP 500")
        broken.clear()
        n = len(srv.state.asked)
        second = run(db, srv.base_url, "ifeval", limit=3)
        assert [by_prompt[m] for m, _ in srv.state.asked[n:]] == ["words-min-120"]
    assert second.resumed and second.run_id == first.run_id and second.status == "completed"
    assert second.asked == 1 and second.reused == 2
