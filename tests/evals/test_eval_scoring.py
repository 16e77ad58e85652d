"""Scoring by code, on known inputs: pass@k against hand-computed values, code extraction, instruction checks."""

from __future__ import annotations

import pytest

from engines.evals import ifeval, scoring
from engines.evals.suites import load_humaneval, load_ifeval


def test_pass_at_k_matches_hand_computed_values() -> None:
    # n=5, c=2: pass@1 = 2/5; pass@2 = 1 - C(3,2)/C(5,2) = 1 - 3/10; pass@3 = 1 - C(3,3)/C(5,3) = 1 - 1/10
    assert scoring.pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert scoring.pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert scoring.pass_at_k(5, 2, 3) == pytest.approx(0.9)
    assert scoring.pass_at_k(5, 2, 4) == 1.0  # n - c = 3 < 4
    assert scoring.pass_at_k(10, 0, 5) == 0.0
    # n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert scoring.pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    with pytest.raises(ValueError, match="at least 6 samples"):
        scoring.pass_at_k(5, 2, 6)
    m = scoring.code_metrics({"a": [True, False, True, False, False], "b": [True] * 5, "c": [False] * 5}, 5)
    assert m == {"pass@1": pytest.approx((0.4 + 1 + 0) / 3), "pass@5": pytest.approx(2 / 3)}
    assert scoring.ks_for(1) == [1] and scoring.ks_for(10) == [1, 5, 10] and scoring.ks_for(3) == [1, 3]


def test_extract_code_prefers_the_python_block() -> None:
    assert scoring.extract_code("Here:\n```python\ndef f():\n    return 1\n```\nbye") == "def f():\n    return 1\n"
    assert scoring.extract_code("```\nx = 1\n```") == "x = 1\n"
    assert scoring.extract_code("```js\nlet x\n```") == "let x\n"
    assert scoring.extract_code("def g(): pass") == "def g(): pass"
    assert scoring.extract_code("```python\nunterminated = 2") == "unterminated = 2"


def test_humaneval_comes_from_the_package_and_is_versioned() -> None:
    suite = load_humaneval()
    assert len(suite.items) == 164 and suite.items[0].key == "HumanEval/0"
    assert suite.items[0].payload["entry_point"] == "has_close_elements"
    assert suite.items[0].payload["prompt"] in suite.items[0].prompt
    assert len(suite.version) == 16 and load_humaneval().version == suite.version
    assert [i.key for i in suite.subset(keys=["HumanEval/3", "HumanEval/1"])] == ["HumanEval/3", "HumanEval/1"]
    assert len(suite.subset(limit=5)) == 5
    with pytest.raises(ValueError, match="no item"):
        suite.subset(keys=["HumanEval/999"])


def test_ifeval_items_are_about_thirty_and_valid() -> None:
    suite = load_ifeval()
    assert 30 <= len(suite.items) <= 40
    assert len({i.key for i in suite.items}) == len(suite.items)
    kinds = {c["type"] for i in suite.items for c in i.payload["checks"]}
    assert kinds == set(ifeval.CHECKS)  # every check type is used by some item


