"""The chat suite against real llama.cpp on the generated tiny model, as the candidate AND as its own judge:
its text is gibberish, so this asserts the pipeline — every turn asked and judged, the judge's gibberish
stored raw as unparseable (never a score), the judgment flagged as self-judged, nothing crashes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from core.providers import Provider
from engines.evals import chat
from engines.evals.options import EvalOptions
from engines.evals.runner import run_eval
from tests.conftest import truncate_all
from tests.support.llamaserver import require_llama_server, run_llama_server
from tests.support.tinymodel import write_tiny_gguf
from warehouse.schema_evals import eval_answers, eval_judgments

pytestmark = [pytest.mark.llama_server]


@pytest.fixture()
def db(engine: Engine) -> Iterator[Engine]:
    truncate_all(engine)
    yield engine


def test_tiny_model_judging_itself(db: Engine, tmp_path: Path) -> None:
    binary = require_llama_server()
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=3)
    with run_llama_server(model, parallel=2, ctx=8192, binary=binary, extra_args=("--slots",)) as base:
        p = Provider("direct", "direct", base, kind="openai")
        judge = chat.judge_for(p, "tiny")
        judge = chat.JudgeModel(judge.provider_id, judge.model_id, judge.url, judge.headers,
                                {**judge.sampling, "max_tokens": 24})  # fmt: skip
        out = asyncio.run(run_eval(db, p, "tiny", chat.load_chat(),
                                   EvalOptions(suite="chat", limit=3, max_tokens=24, judge="direct/tiny"),
                                   confirm_takeover=True, judge=judge))  # fmt: skip
    assert out.status == "completed" and out.asked == 3 and out.failed_requests == 0
    assert out.model_file == str(model)
    with db.connect() as conn:
        answers = conn.execute(select(eval_answers.c.text, eval_answers.c.score, eval_answers.c.completion_tokens)).all()
        js = conn.execute(select(eval_judgments)).mappings().all()
    assert len(answers) == 3 and all(len(json.loads(a.text)) == 2 and a.completion_tokens == 48 for a in answers)
    assert len(js) == 6 and all(j["raw"] is not None and j["self_judged"] for j in js)
    assert all(j["judge_model_file"] == str(model) for j in js)
    # gibberish: whatever did not parse has no score, and the run's metrics say how much did not parse
    assert all(j["score"] is None for j in js if not j["parsed"])
    unparsed = sum(1 for j in js if not j["parsed"])
    assert out.metrics["judge_unparseable"] == pytest.approx(unparsed / 6)
    assert unparsed == 6 and "judge_score" not in out.metrics
    assert all(a.score is None for a in answers)
