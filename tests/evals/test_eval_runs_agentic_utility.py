"""The agentic and utility suites as stored eval runs (the real Postgres, the real bubblewrap sandbox, the
scripted OpenAI-compatible server): exact solved@1/solved@3 and format scores, every turn stored with the
answer, the last sandbox run stored, and a stopped run continued without asking a stored task again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from core.providers import Provider
from engines.evals import chat
from engines.evals.agentic import parse_sections
from engines.evals.options import EvalOptions
from engines.evals.runner import run_eval
from engines.evals.sandbox import BubblewrapSandbox
from engines.evals.suites import load_agentic, load_suite, load_utility
from tests.conftest import truncate_all
from tests.evals.conftest import provider_yaml
from tests.evals.test_utility import ANSWERS as UTILITY_ANSWERS
from tests.support.scripted_openai import ScriptState, run_scripted_server
from warehouse import eval_store
from warehouse.schema_evals import eval_answers, eval_judgments, eval_sandbox_outcomes

BASE_UID = 2_100_330_000
REFERENCE = {
    h[0]: s["solution"]
    for h, s in parse_sections((Path(__file__).parent / "agentic_reference.txt").read_text(encoding="utf-8"))
}


@pytest.fixture()
def db(engine: Engine) -> Iterator[Engine]:
    truncate_all(engine)
    yield engine


def provider(base_url: str) -> Provider:
    return Provider("scripted", "scripted", base_url, kind="openai")


def fence(code: str) -> str:
    return f"```python\n{code}```"


def test_agentic_run_exact_and_stored(db: Engine) -> None:
    """rev: wrong then right; avg: right at once; bal: wrong 3 times -> solved@1 1/3, solved@3 2/3."""
    plan = {
        "str-reverse-words": ["def reverse_words(s):\n    return s\n", REFERENCE["str-reverse-words"]],
        "fix-average": [REFERENCE["fix-average"]],
        "alg-balanced": ["def is_balanced(s):\n    return True\n"] * 3,
    }

    def script(msg: str, seed: int) -> str:
        key = msg.split("]", 1)[0].removeprefix("[task ")
        turn = int(msg.split(" turn ", 1)[1].split(":", 1)[0]) if " turn " in msg.split("\n", 1)[0] else 1
        return fence(plan[key][turn - 1])

    sandbox = BubblewrapSandbox(base_uid=BASE_UID)
    sandbox.check()
    opts = EvalOptions(suite="agentic", items=",".join(plan), sandbox_wall_s=3.0)
    state = ScriptState(total_slots=1, delay_s=0.15)  # one task at a time, in order

    async def stop_after_first() -> None:
        task = asyncio.create_task(run_eval(db, provider(srv.base_url), "scripted", load_agentic(), opts,
                                            confirm_takeover=True, sandbox=sandbox))  # fmt: skip
        while True:
            with db.connect() as conn:
                if conn.execute(select(eval_answers.c.id).where(eval_answers.c.scored_at.is_not(None))).all():
                    break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with run_scripted_server(script, state) as srv:
        asyncio.run(stop_after_first())
        first_asks = len(state.asked)
        out = asyncio.run(run_eval(db, provider(srv.base_url), "scripted", load_agentic(), opts,
                                   confirm_takeover=True, sandbox=sandbox))  # fmt: skip
    assert out.resumed and out.status == "completed" and out.reused == 1 and out.failed_requests == 0
    # the stored conversation (2 turns) is not asked again: 1 + 3 turns for the other two tasks
    assert out.asked == 4 and not any("[task str-reverse-words]" in m for m, _ in state.asked[first_asks:])
    assert out.metrics == {"solved@1": pytest.approx(1 / 3), "solved@3": pytest.approx(2 / 3),
                           "mean_turns_solved": 1.5, "solved@3:algorithm": 0.0, "solved@3:fix": 1.0,
                           "solved@3:string": 1.0}  # fmt: skip
    with db.connect() as conn:
        rows = conn.execute(select(eval_answers.c.text, eval_answers.c.passed, eval_answers.c.detail,
                                   eval_answers.c.prompt_tokens)).all()  # fmt: skip
        boxes = conn.execute(select(eval_sandbox_outcomes.c.exit_code, eval_sandbox_outcomes.c.stdout)).all()
        scores = {r["metric"]: r["value"] for r in eval_store.scores(conn)}
    by_task = {r.detail["task"]: r for r in rows}
    assert by_task["str-reverse-words"].detail["solved_at"] == 2 and by_task["str-reverse-words"].passed
    assert [t["passed"] for t in by_task["str-reverse-words"].detail["turns"]] == [False, True]
    assert "FAILED test_basic" in by_task["str-reverse-words"].detail["turns"][0]["output"]
    assert (
        by_task["alg-balanced"].detail["solved_at"] is None
        and len(by_task["alg-balanced"].detail["turns"]) == 3
    )
    assert by_task["str-reverse-words"].text == fence(REFERENCE["str-reverse-words"])
    assert len(boxes) == 3 and sorted(b.exit_code for b in boxes) == [0, 0, 1]
    assert scores["solved@3"] == pytest.approx(2 / 3)


def test_utility_run_exact(db: Engine) -> None:
    suite = load_utility()
    by_prompt = {i.prompt: UTILITY_ANSWERS[i.key] for i in suite.items}
    with run_scripted_server(lambda msg, seed: by_prompt[msg]) as srv:
        out = asyncio.run(run_eval(db, provider(srv.base_url), "scripted", suite, EvalOptions(suite="utility"),
                                   confirm_takeover=True))  # fmt: skip
    assert out.status == "completed" and out.asked == 12
    assert out.metrics["title_pass"] == pytest.approx(2 / 6) and out.metrics["summary_pass"] == pytest.approx(
        4 / 6
    )
    assert out.metrics["format_pass"] == 0.5 and out.metrics["check_pass:language_kept"] == pytest.approx(
        10 / 12
    )


def test_utility_run_with_the_judge_rubric_exact(db: Engine) -> None:
    """Format checks as above plus the judge's rubric: titles rated 8 (the 14-word Spanish one 3), summaries 6,
    one reply that does not parse ("Un jardin."). rubric_score/title = (5 * 8 + 3) / 6, /summary = 6 over the 5
    parsed, rubric_score = 73 / 11, rubric_unparseable = 1 / 12. The first run's judge is down: every answer
    stays unscored and the run fails; the same run continued asks only the judge."""
    suite = load_utility()
    by_prompt = {i.prompt: UTILITY_ANSWERS[i.key] for i in suite.items}
    judge_down = {"yes": True}

    def script(msg: str, seed: int) -> str:
        if "<<source text>>" not in msg:
            return by_prompt[msg]
        if judge_down["yes"]:
            raise RuntimeError("judge host down")  # -> HTTP 500
        if "<<summary>>\nUn jardin.\n" in msg:
            return "Too thin to keep any main point. Three out of ten."
        if "<<title>>\nSequía:" in msg:
            return "Accurate but it reads as a sentence.\nRating: [[3]]"
        return "Names the main point.\nRating: [[8]]" if "<<title>>" in msg else "Faithful.\nRating: [[ 6 ]]"

    with run_scripted_server(script) as srv:
        p = provider(srv.base_url)
        opts = EvalOptions(suite="utility", judge="scripted/judge")
        first = asyncio.run(run_eval(db, p, "scripted", suite, opts, confirm_takeover=True,
                                     judge=chat.judge_for(p, "judge")))  # fmt: skip
        judge_down["yes"] = False
        second = asyncio.run(run_eval(db, p, "scripted", suite, opts, confirm_takeover=True,
                                      judge=chat.judge_for(p, "judge")))  # fmt: skip
        asked = srv.state.asked
    assert first.status == "failed" and first.failed_requests == 12 and first.metrics == {}
    assert second.resumed and second.run_id == first.run_id and second.asked == 0
    assert sum(1 for m, _ in asked if "<<source text>>" not in m) == 12  # the candidate asked once per item
    assert second.status == "completed"
    m = second.metrics
    assert m["format_pass"] == 0.5 and m["title_pass"] == pytest.approx(2 / 6)  # the format checks unchanged
    assert m["rubric_score/title"] == pytest.approx(43 / 6) and m["rubric_score/summary"] == 6.0
    assert m["rubric_score"] == pytest.approx(73 / 11) and m["rubric_unparseable"] == pytest.approx(1 / 12)
    solar = next(msg for msg, _ in asked if "<<title>>\nSolar Panels for Every Public School\n" in msg)
    assert suite.items[0].payload["text"] in solar and "at most 8 words" in solar
    with db.connect() as conn:
        js = conn.execute(select(eval_judgments).order_by(eval_judgments.c.id)).mappings().all()
        run = eval_store.get_run(conn, second.run_id)
        scores = {r["metric"]: r["judge"] for r in eval_store.scores(conn)}
    assert run["judge"] == "scripted/judge@util-rubric-1" and set(scores.values()) == {"scripted/judge@util-rubric-1"}
    assert len(js) == 12 and {j["prompt_version"] for j in js} == {"util-rubric-1"}
    assert not any(j["self_judged"] for j in js)
    bad = [j for j in js if not j["parsed"]]
    assert len(bad) == 1 and bad[0]["score"] is None and bad[0]["raw"].endswith("Three out of ten.")
    assert bad[0]["verdict"] == "rubric: no [[rating]] in the judgment"
    assert sorted(j["score"] for j in js if j["parsed"]) == [3.0] + [6.0] * 5 + [8.0] * 5


def test_needle_run_on_the_servers_window_exact(db: Engine) -> None:
    """/props says a 2000-token slot: 16 answer tokens and 64 for the template leave 1920; lengths 240, 480,
    960, 1440, 1920 tokens (words, for the scripted server's /tokenize), 5 depths + one 3-needle cell each.
    The scripted model reads only the first 1200 words: every needle up to 960 is found; at 1440 the needle at
    depth 1 (word ~1416) is missed and the 3 spread ones (~263, 691, 1161) are found -> 5/6; at 1920 depths
    0.75 and 1 are missed and 2 of 3 spread ones found -> (3 + 2/3) / 6 = 11/18. Overall (18 + 5 + 11/3) / 30
    = 8/9; the multi-needle cells (1 + 1 + 1 + 1 + 2/3) / 5 = 14/15."""
    from tests.evals.test_needle import short_memory

    state = ScriptState(n_ctx=2000)
    opts = EvalOptions(suite="needle", max_tokens=16)
    with run_scripted_server(short_memory, state) as srv:
        out = asyncio.run(run_eval(db, provider(srv.base_url), "scripted", load_suite("needle"), opts,
                                   confirm_takeover=True))  # fmt: skip
    assert out.status == "completed" and out.asked == 30 and out.failed_requests == 0
    assert out.metrics == {
        "accuracy": pytest.approx(8 / 9), "accuracy@0.125": 1.0, "accuracy@0.25": 1.0, "accuracy@0.5": 1.0,
        "accuracy@0.75": pytest.approx(5 / 6), "accuracy@1": pytest.approx(11 / 18),
        "multi_accuracy": pytest.approx(14 / 15),
    }  # fmt: skip
    assert max(len(m.split()) for m, _ in state.asked) <= 1920
    with db.connect() as conn:
        rows = conn.execute(select(eval_answers.c.detail, eval_answers.c.prompt_tokens)).all()
    missed = sorted((r.detail["target_tokens"], r.detail["depth"]) for r in rows if r.detail["found"] == 0)
    assert missed == [(1440, 1.0), (1920, 0.75), (1920, 1.0)]
    assert all(r.prompt_tokens == r.detail["prompt_tokens"] for r in rows)


def test_needle_run_needs_the_real_window(db: Engine) -> None:
    with run_scripted_server(lambda m, s: "1") as srv:  # its /props has no n_ctx
        with pytest.raises(ValueError, match="does not say n_ctx"):
            asyncio.run(run_eval(db, provider(srv.base_url), "scripted", load_suite("needle"),
                                 EvalOptions(suite="needle"), confirm_takeover=True))  # fmt: skip


def test_cli_needle_run_and_its_one_line_error(engine: Engine, use_fleet: Callable[..., Path]) -> None:
    from click.testing import CliRunner

    from cli.main import cli
    from core.settings import get_settings
    from tests.evals.test_needle import short_memory

    truncate_all(engine)
    state = ScriptState(total_slots=1)
    with run_scripted_server(short_memory, state) as srv:
        use_fleet(provider_yaml("sc", srv.base_url), default="sc")
        try:
            runner = CliRunner()
            args = [
                "eval",
                "run",
                "sc/scripted",
                "--suite",
                "needle",
                "--max-tokens",
                "16",
                "--yes-take-over",
            ]
            bad = runner.invoke(cli, args)  # the server does not say its window yet
            assert bad.exit_code == 2 and "Traceback" not in bad.output
            assert "Error: the needle suite needs scripted's context window" in bad.output
            state.n_ctx = 2000
            ok = runner.invoke(cli, args)
        finally:
            get_settings.cache_clear()
    assert ok.exit_code == 0, ok.output
    assert "completed, 30 asked" in ok.output and "accuracy: 0.889" in ok.output
    assert "accuracy@1: 0.611" in ok.output and "multi_accuracy: 0.933" in ok.output


@pytest.mark.llama_server
def test_real_llama_server_agentic_and_utility_gibberish(db: Engine, tmp_path: Path) -> None:
    """The tiny model's answers are gibberish: each agentic task takes all 3 turns and fails (the failures were
    fed back), its sandbox runs are stored; utility answers are checked and rated by the tiny model itself as the
    rubric judge (unparseable ratings stored as such); nothing crashes."""
    from tests.support.llamaserver import require_llama_server, run_llama_server
    from tests.support.tinymodel import write_tiny_gguf

    binary = require_llama_server()
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=2)
    sandbox = BubblewrapSandbox(base_uid=BASE_UID)
    sandbox.check()
    with run_llama_server(model, parallel=2, ctx=8192, binary=binary, extra_args=("--slots",)) as base:
        p = Provider("direct", "direct", base, kind="openai")
        ag = asyncio.run(run_eval(db, p, "tiny", load_agentic(), EvalOptions(suite="agentic", limit=2, max_tokens=24),
                                  confirm_takeover=True, sandbox=sandbox))  # fmt: skip
        ut = asyncio.run(run_eval(db, p, "tiny", load_utility(), EvalOptions(suite="utility", limit=3, max_tokens=24,
                                                                            judge="direct/tiny"),
                                  confirm_takeover=True, judge=chat.judge_for(p, "tiny")))  # fmt: skip
    assert ag.status == "completed" and ag.asked == 6 and ag.failed_requests == 0
    assert ag.metrics["solved@1"] == 0.0 and ag.metrics["solved@3"] == 0.0
    assert ut.status == "completed" and ut.asked == 3 and "format_pass" in ut.metrics
    with db.connect() as conn:
        rows = conn.execute(select(eval_answers.c.run_id, eval_answers.c.passed, eval_answers.c.detail)).all()
        boxes = conn.execute(select(eval_sandbox_outcomes.c.exit_code)).all()
    agentic_rows = [r for r in rows if r.run_id == ag.run_id]
    assert len(agentic_rows) == 2 and all(
        r.passed is False and len(r.detail["turns"]) == 3 for r in agentic_rows
    )
    assert len(boxes) == 2 and all(b.exit_code not in (0, None) for b in boxes)
    # the tiny model as its own rubric judge: every judgment stored, flagged, and unparseable unless it wrote [[n]]
    with db.connect() as conn:
        js = conn.execute(select(eval_judgments.c.raw, eval_judgments.c.parsed, eval_judgments.c.score,
                                 eval_judgments.c.self_judged)).all()  # fmt: skip
    judged = [r for r in rows if r.run_id == ut.run_id and r.detail.get("rubric")]
    assert len(js) == len(judged) and all(j.self_judged and j.raw is not None for j in js)
    assert all((j.score is not None) == j.parsed for j in js)
    assert ut.metrics["rubric_unparseable"] == sum(not j.parsed for j in js) / len(js)


def test_agentic_answer_stored_without_verdict_is_asked_again(db: Engine) -> None:
    """A stop between storing a conversation's answer and its verdict: the resumed run asks that task again
    (its turns are not stored, so it cannot be re-scored) and keeps the other task's stored verdict."""
    from sqlalchemy import delete, update

    from warehouse.schema_evals import eval_runs

    plan = {k: REFERENCE[k] for k in ("fix-average", "str-reverse-words")}

    def script(msg: str, seed: int) -> str:
        return fence(plan[msg.split("]", 1)[0].removeprefix("[task ")])

    sandbox = BubblewrapSandbox(base_uid=BASE_UID)
    sandbox.check()
    opts = EvalOptions(suite="agentic", items=",".join(plan), sandbox_wall_s=3.0)
    with run_scripted_server(script) as srv:
        first = asyncio.run(run_eval(db, provider(srv.base_url), "scripted", load_agentic(), opts,
                                     confirm_takeover=True, sandbox=sandbox))  # fmt: skip
        with db.begin() as conn:  # as if the run had stopped right after storing fix-average's answer
            conn.execute(update(eval_answers).where(eval_answers.c.text == fence(REFERENCE["fix-average"]))
                         .values(scored_at=None, passed=None, score=None, detail=None))  # fmt: skip
            conn.execute(delete(eval_sandbox_outcomes))
            conn.execute(update(eval_runs).where(eval_runs.c.id == first.run_id).values(status="cancelled"))
        out = asyncio.run(run_eval(db, provider(srv.base_url), "scripted", load_agentic(), opts,
                                   confirm_takeover=True, sandbox=sandbox))  # fmt: skip
        again = [m for m, _ in srv.state.asked[2:]]
    assert out.resumed and out.run_id == first.run_id and out.reused == 1 and out.asked == 1
    assert len(again) == 1 and again[0].startswith("[task fix-average]")
    assert out.status == "completed" and out.metrics["solved@1"] == 1.0
    with db.connect() as conn:
        rows = conn.execute(select(eval_answers.c.passed, eval_answers.c.detail)).all()
    assert len(rows) == 2 and all(r.passed and r.detail["solved_at"] == 1 for r in rows)
