"""The chat suite end to end against a scripted OpenAI-compatible server (as candidate and as judge) and the
real Postgres: multi-turn asking, one judgment per turn with reference-guided prompts for math/coding,
unparseable judgments stored as such (never a score), exact per-turn and per-category scores, the judge
identity stored and self-judging flagged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, select

from core.providers import Provider
from engines.evals import chat
from engines.evals.judge import PROMPT_VERSION
from engines.evals.options import EvalOptions
from engines.evals.runner import EvalRefused, run_eval
from tests.conftest import truncate_all
from tests.support.scripted_openai import run_scripted_server
from warehouse import eval_store, lease
from warehouse.db import psycopg_dsn
from warehouse.schema_evals import eval_answers, eval_items, eval_judgments

SUITE = chat.load_chat()
Q = {i.key: i for i in SUITE.items}
ITEMS = ("bc-writing-1", "bc-math-1", "bc-coding-1")
# what the judge says for (item, turn): parsed 8, 6, 9, 5.5; unparseable: no rating, two different ratings
JUDGE = {
    ("bc-writing-1", 1): "Clear and complete.\nRating: [[8]]",
    ("bc-writing-1", 2): "Bullets are fine. [[ 6 ]]",
    ("bc-math-1", 1): "Matches the reference. Rating: [[9]]",
    ("bc-math-1", 2): "The answer is good, I would give it a high mark.",
    ("bc-coding-1", 1): "At first [[4]], on reflection [[7]]",
    ("bc-coding-1", 2): "Works with key. Rating: [[5.5]]",
}


@pytest.fixture()
def db(engine: Engine) -> Iterator[Engine]:
    truncate_all(engine)
    yield engine


def _which(msg: str) -> str:
    return next(k for k in ITEMS if Q[k].payload["turns"][0] in msg)


def script(msg: str, seed: int) -> str:
    if "[[rating]]" in msg:
        return JUDGE[(_which(msg), 2 if "### User (turn 2)" in msg else 1)]
    for k in ITEMS:
        for t, q in enumerate(Q[k].payload["turns"], start=1):
            if q == msg:
                return f"reply {k} turn {t}"
    raise AssertionError(f"unexpected message {msg[:80]!r}")


def test_chat_suite_judged_per_turn_with_exact_scores(db: Engine) -> None:
    with run_scripted_server(script) as srv:
        p = Provider("scripted", "scripted", srv.base_url, kind="openai")
        judge = chat.judge_for(p, "judge-model")
        options = EvalOptions(suite="chat", items=",".join(ITEMS), judge="scripted/judge-model")
        out = asyncio.run(run_eval(db, p, "cand", SUITE, options, confirm_takeover=True, judge=judge))
        asked = list(srv.state.asked)
    assert out.status == "completed" and out.asked == 3 and out.failed_requests == 0
    # 8, 6, 9, 5.5 parsed; 2 of 6 unparseable
    assert out.metrics == pytest.approx({
        "judge_score": 28.5 / 4, "judge_unparseable": 2 / 6,
        "judge_score/turn1": (8 + 9) / 2, "judge_score/turn2": (6 + 5.5) / 2,
        "judge_score/writing": 7.0, "judge_score/math": 9.0, "judge_score/coding": 5.5,
    })  # fmt: skip
    assert len(asked) == 6 + 6  # two turns per item, one judgment per turn
    judge_prompts = [m for m, _ in asked if "[[rating]]" in m]
    math_t2 = next(m for m in judge_prompts if _which(m) == "bc-math-1" and "### User (turn 2)" in m)
    # the whole conversation, the candidate's first reply fed back, and the second turn's reference
    assert "### Assistant (turn 1)\nreply bc-math-1 turn 1" in math_t2
    assert "### Assistant (turn 2)\nreply bc-math-1 turn 2" in math_t2
    assert f"<<reference answer>>\n{Q['bc-math-1'].payload['reference'][1]}\n" in math_t2
    writing = [m for m in judge_prompts if _which(m) == "bc-writing-1"]
    assert writing and all("reference" not in m.lower() for m in writing)
    with db.connect() as conn:
        js = conn.execute(select(eval_judgments).order_by(eval_judgments.c.id)).mappings().all()
        answers = {r["item_id"]: r for r in conn.execute(select(eval_answers)).mappings().all()}
        run_row = eval_store.get_run(conn, out.run_id)
        scores = {r["metric"]: r for r in eval_store.scores(conn)}
        keys = dict(conn.execute(select(eval_items.c.id, eval_items.c.item_key)).tuples().all())
    assert len(js) == 6
    assert all(j["judge_provider_id"] == "scripted" and j["judge_model_id"] == "judge-model" for j in js)
    assert all(j["prompt_version"] == PROMPT_VERSION and not j["self_judged"] for j in js)
    assert all(j["sampling"] == {"temperature": 0.0, "top_p": 1.0, "seed": 1234, "max_tokens": 512} for j in js)
    unparsed = [j for j in js if not j["parsed"]]
    assert len(unparsed) == 2 and all(j["score"] is None and j["raw"] for j in unparsed)
    assert {j["verdict"] for j in unparsed} == {"turn 2: no [[rating]] in the judgment",
                                                 "turn 1: ambiguous: several different ratings [4.0, 7.0]"}
    by_key = {keys[i]: a for i, a in answers.items()}
    assert json.loads(by_key["bc-math-1"]["text"]) == ["reply bc-math-1 turn 1", "reply bc-math-1 turn 2"]
    assert {k: a["score"] for k, a in by_key.items()} == {"bc-writing-1": 7.0, "bc-math-1": 9.0, "bc-coding-1": 5.5}
    judge_id = f"scripted/judge-model@{PROMPT_VERSION}"
    assert run_row["judge"] == judge_id and scores["judge_score"]["judge"] == judge_id
    assert run_row["extra"]["judge_calibration"] == {
        "trusted": False, "reason": "never calibrated against human labels (eval calibrate-judge)"}


def test_self_judged_and_no_parse_means_no_score(db: Engine) -> None:
    def gibberish(msg: str, seed: int) -> str:
        return "zq[[ ]] lorem 7" if "[[rating]]" in msg else "xx yy"

    with run_scripted_server(gibberish) as srv:
        p = Provider("scripted", "scripted", srv.base_url, kind="openai")
        options = EvalOptions(suite="chat", limit=2, judge="scripted/cand")
        out = asyncio.run(run_eval(db, p, "cand", SUITE, options, confirm_takeover=True,
                                   judge=chat.judge_for(p, "cand")))  # fmt: skip
    assert out.status == "completed"
    assert out.metrics == {"judge_unparseable": 1.0}  # no judge_score at all: nothing parsed
    with db.connect() as conn:
        js = conn.execute(select(eval_judgments)).mappings().all()
        scores = conn.execute(select(eval_answers.c.score, eval_answers.c.passed)).all()
    assert len(js) == 4 and all(j["self_judged"] and not j["parsed"] and j["score"] is None for j in js)
    assert all(j["judge_model_file"] == "/models/scripted-q4.gguf" for j in js)  # the candidate's own file
    assert scores == [(None, None), (None, None)]  # a judged answer has a score (or none), no pass/fail


def test_chat_suite_needs_a_judge(db: Engine) -> None:
    options = EvalOptions(suite="chat")  # no --judge: the shells choose the default judge (test_default_judge)
    p = Provider("scripted", "scripted", "http://127.0.0.1:9", kind="openai")
    with pytest.raises(ValueError, match="give --judge"):
        asyncio.run(run_eval(db, p, "cand", SUITE, options, confirm_takeover=True))


def test_failed_judge_requests_leave_answers_unscored_and_the_next_run_judges_them(db: Engine) -> None:
    state = {"judge_down": True}

    def flaky(msg: str, seed: int) -> str:
        if "[[rating]]" in msg:
            if state["judge_down"]:
                raise RuntimeError("judge host down")  # -> HTTP 500
            return "[[6]]"
        return "an answer"

    with run_scripted_server(flaky) as srv:
        p = Provider("scripted", "scripted", srv.base_url, kind="openai")
        options = EvalOptions(suite="chat", limit=2, judge="scripted/judge")
        first = asyncio.run(run_eval(db, p, "cand", SUITE, options, confirm_takeover=True,
                                     judge=chat.judge_for(p, "judge")))  # fmt: skip
        with db.connect() as conn:
            assert conn.execute(select(eval_judgments.c.id)).all() == []
            assert conn.execute(select(eval_answers.c.scored_at)).scalars().all() == [None, None]
        state["judge_down"] = False
        asked_before = sum(1 for m, _ in srv.state.asked if "[[rating]]" not in m)
        second = asyncio.run(run_eval(db, p, "cand", SUITE, options, confirm_takeover=True,
                                      judge=chat.judge_for(p, "judge")))  # fmt: skip
        asked_after = sum(1 for m, _ in srv.state.asked if "[[rating]]" not in m)
    assert first.status == "failed" and first.failed_requests == 2 and first.metrics == {}
    assert second.status == "completed" and second.resumed and second.run_id == first.run_id
    assert second.asked == 0 and asked_after == asked_before  # the candidate is not asked again
    assert second.metrics["judge_score"] == 6.0 and second.metrics["judge_unparseable"] == 0.0


def test_judge_on_another_host_leased_elsewhere_refuses_the_run(db: Engine, db_url: str) -> None:
    with run_scripted_server(script) as srv:
        cand = Provider("scripted", "scripted", srv.base_url, kind="openai")
        other = Provider("judgehost", "judgehost", srv.base_url, kind="openai")
        lease.acquire_blocking(psycopg_dsn(db_url), "judgehost", lease.SCOPE_HOST, "someone", "bench run y",
                               ttl_s=30, wait_s=0)  # fmt: skip
        try:
            with pytest.raises(EvalRefused, match=r"^refusing to ask the judge on judgehost: .*bench run y"):
                asyncio.run(run_eval(db, cand, "cand", SUITE, EvalOptions(suite="chat", limit=1, judge="judgehost/j"),
                                     confirm_takeover=True, judge=chat.judge_for(other, "j"), slot_wait_s=0))
        finally:
            with psycopg.connect(psycopg_dsn(db_url)) as c:
                lease.release(c, "judgehost", lease.SCOPE_HOST, "someone")
        assert srv.state.asked == []
        with psycopg.connect(psycopg_dsn(db_url)) as c:  # and the candidate host's lease was given back
            assert c.execute("SELECT count(*) FROM leases").fetchone() == (0,)
