"""LLM-as-judge: the judge prompts, the verdict parsers and the swap rule (plain functions, no I/O but reading
the package's prompt file).

Prompts
-------
The judge prompts are the project's own, shipped as package data (``engines/evals/data/judge_prompts.jsonl``,
one template per line: ``single``, ``single_ref``, ``pair``, ``pair_ref``), all of one version
(`PROMPT_VERSION`, stored with every judgment: a reworded prompt is a new version). A conversation of any
number of turns is shown whole and the judge grades the assistant's LAST reply (multi-turn = one judgment per
asked turn, each with the turns before it). Items with a reference answer (math, reasoning, coding) use the
``*_ref`` templates, which tell the judge the reference is correct.

Single-answer rating: the `parse_rating` rules
----------------------------------------------
* A rating is a number written in double square brackets: ``[[7]]``, ``[[ 7 ]]``, ``Rating: [[7.5]]``,
  ``[[7/10]]`` (the ``/10`` is dropped), ``[[ 8.0 ]]``. A decimal comma (``[[7,5]]``) is read as 7.5.
* It must lie in 1..10 (inclusive); anything else is *unparseable*, never clamped.
* Several bracketed ratings: accepted only if they are all equal (a judge repeating itself); different
  numbers are *unparseable* (ambiguous), as is a text with none. Single brackets (``[7]``), "7/10" without
  brackets and words ("seven") are not ratings: a judge that does not follow the format is not guessed at.

Pairwise: the five-level scale
------------------------------
``[[A>>B]]`` much better, ``[[A>B]]`` better, ``[[A=B]]`` tie, ``[[B>A]]``, ``[[B>>A]]`` (spaces inside and
case are ignored; ``A<B`` / ``A<<B`` are read as ``B>A`` / ``B>>A``). As a number from A's side: +2, +1, 0, -1,
-2. Several different verdicts in one text, or none, are unparseable.

Both orders (`combine_orders`): each pair is judged twice, (x as A, y as B) and swapped. Seen from x, the two
verdicts either agree in direction, and the pair keeps that direction at the weaker of the two strengths, or
they do not (one prefers x, the other y or a tie; or one says tie, the other a winner): that is a verdict that
moves with the order and counts as a tie (``consistent = False``). Two ties are a consistent tie. A pair with an
unparseable half is unparseable and counts for nobody.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

PROMPT_FILE = "judge_prompts.jsonl"
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding"})
"""Categories graded against a reference answer when the item has one."""

DEFAULT_JUDGE_SAMPLING: Mapping[str, Any] = {"temperature": 0.0, "top_p": 1.0, "seed": 1234, "max_tokens": 512}


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    version: str
    system: str
    user: str


@cache
def prompts() -> dict[str, JudgePrompt]:
    text = resources.files("engines.evals").joinpath("data", PROMPT_FILE).read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        if line.strip():
            p = json.loads(line)
            out[p["name"]] = JudgePrompt(p["name"], p["version"], p["system"], p["user"])
    versions = {p.version for p in out.values()}
    if len(versions) != 1 or set(out) != {"single", "single_ref", "pair", "pair_ref"}:
        raise ValueError(f"{PROMPT_FILE}: expected the four templates of one version, got {sorted(out)} {versions}")
    return out


def prompt_version() -> str:
    return next(iter(prompts().values())).version


PROMPT_VERSION = prompt_version()


# --------------------------------------------------------------------------------------------- prompts


def render_conversation(turns: Sequence[str], answers: Sequence[str]) -> str:
    """The conversation as the judge sees it: every user turn with the assistant's reply, up to ``answers``'
    length (the last reply is the one graded)."""
    if not answers or len(answers) > len(turns):
        raise ValueError(f"need 1..{len(turns)} answers for {len(turns)} turn(s), got {len(answers)}")
    parts = []
    for i, (q, a) in enumerate(zip(turns, answers, strict=False), start=1):
        parts.append(f"### User (turn {i})\n{q}\n\n### Assistant (turn {i})\n{a}")
    return "\n\n".join(parts)


def uses_reference(category: str | None, reference: Sequence[str] | None) -> bool:
    return bool(reference) and (category or "").lower() in REFERENCE_CATEGORIES


def _reference_for(reference: Sequence[str], n_answers: int) -> str:
    """The reference for the graded (last) turn: the turn's own, else the last one given."""
    return reference[min(n_answers, len(reference)) - 1]


