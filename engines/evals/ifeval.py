"""Verifiable instruction following: each item's checks are scored by code, no judge.

A check is a mapping ``{"type": <name>, ...parameters}`` (the items live in ``engines/evals/data/ifeval.jsonl``).
`run_checks` returns one `CheckResult` per check; an item passes (strict) when every check passes. The suite's
metrics are the fraction of items passing all their checks (``prompt_strict``) and the fraction of all checks
passing (``instruction_strict``).

Definitions (stated once, so a score can be recomputed by hand):

* a *word* is a letter or digit followed by letters, digits, apostrophes or hyphens (``\\w[\\w'-]*``);
* a *sentence* ends at ``.``, ``!`` or ``?`` followed by whitespace or the end (a trailing fragment counts);
* a *bullet* is a line starting with ``-``, ``*`` or ``•`` then a space; a *numbered item* a line starting
  ``1.`` / ``2)``...;
* a *paragraph* is a block separated by one or more blank lines;
* word checks are case-insensitive and whole-word.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WORD = re.compile(r"\w[\w'-]*")
BULLET = re.compile(r"^\s*[-*•]\s+\S", re.M)
NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S", re.M)


@dataclass(frozen=True)
class CheckResult:
    type: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "passed": self.passed, "detail": self.detail}


def words(text: str) -> list[str]:
    return WORD.findall(text)


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if WORD.search(p)]


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _range(n: int, spec: Mapping[str, Any], what: str) -> CheckResult:
    lo, hi = spec.get("min"), spec.get("max")
    exact = spec.get("exactly")
    if exact is not None:
        ok = n == exact
        want = f"exactly {exact}"
    else:
        ok = (lo is None or n >= lo) and (hi is None or n <= hi)
        want = f"{'' if lo is None else f'>= {lo}'}{' and ' if lo is not None and hi is not None else ''}" + (
            "" if hi is None else f"<= {hi}"
        )
    return CheckResult(str(spec["type"]), ok, f"{n} {what} (want {want})")


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w'-]){re.escape(word)}(?![\w'-])", text, re.I) is not None


def _json_object(text: str) -> Any:
    body = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*\n(.*?)\n?```", body, re.S)
    if fence:
        body = fence.group(1).strip()
    return json.loads(body)


def _check_json(text: str, spec: Mapping[str, Any]) -> CheckResult:
    try:
        obj = _json_object(text)
    except ValueError as exc:
        return CheckResult("json", False, f"not JSON: {exc}")
    keys = list(spec.get("keys") or [])
    if keys:
        if not isinstance(obj, dict):
            return CheckResult("json", False, f"JSON {type(obj).__name__}, want an object")
        missing = [k for k in keys if k not in obj]
        if missing:
            return CheckResult("json", False, f"missing keys {missing}")
    if spec.get("list") and not isinstance(obj, list):
        return CheckResult("json", False, f"JSON {type(obj).__name__}, want a list")
    return CheckResult("json", True, "valid JSON")


def _words_present(text: str, spec: Mapping[str, Any]) -> CheckResult:
    missing = [w for w in spec["words"] if not _has_word(text, w)]
    return CheckResult("required_words", not missing, f"missing {missing}" if missing else "all present")


def _words_absent(text: str, spec: Mapping[str, Any]) -> CheckResult:
    found = [w for w in spec["words"] if _has_word(text, w)]
    return CheckResult("forbidden_words", not found, f"found {found}" if found else "none found")


def _word_frequency(text: str, spec: Mapping[str, Any]) -> CheckResult:
    n = len(re.findall(rf"(?<![\w'-]){re.escape(spec['word'])}(?![\w'-])", text, re.I))
    return _range(n, spec, f"times {spec['word']!r}")


def _case(text: str, spec: Mapping[str, Any]) -> CheckResult:
    letters = [c for c in text if c.isalpha()]
    if spec["type"] == "lowercase":
        bad = [c for c in letters if c.isupper()]
    else:
        bad = [c for c in letters if c.islower()]
    return CheckResult(str(spec["type"]), bool(letters) and not bad, f"{len(bad)} letters in the wrong case")


def _ends_with(text: str, spec: Mapping[str, Any]) -> CheckResult:
    ok = text.rstrip().endswith(spec["text"])
    return CheckResult("ends_with", ok, f"ends with {text.rstrip()[-len(spec['text']) - 10 :]!r}")


def _starts_with(text: str, spec: Mapping[str, Any]) -> CheckResult:
    ok = text.lstrip().startswith(spec["text"])
    return CheckResult("starts_with", ok, f"starts with {text.lstrip()[: len(spec['text']) + 10]!r}")


def _no_commas(text: str, spec: Mapping[str, Any]) -> CheckResult:
    n = text.count(",")
    return CheckResult("no_commas", n == 0, f"{n} commas")


def _quoted(text: str, spec: Mapping[str, Any]) -> CheckResult:
    t = text.strip()
    ok = len(t) >= 2 and t[0] == '"' and t[-1] == '"'
    return CheckResult("quoted", ok, "wrapped in double quotes" if ok else "not wrapped in double quotes")


def _title(text: str, spec: Mapping[str, Any]) -> CheckResult:
    ok = re.search(r"<<[^<>\n]+>>", text) is not None
    return CheckResult("title", ok, "has a <<title>>" if ok else "no <<title>>")


def _placeholders(text: str, spec: Mapping[str, Any]) -> CheckResult:
    return _range(len(re.findall(r"\[[^\[\]\n]+\]", text)), spec, "[placeholders]")


def _highlights(text: str, spec: Mapping[str, Any]) -> CheckResult:
    return _range(len(re.findall(r"\*[^*\n]+\*", text.replace("**", "*"))), spec, "*highlighted* sections")


def _max_chars(text: str, spec: Mapping[str, Any]) -> CheckResult:
    n = len(text.strip())
    return CheckResult("max_chars", n <= spec["max"], f"{n} characters (want <= {spec['max']})")


def _single_line(text: str, spec: Mapping[str, Any]) -> CheckResult:
    n = len([ln for ln in text.strip().splitlines() if ln.strip()])
    return CheckResult("single_line", n == 1, f"{n} non-empty lines")


def _sections(text: str, spec: Mapping[str, Any]) -> CheckResult:
    marker = spec["marker"]
    n = len(re.findall(rf"^\s*{re.escape(marker)}\s*\d+", text, re.M))
    return _range(n, spec, f"'{marker} N' sections")


CHECKS: dict[str, Callable[[str, Mapping[str, Any]], CheckResult]] = {
    "word_count": lambda t, s: _range(len(words(t)), s, "words"),
    "sentence_count": lambda t, s: _range(len(sentences(t)), s, "sentences"),
    "paragraph_count": lambda t, s: _range(len(paragraphs(t)), s, "paragraphs"),
    "bullet_count": lambda t, s: _range(len(BULLET.findall(t)), s, "bullets"),
    "numbered_count": lambda t, s: _range(len(NUMBERED.findall(t)), s, "numbered items"),
    "json": _check_json,
    "required_words": _words_present,
    "forbidden_words": _words_absent,
    "word_frequency": _word_frequency,
    "lowercase": _case,
    "uppercase": _case,
    "ends_with": _ends_with,
    "starts_with": _starts_with,
    "no_commas": _no_commas,
    "quoted": _quoted,
    "title": _title,
    "placeholders": _placeholders,
    "highlights": _highlights,
    "max_chars": _max_chars,
    "single_line": _single_line,
    "sections": _sections,
}


def validate(checks: Sequence[Mapping[str, Any]]) -> None:
    for c in checks:
        if c.get("type") not in CHECKS:
            raise ValueError(
                f"unknown instruction check {c.get('type')!r} (known: {', '.join(sorted(CHECKS))})"
            )


def run_checks(text: str, checks: Sequence[Mapping[str, Any]]) -> list[CheckResult]:
    return [CHECKS[str(c["type"])](text, c) for c in checks]