CASES = [
    ({"type": "word_count", "max": 5}, "one two three four five", True),
    ({"type": "word_count", "max": 5}, "- one two three four five six", False),
    ({"type": "word_count", "min": 3}, "don't stop-now ok", True),
    ({"type": "sentence_count", "exactly": 3}, "A b. C d! E f?", True),
    ({"type": "sentence_count", "exactly": 3}, "A b. C d", False),
    ({"type": "paragraph_count", "exactly": 2}, "one\n\n\ntwo", True),
    ({"type": "bullet_count", "exactly": 2}, "- a\n* b\nc", True),
    ({"type": "numbered_count", "exactly": 3}, "1. a\n2) b\n3. c", True),
    ({"type": "json", "keys": ["a"]}, '```json\n{"a": 1}\n```', True),
    ({"type": "json", "keys": ["a", "b"]}, '{"a": 1}', False),
    ({"type": "json", "list": True}, "[2, 3, 5]", True),
    ({"type": "json"}, "{not json}", False),
    ({"type": "required_words", "words": ["maple", "harvest"]}, "Maple trees at HARVEST.", True),
    ({"type": "required_words", "words": ["maple"]}, "maples", False),
    ({"type": "forbidden_words", "words": ["blue"]}, "bluest skies", True),
    ({"type": "forbidden_words", "words": ["blue"]}, "so Blue.", False),
    ({"type": "word_frequency", "word": "data", "min": 3}, "data, Data and data-driven data", True),
    ({"type": "lowercase"}, "all lower, 123.", True),
    ({"type": "lowercase"}, "not All lower", False),
    ({"type": "uppercase"}, "WET FLOOR!", True),
    ({"type": "ends_with", "text": "Done."}, "It works. Done.  \n", True),
    ({"type": "starts_with", "text": "My answer is"}, "  My answer is Paris.", True),
    ({"type": "no_commas"}, "a, b", False),
    ({"type": "quoted"}, '"Fresh daily"', True),
    ({"type": "title"}, "<<Rain>>\ndrops", True),
    ({"type": "placeholders", "min": 2}, "Dear [name], at [company]", True),
    ({"type": "highlights", "min": 2}, "*one* and **two**", True),
    ({"type": "max_chars", "max": 5}, "abcdef", False),
    ({"type": "single_line"}, "one line\n", True),
    ({"type": "sections", "marker": "SECTION", "exactly": 2}, "SECTION 1\nx\nSECTION 2\ny", True),
]


@pytest.mark.parametrize(("check", "text", "expected"), CASES)
def test_instruction_check(check: dict[str, object], text: str, expected: bool) -> None:
    [result] = ifeval.run_checks(text, [check])
    assert result.passed is expected, result.detail


def test_instruction_metrics() -> None:
    r = ifeval.run_checks
    results = {
        "a": r("- a\n- b", [{"type": "bullet_count", "exactly": 2}, {"type": "lowercase"}]),  # 2/2
        "b": r("X", [{"type": "lowercase"}]),  # 0/1
    }
    assert scoring.instruction_metrics(results) == {"prompt_strict": 0.5, "instruction_strict": pytest.approx(2 / 3)}


def test_stale_reasons_name_every_change() -> None:
    from engines.evals.runner import HARNESS_VERSION, ScoreIdentity, stale_reasons

    sampling = {"temperature": 0.0, "seed": 1}
    score = {"metric": "pass@1", "model_file": "/m/a.gguf", "server_version": "b1", "harness_version": HARNESS_VERSION,
             "suite_name": "humaneval", "suite_version": "v1", "sampling": sampling, "judge": None}  # fmt: skip
    same = ScoreIdentity("/m/a.gguf", "b1", HARNESS_VERSION, "humaneval", "v1", sampling)
    assert stale_reasons(score, same, ["pass@1"]) == []
    unknown_file = ScoreIdentity(None, None, HARNESS_VERSION, "humaneval", "v1", sampling)
    assert stale_reasons(score, unknown_file) == []  # a provider without /props says nothing about its file
    changed = ScoreIdentity("/m/b.gguf", "b2", "evals-0", "humaneval", "v2", {"temperature": 0.8}, "judge/x")
    assert stale_reasons(score, changed, ["pass@1"]) == [
        "model file changed: /m/a.gguf -> /m/b.gguf",
        "server version changed: b1 -> b2",
        f"harness changed: {HARNESS_VERSION} -> evals-0",
        "suite humaneval changed: v1 -> v2",
        "sampling changed",
        "judge changed: None -> judge/x",
    ]
    other_suite = ScoreIdentity("/m/a.gguf", "b1", HARNESS_VERSION, "ifeval", "w9", {"temperature": 0.8})
    assert stale_reasons(score, other_suite, ["prompt_strict"]) == []
    other_metric = ScoreIdentity("/m/a.gguf", "b1", HARNESS_VERSION, "humaneval", "v1", {"temperature": 0.8})
    assert stale_reasons(score, other_metric, ["pass@10"]) == []  # a pass@10 run leaves pass@1 alone