def single_messages(
    turns: Sequence[str],
    answers: Sequence[str],
    category: str | None = None,
    reference: Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """Chat messages asking the judge to rate the last of ``answers`` (1-10)."""
    conv = render_conversation(turns, answers)
    if uses_reference(category, reference):
        assert reference is not None
        p = prompts()["single_ref"]
        user = p.user.format(conversation=conv, reference=_reference_for(reference, len(answers)))
    else:
        p = prompts()["single"]
        user = p.user.format(conversation=conv)
    return [{"role": "system", "content": p.system}, {"role": "user", "content": user}]


def pair_messages(
    turns: Sequence[str],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    category: str | None = None,
    reference: Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """Chat messages asking the judge to compare the last replies of A and B."""
    ca, cb = render_conversation(turns, answers_a), render_conversation(turns, answers_b)
    if uses_reference(category, reference):
        assert reference is not None
        p = prompts()["pair_ref"]
        user = p.user.format(conversation_a=ca, conversation_b=cb,
                             reference=_reference_for(reference, len(answers_a)))  # fmt: skip
    else:
        p = prompts()["pair"]
        user = p.user.format(conversation_a=ca, conversation_b=cb)
    return [{"role": "system", "content": p.system}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Rating:
    parsed: bool
    score: float | None
    reason: str  # why it is unparseable, or the text the score was read from


_RATING = re.compile(r"\[\[\s*([+-]?\d+(?:[.,]\d+)?)\s*(?:/\s*10\s*)?\]\]")
_ANY_DOUBLE = re.compile(r"\[\[([^\[\]]{0,40})\]\]")


def parse_rating(text: str | None) -> Rating:
    """A 1-10 rating from a judge's text; see the module docstring for the rules."""
    if not text:
        return Rating(False, None, "empty judgment")
    found = _RATING.findall(text)
    if not found:
        other = _ANY_DOUBLE.search(text)
        why = f"no numeric [[rating]] (found [[{other.group(1)}]])" if other else "no [[rating]] in the judgment"
        return Rating(False, None, why)
    values = {float(v.replace(",", ".")) for v in found}
    if len(values) > 1:
        return Rating(False, None, f"ambiguous: several different ratings {sorted(values)}")
    v = values.pop()
    if not 1.0 <= v <= 10.0:
        return Rating(False, None, f"rating {v:g} outside 1..10")
    return Rating(True, v, f"[[{found[0]}]]")


VERDICTS: Mapping[str, int] = {"A>>B": 2, "A>B": 1, "A=B": 0, "B>A": -1, "B>>A": -2}
_ALIASES = {"A<<B": "B>>A", "A<B": "B>A", "B<<A": "A>>B", "B<A": "A>B", "B=A": "A=B", "A==B": "A=B"}
_VERDICT = re.compile(r"\[\[\s*([AB])\s*(>>|<<|>|<|==|=)\s*([AB])\s*\]\]", re.I)


@dataclass(frozen=True)
class PairVerdict:
    parsed: bool
    verdict: str | None  # one of VERDICTS, from A's side as shown to the judge
    value: int | None  # +2..-2 from A's side
    reason: str


def parse_pair_verdict(text: str | None) -> PairVerdict:
    """One of the five verdicts from a judge's pairwise text; see the module docstring."""
    if not text:
        return PairVerdict(False, None, None, "empty judgment")
    seen = set()
    for a, op, b in _VERDICT.findall(text):
        a, b = a.upper(), b.upper()
        if a == b:
            return PairVerdict(False, None, None, f"malformed verdict [[{a}{op}{b}]]")
        v = f"{a}{op}{b}"
        seen.add(_ALIASES.get(v, v))
    if not seen:
        return PairVerdict(False, None, None, "no [[A..B]] verdict in the judgment")
    if len(seen) > 1:
        return PairVerdict(False, None, None, f"ambiguous: several verdicts {sorted(seen)}")
    v = seen.pop()
    return PairVerdict(True, v, VERDICTS[v], f"[[{v}]]")


@dataclass(frozen=True)
class PairOutcome:
    """A pair (x, y) judged in both orders, from x's side."""

    parsed: bool
    value: int | None  # +2..-2 for x; 0 for a tie (consistent or not); None if unparseable
    consistent: bool  # False when the verdict moved with the order (counted as a tie)
    score_x: float | None  # x's share of the win on the five-level scale: (value + 2) / 4

    @property
    def winner(self) -> str | None:
        if self.value is None:
            return None
        return "x" if self.value > 0 else "y" if self.value < 0 else "tie"


def combine_orders(first: PairVerdict, swapped: PairVerdict) -> PairOutcome:
    """``first``: the judge saw x as A and y as B; ``swapped``: y as A and x as B. See the module docstring."""
    if not first.parsed or not swapped.parsed:
        return PairOutcome(False, None, False, None)
    assert first.value is not None and swapped.value is not None
    v1, v2 = first.value, -swapped.value  # both from x's side
    if v1 == 0 and v2 == 0:
        return PairOutcome(True, 0, True, 0.5)
    if (v1 > 0 and v2 > 0) or (v1 < 0 and v2 < 0):
        sign = 1 if v1 > 0 else -1
        value = sign * min(abs(v1), abs(v2))
        return PairOutcome(True, value, True, (value + 2) / 4)
    return PairOutcome(True, 0, False, 0.5)


def is_self_judged(candidate: tuple[str, str], judge: tuple[str, str], candidate_file: str | None = None,
                   judge_file: str | None = None) -> bool:  # fmt: skip
    """A judge grading its own answers: the same provider/model, or the same model file (two registry names
    for one GGUF are the same model)."""
    if candidate == judge:
        return True
    return candidate_file is not None and candidate_file == judge_file
