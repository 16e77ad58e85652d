"""Agentic coding tasks: the model gets a task and its test file, answers with code, the sandbox runs the
tests, the failures are fed back, up to ``max_turns`` turns. Reported: solved at turn 1 and solved within N.

The tasks are the project's own (``engines/evals/data/agentic_tasks.txt``), of graded difficulty (1 = a short
string/parsing function … 4 = a feature added to a small module) in four categories: ``string``,
``algorithm``, ``fix`` (a given buggy function) and ``feature`` (a given module to extend). Their reference
solutions are not package data: they live with the tests (``tests/evals/agentic_reference.txt``) and are
never shown to a model.

File format (one file, sections): ``=== <key> | <category> | <difficulty>`` starts a task; ``--- prompt``,
``--- starter`` (optional: code given to the model) and ``--- tests`` (the test file, which imports from
``solution``) follow. The sandbox runs ``python3 run_tests.py``: every ``test_*`` function of the test file,
a one-line failure per failed test, exit 0 only when all pass.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engines.evals.completions import Answer
from engines.evals.sandbox import SandboxJob, SandboxLimits, SandboxOutcome, SandboxPool
from engines.evals.scoring import extract_code

DEFAULT_MAX_TURNS = 3
FEEDBACK_CAP = 2000  # characters of test output fed back to the model per turn
CATEGORIES = ("string", "algorithm", "fix", "feature")

PROMPT_TEMPLATE = (
    "[task {key}]\n{prompt}\n\n{starter}The tests below are in `test_solution.py` and import your code from "
    "`solution.py`:\n\n```python\n{tests}```\n\nAnswer with the complete `solution.py` in one ```python code "
    "block."
)
STARTER_TEMPLATE = "The current `solution.py`:\n\n```python\n{starter}```\n\n"
FEEDBACK_TEMPLATE = (
    "[task {key}] turn {turn}: the tests failed.\n\n```\n{output}\n```\n\nFix the code. Answer with the complete "
    "`solution.py` in one ```python code block."
)

RUN_TESTS = """\
import sys, traceback
import test_solution
failed = 0
names = [n for n in dir(test_solution) if n.startswith("test_") and callable(getattr(test_solution, n))]
for name in sorted(names):
    try:
        getattr(test_solution, name)()
    except BaseException as exc:
        failed += 1
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (line {tb[-1].lineno} of {tb[-1].filename.rsplit('/', 1)[-1]})" if tb else ""
        print(f"FAILED {name}: {type(exc).__name__}: {str(exc)[:300]}{where}")
print(f"{len(names) - failed} passed, {failed} failed")
sys.exit(1 if failed or not names else 0)
"""


@dataclass(frozen=True)
class Task:
    key: str
    category: str
    difficulty: int
    prompt: str
    tests: str
    starter: str = ""

    def first_message(self) -> str:
        starter = STARTER_TEMPLATE.format(starter=self.starter) if self.starter else ""
        return PROMPT_TEMPLATE.format(key=self.key, prompt=self.prompt, starter=starter, tests=self.tests)


_HEAD = re.compile(r"^=== (\S+) \| (\w+) \| (\d)\s*$")


def parse_sections(text: str) -> list[tuple[list[str], dict[str, str]]]:
    """``=== a | b | c`` heads, each followed by ``--- name`` sections: [(head fields, {name: body})]."""
    out: list[tuple[list[str], dict[str, str]]] = []
    section: str | None = None
    for line in text.splitlines(keepends=True):
        if line.startswith("=== "):
            out.append(([f.strip() for f in line[4:].split("|")], {}))
            section = None
        elif line.startswith("--- ") and out:
            section = line[4:].strip()
            out[-1][1][section] = ""
        elif out and section is not None:
            out[-1][1][section] += line
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"text outside a section: {line.strip()[:60]!r}")
    return out


def parse_tasks(text: str) -> tuple[Task, ...]:
    tasks = []
    for head, sections in parse_sections(text):
        if len(head) != 3 or not head[2].isdigit() or head[1] not in CATEGORIES:
            raise ValueError(f"bad task head {' | '.join(head)!r} (want key | category | difficulty)")
        if "prompt" not in sections or "tests" not in sections:
            raise ValueError(f"task {head[0]} needs a prompt and tests")
        tasks.append(Task(head[0], head[1], int(head[2]), sections["prompt"].strip(), sections["tests"].lstrip("\n"),
                          sections.get("starter", "").lstrip("\n")))  # fmt: skip
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate task keys")
    return tuple(tasks)


def load_tasks() -> tuple[Task, ...]:
    from importlib import resources

    text = resources.files("engines.evals").joinpath("data", "agentic_tasks.txt").read_text(encoding="utf-8")
    return parse_tasks(text)


def check_job(task: Task, code: str, wall_s: float = 10.0) -> SandboxJob:
    """The sandbox job checking ``code`` (the whole solution.py) against the task's tests."""
    limits = SandboxLimits(wall_seconds=wall_s, cpu_seconds=max(1, int(wall_s)), output_bytes=16 * 1024)
    files = {"solution.py": code, "test_solution.py": task.tests, "run_tests.py": RUN_TESTS}
    return SandboxJob(command=("python3", "run_tests.py"), files=files, limits=limits)


