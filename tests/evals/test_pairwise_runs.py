"""Pairwise comparison of stored chat runs against a scripted server (three candidate models and a judge) and
the real Postgres: both orders asked and stored, a position-biased verdict counted as a tie, exact
Bradley–Terry ratings, and a second comparison reusing every stored verdict."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from cli.main import cli
from core.providers import Provider
from core.settings import get_settings
from engines.evals import chat
from engines.evals.options import EvalOptions
from engines.evals.pairwise import PairwiseResult, compare_runs
from engines.evals.runner import run_eval
from tests.conftest import truncate_all
from tests.evals.conftest import provider_yaml
from tests.support.scripted_openai import run_scripted_server
from warehouse import lease
from warehouse.db import psycopg_dsn
from warehouse.schema_evals import eval_judgments

RANK = {"GOOD": 3, "MID": 2, "BAD": 1}


@pytest.fixture()
def db(engine: Engine) -> Iterator[Engine]:
    truncate_all(engine)
    yield engine


def _who(block: str) -> str:
    return next(w for w in RANK if f"{w} reply" in block)


def test_three_models_compared_pairwise(db: Engine) -> None:
    current = {"model": "GOOD"}

    def script(msg: str, seed: int) -> str:
        if "[[rating]]" in msg:
            return "[[5]]"
        if "<<assistant A>>" in msg:
            a = _who(msg.split("<<assistant A>>")[1].split("<<end of assistant A>>")[0])
            b = _who(msg.split("<<assistant B>>")[1].split("<<end of assistant B>>")[0])
            if {a, b} == {"MID", "BAD"}:
                return "[[A>B]]"  # position bias between MID and BAD: flips with the order -> tie
            return "[[A>B]]" if RANK[a] > RANK[b] else "[[B>A]]"
        return f"{current['model']} reply"

    with run_scripted_server(script) as srv:
        p = Provider("sc", "sc", srv.base_url, kind="openai")
        judge = chat.judge_for(p, "judge")
        run_ids = []
        for m in ("GOOD", "MID", "BAD"):
            current["model"] = m
            out = asyncio.run(run_eval(db, p, m.lower(), chat.load_chat(),
                                       EvalOptions(suite="chat", limit=2, judge="sc/judge"),
                                       confirm_takeover=True, judge=judge))  # fmt: skip
            assert out.status == "completed"
            run_ids.append(out.run_id)
        before = len(srv.state.asked)

        async def go() -> PairwiseResult:
            async with httpx.AsyncClient(trust_env=False) as client:
                return await compare_runs(db, client, judge, run_ids, n_boot=50, l2=0.0)

        res = asyncio.run(go())
        asked_now = len(srv.state.asked) - before
        again = asyncio.run(go())
        assert len(srv.state.asked) - before == asked_now  # nothing asked the second time
    # 3 run pairs x 2 items x 2 turns x 2 orders
    assert res.asked == asked_now == 24 and res.reused == 0
    assert again.asked == 0 and again.reused == 24
    assert res.inconsistent == 4 and res.unparseable == 0
    assert sorted(res.comparisons) == sorted([("sc/good", "sc/mid", 0.75)] * 4 + [("sc/good", "sc/bad", 0.75)] * 4
                                             + [("sc/mid", "sc/bad", 0.5)] * 4)  # fmt: skip
    # Hand check: by symmetry mid = bad = t, good = g; good's 8 comparisons at 0.75 give sigma(g - t) = 3/4,
    # g - t = ln 3 = 190.85 Elo; centred: good 1000 + 2/3 * 190.85, mid = bad 1000 - 1/3 * 190.85.
    gap = 400 * math.log10(3)
    r = {x.model: x for x in res.ratings}
    assert r["sc/good"].rating == pytest.approx(1000 + 2 * gap / 3, abs=1e-6)
    assert r["sc/mid"].rating == pytest.approx(1000 - gap / 3, abs=1e-6)
    assert r["sc/bad"].rating == pytest.approx(1000 - gap / 3, abs=1e-6)
    assert [x.rating for x in again.ratings] == [x.rating for x in res.ratings]
    assert all(x.low <= x.rating <= x.high for x in res.ratings)
    with db.connect() as conn:
        pairs = conn.execute(select(eval_judgments).where(eval_judgments.c.other_answer_id.is_not(None))).mappings().all()
    assert len(pairs) == 24 and sum(j["swapped"] for j in pairs) == 12
    assert all(j["parsed"] and j["verdict"] in ("turn 1: [[A>B]]", "turn 2: [[A>B]]", "turn 1: [[B>A]]",
                                                "turn 2: [[B>A]]") for j in pairs)  # fmt: skip
    assert {j["score"] for j in pairs} == {1.0, -1.0}


def test_runs_that_cannot_be_compared(db: Engine) -> None:
    judge = chat.JudgeModel("sc", "judge", "http://127.0.0.1:9/v1/chat/completions")

    async def go(ids: list[int]) -> PairwiseResult:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await compare_runs(db, client, judge, ids)

    with pytest.raises(ValueError, match="at least two different runs"):
        asyncio.run(go([1, 1]))


def test_judge_host_leased_elsewhere_is_refused(db: Engine, db_url: str) -> None:
    judge = chat.JudgeModel("sc", "judge", "http://127.0.0.1:9/v1/chat/completions")
    lease.acquire_blocking(psycopg_dsn(db_url), "sc", lease.SCOPE_HOST, "someone", "bench run x", ttl_s=30, wait_s=0)
    try:

        async def go() -> PairwiseResult:
            async with httpx.AsyncClient(trust_env=False) as client:
                return await compare_runs(db, client, judge, [1, 2], lease_wait_s=0)

        with pytest.raises(ValueError, match=r"^refusing to ask the judge on sc: .*bench run x"):
            asyncio.run(go())
    finally:
        with psycopg.connect(psycopg_dsn(db_url)) as c:
            lease.release(c, "sc", lease.SCOPE_HOST, "someone")


def test_cli_pairwise_errors_are_one_line(engine: Engine, use_fleet: Callable[..., Path]) -> None:
    truncate_all(engine)
    use_fleet(provider_yaml("sc", "http://127.0.0.1:9"), default="sc")
    try:
        runner = CliRunner()
        no_judge = runner.invoke(cli, ["eval", "pairwise", "1", "2"])
        assert no_judge.exit_code == 2 and "Error: no --judge given, and no local model has a fresh score" in no_judge.output
        missing = runner.invoke(cli, ["eval", "pairwise", "1", "2", "--judge", "sc/j"])
        assert missing.exit_code == 2 and "Error: no eval run #1" in missing.output
        assert "Traceback" not in missing.output
    finally:
        get_settings.cache_clear()


def test_cli_pairwise_prints_the_leaderboard(engine: Engine, use_fleet: Callable[..., Path]) -> None:
    truncate_all(engine)
    current = {"model": "GOOD"}

    def script(msg: str, seed: int) -> str:
        if "[[rating]]" in msg:
            return "[[5]]"
        if "<<assistant A>>" in msg:
            a = _who(msg.split("<<assistant A>>")[1].split("<<end of assistant A>>")[0])
            return "[[A>>B]]" if a == "GOOD" else "[[B>>A]]"
        return f"{current['model']} reply"

    with run_scripted_server(script) as srv:
        use_fleet(provider_yaml("sc", srv.base_url), default="sc")
        try:
            runner = CliRunner()
            for m in ("GOOD", "BAD"):
                current["model"] = m
                r = runner.invoke(cli, ["eval", "run", f"sc/{m.lower()}", "--suite", "chat", "--judge", "sc/judge",
                                        "--limit", "1", "--yes-take-over"])  # fmt: skip
                assert r.exit_code == 0, r.output
            out = runner.invoke(cli, ["eval", "pairwise", "1", "2", "--judge", "sc/judge"])
        finally:
            get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "2 comparisons by sc/judge@judge-1 (4 asked, 0 reused; 0 moved with the order = ties" in out.output
    lines = out.output.splitlines()
    assert lines.index(next(ln for ln in lines if "sc/good" in ln)) < lines.index(next(ln for ln in lines if "sc/bad" in ln))
