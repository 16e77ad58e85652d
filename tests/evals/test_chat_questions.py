"""Question sets for the chat suite: the MT-bench-format loader (on the real MT-bench file, read from
../shared/data beside the clone, never copied) and the project's own set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from engines.evals import chat
from engines.evals.judge import uses_reference

MT_BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mt_bench" / "question.jsonl"


def test_real_mt_bench_file_loads() -> None:
    if not MT_BENCH.is_file():
        pytest.skip(f"MT-bench questions not found at {MT_BENCH} (../shared/data beside the clone)")
    s = chat.load_questions(MT_BENCH)
    assert s.name == "mt-bench" and s.kind == "chat" and len(s.items) == 80
    cats = Counter(i.category for i in s.items)
    assert len(cats) == 8 and set(cats.values()) == {10}
    assert all(len(i.payload["turns"]) == 2 for i in s.items)
    first = s.items[0]
    assert first.key == "81" and first.category == "writing" and first.prompt.startswith("Compose an engaging travel")
    graded_with_ref = Counter(i.category for i in s.items if uses_reference(i.category, i.payload.get("reference")))
    assert graded_with_ref == {"math": 10, "reasoning": 10, "coding": 9}  # other categories' references unused
    assert len(s.version) == 16 and chat.load_questions(MT_BENCH).version == s.version


def test_own_chat_set() -> None:
    s = chat.load_chat()
    assert s.name == "chat" and s.kind == "chat" and len(s.items) == 10
    assert all(len(i.payload["turns"]) == 2 for i in s.items)
    for i in s.items:  # every math/reasoning/coding item is graded against a reference of each turn
        if i.category in ("math", "reasoning", "coding"):
            assert uses_reference(i.category, i.payload.get("reference"))
            assert len(i.payload["reference"]) == 2
    assert s.version != chat.load_questions(MT_BENCH).version if MT_BENCH.is_file() else True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"question_id": 1, "category": "x", "turns": ["q"]}\nnot json\n', "line 2: not JSON"),
        ('{"question_id": 1, "category": "x", "turns": []}', "line 1: turns must be"),
        ('{"question_id": 1, "turns": ["q"]}', "line 1: category must be"),
        ('{"category": "x", "turns": ["q"]}', "line 1: question_id must be"),
        ('{"question_id": 1, "category": "x", "turns": ["q"], "reference": "r"}', "reference must be a list"),
        ('{"question_id": 1, "category": "x", "turns": ["q"]}\n{"question_id": 1, "category": "y", "turns": ["q"]}',
         "line 2: duplicate question_id 1"),
        ("\n\n", "no questions"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "q.jsonl"
    p.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")) as exc:
        chat.load_questions(p)
    assert "\n" not in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no question file at"):
        chat.load_questions(tmp_path / "nope.jsonl")
