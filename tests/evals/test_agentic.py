"""Agentic coding tasks: every reference solution passes its tests in the real bubblewrap sandbox (and the
given starter code fails them), and the multi-turn loop against the scripted OpenAI-compatible server gives
exact solved@1 / solved@N (wrong at turn 1 and right at turn 2, never right, an endless loop fed back)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from engines.evals.agentic import (
    CATEGORIES,
    Task,
    agentic_metrics,
    check_job,
    load_tasks,
    parse_sections,
    parse_tasks,
    pool_runner,
    solve,
    solve_all,
)
from engines.evals.completions import Answer, ModelClient
from engines.evals.sandbox import BubblewrapSandbox, SandboxPool
from tests.support.scripted_openai import run_scripted_server

BASE_UID = 2_100_320_000  # away from the other eval tests' uids

TASKS = load_tasks()
BY_KEY = {t.key: t for t in TASKS}
REFERENCE = {
    h[0]: s["solution"]
    for h, s in parse_sections((Path(__file__).parent / "agentic_reference.txt").read_text(encoding="utf-8"))
}


@pytest.fixture()
def sandbox() -> BubblewrapSandbox:
    sb = BubblewrapSandbox(base_uid=BASE_UID)
    sb.check()
    return sb


def test_the_task_set_is_graded_and_complete() -> None:
    assert len(TASKS) == 25
    assert {t.category for t in TASKS} == set(CATEGORIES)
    assert sorted({t.difficulty for t in TASKS}) == [1, 2, 3, 4]
    assert set(REFERENCE) == set(BY_KEY)
    assert all(t.starter for t in TASKS if t.category in ("fix", "feature"))
    for t in TASKS:  # the model sees the task, the tests and the starter, never the reference
        msg = t.first_message()
        assert t.tests in msg and t.prompt in msg and (t.starter in msg)
        assert REFERENCE[t.key].strip() not in msg


def test_references_pass_and_starters_fail_in_the_sandbox(sandbox: BubblewrapSandbox) -> None:
    jobs = [check_job(t, REFERENCE[t.key]) for t in TASKS] + [check_job(t, t.starter) for t in TASKS]
    with SandboxPool(sandbox, workers=2) as pool:
        outcomes = pool.run_all(jobs)
    ref, start = outcomes[: len(TASKS)], outcomes[len(TASKS) :]
    failing_refs = [
        (t.key, o.stdout, o.stderr[-300:]) for t, o in zip(TASKS, ref, strict=True) if not o.passed
    ]
    assert failing_refs == []
    passing_starters = [t.key for t, o in zip(TASKS, start, strict=True) if o.passed]
    assert passing_starters == []
    # the binary search starter never ends on some inputs: the wall clock stops it
    bs = start[TASKS.index(BY_KEY["fix-binary-search"])]
    assert bs.killed_reason == "wall_clock"


def test_parse_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match="bad task head"):
        parse_tasks("=== k | poetry | 1\n--- prompt\nx\n--- tests\ny\n")
    with pytest.raises(ValueError, match="needs a prompt and tests"):
        parse_tasks("=== k | string | 1\n--- prompt\nx\n")
    with pytest.raises(ValueError, match="outside a section"):
        parse_tasks("stray text\n")


def fence(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\n"


def test_scripted_model_exact_turns(sandbox: BubblewrapSandbox) -> None:
    """rev: wrong, then right (turn 2); avg: right at once; bal: never right; search: an endless loop, then
    right. 3 turns at most: solved@1 = 1/4, solved@3 = 3/4, mean turns of the solved = 5/3."""
    plan = {
        "str-reverse-words": ["def reverse_words(s):\n    return s\n", REFERENCE["str-reverse-words"]],
        "fix-average": [REFERENCE["fix-average"]],
        "alg-balanced": ["def is_balanced(s):\n    return True\n"] * 3,
        "fix-binary-search": [
            "def find(xs, t):\n    while True:\n        pass\n",
            REFERENCE["fix-binary-search"],
        ],
    }
    tasks = [BY_KEY[k] for k in plan]

    def script(msg: str, seed: int) -> str:
        key = msg.split("]", 1)[0].removeprefix("[task ")
        turn = int(msg.split(" turn ", 1)[1].split(":", 1)[0]) if " turn " in msg.split("\n", 1)[0] else 1
        return fence(plan[key][turn - 1])

    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 256}
    with run_scripted_server(script) as srv, SandboxPool(sandbox, workers=2) as pool:

        async def go() -> list:  # type: ignore[type-arg]
            async with httpx.AsyncClient(trust_env=False) as http:
                chat = ModelClient(http, srv.base_url + "/v1/chat/completions", "m", sampling, 1234, 30.0)
                return await solve_all(tasks, chat, pool_runner(pool), max_turns=3, parallel=2, wall_s=2.0)

        results = asyncio.run(go())
    assert [r.solved_at for r in results] == [2, 1, None, 2]
    assert [len(r.turns) for r in results] == [2, 1, 3, 2]
    assert agentic_metrics(results, 3) == {
        "solved@1": 0.25, "solved@3": 0.75, "mean_turns_solved": 5 / 3, "solved@3:algorithm": 0.0,
        "solved@3:fix": 1.0, "solved@3:string": 1.0,
    }  # fmt: skip
    assert len(srv.state.asked) == 8
    feedback = [m for m, _ in srv.state.asked if "turn 2: the tests failed" in m]
    rev = next(m for m in feedback if m.startswith("[task str-reverse-words]"))
    assert "FAILED test_basic: AssertionError" in rev and "0 passed, 3 failed" in rev
    search = next(m for m in feedback if m.startswith("[task fix-binary-search]"))
    assert "the run was stopped (wall_clock" in search
    assert results[3].turns[0].killed_reason == "wall_clock"


def test_the_conversation_carries_every_turn() -> None:
    """The second request holds the task, the first answer and the failures (a fake chat and runner, behind
    the same interfaces, record what they were given)."""
    from engines.evals.sandbox import SandboxJob, SandboxOutcome

    seen: list[list[dict[str, str]]] = []

    async def chat(messages: list[dict[str, str]]) -> Answer:
        seen.append([dict(m) for m in messages])
        if len(seen) == 3:
            return Answer(None, None, None, None, 1.0, None, "HTTP 500: boom")
        return Answer(fence("x = 1\n"), "stop", None, None, 1.0, None, None)

    async def run(job: SandboxJob) -> SandboxOutcome:
        return SandboxOutcome(1, None, False, None, "FAILED test_a: AssertionError: no\n", "", False, False,
                              0, 0, 0.01, "fake")  # fmt: skip

    task = Task("t", "string", 1, "Do it.", "def test_a():\n    assert False\n")
    r = asyncio.run(solve(task, chat, run, max_turns=5))
    assert [m["role"] for m in seen[1]] == ["user", "assistant", "user"]
    assert seen[1][1]["content"] == fence("x = 1\n") and "FAILED test_a" in seen[1][2]["content"]
    assert len(seen[2]) == 5
    # the request of turn 3 failed: the loop stops there, the result says so and nothing counts as solved
    assert len(r.turns) == 3 and r.turns[2].error == "HTTP 500: boom" and r.request_failed
    assert r.solved_at is None and agentic_metrics([r], 5)["solved@5"] == 0.0
