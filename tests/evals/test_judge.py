"""The judge's prompts, rating and verdict parsers, and the swap rule (pure functions, exact values)."""

from __future__ import annotations

import pytest

from engines.evals import judge
from engines.evals.judge import (
    combine_orders,
    is_self_judged,
    pair_messages,
    parse_pair_verdict,
    parse_rating,
    single_messages,
)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Good answer.\nRating: [[7]]", 7.0),
        ("[[ 7 ]]", 7.0),
        ("Rating: [[7.5]]", 7.5),
        ("[[7,5]]", 7.5),
        ("Rating: [[8/10]]", 8.0),
        ("[[10]]", 10.0),
        ("[[1]]", 1.0),
        ("I'd say [[6]]. To repeat: Rating: [[6.0]]", 6.0),
    ],
)
def test_parse_rating_accepts(text: str, score: float) -> None:
    r = parse_rating(text)
    assert r.parsed and r.score == score


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        (None, "empty"),
        ("Rating: 7", "no [[rating]]"),
        ("Rating: [7]", "no [[rating]]"),
        ("seven out of ten", "no [[rating]]"),
        ("[[11]]", "outside 1..10"),
        ("[[0]]", "outside 1..10"),
        ("[[-3]]", "outside 1..10"),
        ("first [[4]] then [[8]]", "ambiguous"),
        ("[[good]]", "no numeric"),
        ("kqz ## 7 [[ ]] ..", "no numeric"),
    ],
)
def test_parse_rating_refuses(text: str | None, why: str) -> None:
    r = parse_rating(text)
    assert not r.parsed and r.score is None and why in r.reason


@pytest.mark.parametrize(
    ("text", "verdict", "value"),
    [
        ("[[A>>B]]", "A>>B", 2),
        ("final: [[ a > b ]]", "A>B", 1),
        ("[[A=B]]", "A=B", 0),
        ("[[B>A]]", "B>A", -1),
        ("[[B>>A]]", "B>>A", -2),
        ("[[A<B]]", "B>A", -1),
        ("[[A<<B]]", "B>>A", -2),
        ("[[B=A]] ... so [[A=B]]", "A=B", 0),
    ],
)
def test_parse_pair_verdict(text: str, verdict: str, value: int) -> None:
    v = parse_pair_verdict(text)
    assert v.parsed and v.verdict == verdict and v.value == value


@pytest.mark.parametrize("text", ["", "A is better", "[A>B]", "[[A>B]] or maybe [[B>A]]", "[[A>A]]", "[[C>B]]"])
def test_parse_pair_verdict_refuses(text: str) -> None:
    v = parse_pair_verdict(text)
    assert not v.parsed and v.value is None


def _v(s: str) -> judge.PairVerdict:
    return parse_pair_verdict(f"[[{s}]]")


@pytest.mark.parametrize(
    ("first", "swapped", "value", "consistent", "score_x"),
    [
        ("A>>B", "B>>A", 2, True, 1.0),  # x much better both ways
        ("A>>B", "B>A", 1, True, 0.75),  # agree on x, weaker strength kept
        ("A>B", "B>>A", 1, True, 0.75),
        ("B>A", "A>>B", -1, True, 0.25),  # y better both ways
        ("B>>A", "A>>B", -2, True, 0.0),
        ("A=B", "A=B", 0, True, 0.5),
        ("A>B", "A>B", 0, False, 0.5),  # position bias: "the first one" both times -> flips -> tie
        ("A>>B", "A>B", 0, False, 0.5),
        ("A>B", "A=B", 0, False, 0.5),  # a win one way and a tie the other is not a win
        ("A=B", "B>>A", 0, False, 0.5),
    ],
)
def test_combine_orders(first: str, swapped: str, value: int, consistent: bool, score_x: float) -> None:
    o = combine_orders(_v(first), _v(swapped))
    assert (o.parsed, o.value, o.consistent, o.score_x) == (True, value, consistent, score_x)


def test_combine_orders_unparseable_half_counts_for_nobody() -> None:
    o = combine_orders(_v("A>B"), parse_pair_verdict("no idea"))
    assert not o.parsed and o.value is None and o.score_x is None and o.winner is None


def test_prompts_are_versioned_and_render_multi_turn_with_reference() -> None:
    assert judge.PROMPT_VERSION == "judge-1"
    msgs = single_messages(["What is 2+3?", "And times 4?"], ["5", "20"], category="math", reference=["5", "20"])
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "### User (turn 2)\nAnd times 4?" in user and "### Assistant (turn 2)\n20" in user
    assert "<<reference answer>>\n20\n" in user  # the graded (second) turn's reference
    assert "[[rating]]" in user
    # writing has no reference template even if a reference were given; braces in answers survive formatting
    plain = single_messages(["Write a poem"], ["{x} roses"], category="writing", reference=["r"])[1]["content"]
    assert "reference" not in plain.lower() and "{x} roses" in plain
    first_turn = single_messages(["Q1", "Q2"], ["A1"], category="coding", reference=["R1", "R2"])[1]["content"]
    assert "<<reference answer>>\nR1\n" in first_turn and "Q2" not in first_turn
    pair = pair_messages(["Q"], ["left"], ["right"])[1]["content"]
    assert pair.index("left") < pair.index("right") and "[[A>>B]]" in pair
    with pytest.raises(ValueError):
        single_messages(["Q"], ["a", "b"])


def test_self_judged() -> None:
    assert is_self_judged(("box", "m"), ("box", "m"))
    assert not is_self_judged(("box", "m"), ("box", "j"))
    assert is_self_judged(("box", "m"), ("other", "alias"), "/models/q.gguf", "/models/q.gguf")
    assert not is_self_judged(("box", "m"), ("other", "alias"), None, None)
