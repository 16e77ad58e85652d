"""The Evals cockpit's reads on runs the real engine stored (ifeval against the scripted OpenAI-compatible
server): the leaderboard's estimate is the engine's own score, a swapped model file makes the earlier score
stale, and the item that stopped passing is the regression — on the page, in the queries and in the digest rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from core.providers import Provider
from engines.evals.options import EvalOptions
from engines.evals.runner import EvalOutcome, run_eval
from engines.evals.suites import load_ifeval
from tests.support.scripted_openai import ScriptState, run_scripted_server
from warehouse.queries import evals as q

GOOD = {
    "bullets-4": "- a\n- b\n- c\n- d",  # pass
    "json-person": '{"name": "Ada", "age": 36, "city": "London"}',  # pass
    "ends-with": "Recursion calls itself. Is there anything else I can help with?",  # pass
    "uppercase": "Careful, WET FLOOR",  # fail
    "combo-bullets-words": "- kiwi\n- apple\n- fig",  # fail (a forbidden word)
}


def _run(db: Engine, base: str) -> EvalOutcome:
    suite = load_ifeval()
    options = EvalOptions(suite="ifeval", items=",".join(GOOD))
    return asyncio.run(run_eval(db, Provider("scripted", "scripted", base, kind="openai"), "scripted", suite, options,
                                confirm_takeover=True))  # fmt: skip


def test_engine_runs_leaderboard_staleness_and_regression(db: Engine) -> None:
    by_prompt = {i.prompt: i.key for i in load_ifeval().items}
    answers = dict(GOOD)
    state = ScriptState()
    with run_scripted_server(lambda msg, seed: answers[by_prompt[msg]], state) as srv:
        first = _run(db, srv.base_url)
        assert first.metrics["prompt_strict"] == pytest.approx(3 / 5)
        board = q.leaderboard(db, "ifeval")
        assert board.select("label", "run_id", "score", "items", "stale").rows() == [
            ("scripted/scripted", first.run_id, pytest.approx(3 / 5), 5, False)]  # fmt: skip
        # the estimate from the stored answers is the engine's score; 3 of 5: Binomial(5, 0.6)/5 percentiles
        units = q.unit_scores(db, [first.run_id])
        assert q.interval(units) == (pytest.approx(0.6), 0.2, 1.0)

        state.model_path = "/models/scripted-q8.gguf"  # another quantization of the model
        answers["bullets-4"] = "- a\n- b"  # now fails
        second = _run(db, srv.base_url)
    assert second.run_id != first.run_id and second.metrics["prompt_strict"] == pytest.approx(2 / 5)

    board = q.leaderboard(db, "ifeval")
    assert board.select("run_id", "score", "stale", "model_file").rows() == [
        (second.run_id, pytest.approx(2 / 5), False, "scripted-q8.gguf")]  # fmt: skip
    cmp = q.compare_runs(db, first.run_id, second.run_id)
    assert cmp.select("item_key", "change").rows()[0] == ("bullets-4", "regressed")
    assert cmp["change"].to_list()[1:] == ["same"] * 4

    now = datetime.now(UTC)
    rows = q.period_scores(db, now - timedelta(hours=1), now + timedelta(minutes=1))
    assert rows.select("run_id", "value", "prev_run_id", "delta", "items_regressed").rows() == [
        (first.run_id, pytest.approx(0.6), None, None, None),
        (second.run_id, pytest.approx(0.4), first.run_id, pytest.approx(-0.2), 1),
    ]
    reason = rows["stale_reason"].to_list()[0]
    assert reason == "model file changed: /models/scripted-q4.gguf -> /models/scripted-q8.gguf"
    assert q.stale_headlines(db).height == 0  # the newest score per model is fresh