def failure_text(outcome: SandboxOutcome) -> str:
    """What the model is told about a failed run: the killed reason, the test lines, the end of stderr."""
    parts = []
    if outcome.killed_reason:
        parts.append(f"the run was stopped ({outcome.killed_reason}, e.g. an endless loop)")
    if outcome.stdout.strip():
        parts.append(outcome.stdout.strip())
    if outcome.stderr.strip():
        parts.append(outcome.stderr.strip()[-FEEDBACK_CAP // 2 :])
    text = "\n".join(parts) or f"exit code {outcome.exit_code}, no output"
    return text[-FEEDBACK_CAP:]


@dataclass
class Turn:
    text: str | None
    passed: bool
    exit_code: int | None
    killed_reason: str | None
    output: str
    error: str | None = None  # the request failed (no answer)
    outcome: SandboxOutcome | None = None  # the sandbox run of this turn's code

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "exit_code": self.exit_code, "killed_reason": self.killed_reason,
                "output": self.output, "error": self.error}  # fmt: skip


@dataclass
class TaskResult:
    key: str
    category: str
    difficulty: int
    turns: list[Turn] = field(default_factory=list)

    @property
    def solved_at(self) -> int | None:
        """The turn (1-based) whose code passed, None if none did."""
        for i, t in enumerate(self.turns, 1):
            if t.passed:
                return i
        return None

    @property
    def request_failed(self) -> bool:
        return any(t.error is not None for t in self.turns)


Chat = Callable[[list[dict[str, str]]], Awaitable[Answer]]
"""A conversation -> the model's answer (`engines.evals.completions.ModelClient` on a real server)."""
Runner = Callable[[SandboxJob], Awaitable[SandboxOutcome]]


async def solve(task: Task, chat: Chat, run: Runner, max_turns: int = DEFAULT_MAX_TURNS,
                wall_s: float = 10.0, first_message: str | None = None) -> TaskResult:  # fmt: skip
    """Ask, test, feed back the failures; stop at the first passing turn, a failed request or ``max_turns``.
    ``first_message`` is the stored item's prompt when given (else built from the task)."""
    if max_turns < 1:
        raise ValueError("max_turns must be >= 1")
    result = TaskResult(task.key, task.category, task.difficulty)
    messages = [{"role": "user", "content": first_message or task.first_message()}]
    for turn in range(1, max_turns + 1):
        answer = await chat(messages)
        text, error = answer.text, answer.error
        if text is None:
            result.turns.append(Turn(None, False, None, None, "", error or "no answer"))
            break
        outcome = await run(check_job(task, extract_code(text), wall_s))
        out = "" if outcome.passed else failure_text(outcome)
        result.turns.append(
            Turn(text, outcome.passed, outcome.exit_code, outcome.killed_reason, out, None, outcome)
        )
        if outcome.passed:
            break
        messages += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": FEEDBACK_TEMPLATE.format(key=task.key, turn=turn + 1, output=out)},
        ]
    return result


def agentic_metrics(results: Sequence[TaskResult], max_turns: int) -> dict[str, float]:
    """``solved@1``, ``solved@N`` (N = max_turns), ``mean_turns_solved`` (over solved tasks), and per
    category ``solved@N:<category>``."""
    return solved_metrics([(r.category, r.solved_at) for r in results], max_turns)


def solved_metrics(attempts: Sequence[tuple[str | None, int | None]], max_turns: int) -> dict[str, float]:
    """`agentic_metrics` from (category, solved at turn or None) per attempt."""
    if not attempts:
        return {}
    n = len(attempts)
    at = [a for _, a in attempts]
    out = {
        "solved@1": sum(1 for a in at if a == 1) / n,
        f"solved@{max_turns}": sum(1 for a in at if a is not None) / n,
    }
    solved = [a for a in at if a is not None]
    if solved:
        out["mean_turns_solved"] = sum(solved) / len(solved)
    by_cat: dict[str, list[int | None]] = {}
    for cat, a in attempts:
        by_cat.setdefault(cat or "none", []).append(a)
    for cat, rs in sorted(by_cat.items()):
        out[f"solved@{max_turns}:{cat}"] = sum(1 for a in rs if a is not None) / len(rs)
    return out


def by_key(tasks: Sequence[Task]) -> Mapping[str, Task]:
    return {t.key: t for t in tasks}


def pool_runner(pool: SandboxPool) -> Runner:
    """Sandbox jobs through a `SandboxPool` (one slot per parallel job), awaited without blocking the loop."""

    async def run(job: SandboxJob) -> SandboxOutcome:
        return await asyncio.wrap_future(pool.submit(job))

    return run


async def solve_all(
    tasks: Sequence[Task], chat: Chat, run: Runner, max_turns: int = DEFAULT_MAX_TURNS, parallel: int = 1,
    wall_s: float = 10.0,
) -> list[TaskResult]:  # fmt: skip
    """`solve` every task, ``parallel`` at a time; results in the tasks' order."""
    sem = asyncio.Semaphore(parallel)

    async def one(t: Task) -> TaskResult:
        async with sem:
            return await solve(t, chat, run, max_turns, wall_s)

    return list(await asyncio.gather(*(one(t) for t in tasks)))
