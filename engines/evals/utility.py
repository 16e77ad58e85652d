"""Utility calls: title generation and summarization, format-checked by code, content rated by a judge.

The items are the project's own short texts in several languages (``engines/evals/data/utility.jsonl``:
``id``, ``task`` = ``title`` | ``summary``, ``lang``, ``text``, ``max_words``, for summaries also
``min_words``). Checks (each a `CheckResult`, an item passes when all pass):

* ``non_empty``; ``single_line`` (titles); ``length``: word count within the item's limits (words as in
  `engines.evals.ifeval`), and a summary shorter than its text;
* ``no_quotes``: the answer is not wrapped in quotes (``"`` ``'`` ``“”`` ``„“`` ``«»``) and a title does not
  end with a period;
* ``no_preamble``: it does not start with a label or chatter ("Title:", "Summary:", "Here is", "Sure", …);
* ``language_kept``: the answer's language, guessed from common function words of en/de/fr/es/it/nl, is the
  text's. Titles often have no function words: then the check asks instead that at least one of the title's
  content words (4+ letters) shares its first 4 letters with a word of the text (a title in another language
  rarely does), and says which rule decided.

The judge rubric (content, which code cannot check)
---------------------------------------------------
With a judge (``--judge``, else the default judge: `engines.evals.default_judge`), every non-empty answer is
also rated 1-10 by the judge with the project's rubric prompts (``engines/evals/data/utility_rubric.jsonl``:
``title``, ``summary``; one version, `RUBRIC_VERSION`, stored with every judgment and in the run's judge
``provider/model@util-rubric-1``, so a reworded rubric makes rubric scores stale): a title names the text's main
point, claims nothing the text does not say and is specific; a summary keeps the main points, adds nothing and
reads clearly. The rating is read by `engines.evals.judge.parse_rating` (``[[n]]``); a reply that does not parse
is stored as such (``parsed`` false, no score), never as a number. The answer's pass/fail stays the format
checks'; the rating goes to ``eval_judgments`` (verdict ``rubric: …``) and the answer's ``detail.rubric``.
Metrics (`rubric_metrics`): ``rubric_score`` (mean of the parsed ratings), ``rubric_score/title``,
``rubric_score/summary`` and ``rubric_unparseable`` (share of judged answers whose rating did not parse).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import httpx

from engines.evals import judge as judging
from engines.evals.chat import JudgeModel
from engines.evals.completions import Answer, ask
from engines.evals.ifeval import CheckResult, words

TITLE_PROMPT = (
    "Write a title of at most {max_words} words for the text below, in the language of the text. Answer with "
    "the title only.\n\n{text}"
)
SUMMARY_PROMPT = (
    "Summarize the text below in {min_words} to {max_words} words, in the language of the text. Answer with the "
    "summary only.\n\n{text}"
)

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the and of to in is are was for with that this on from by it as be at an have has".split()
    ),
    "de": frozenset(
        "der die das und ist sind nicht mit von den dem des ein eine für auf im zu sich bei wird".split()
    ),
    "fr": frozenset(
        "le la les et est sont des une un du pour dans avec sur par qui que au aux ce pas".split()
    ),
    "es": frozenset("el la los las y es son de del una un para en con por que se al lo como más".split()),
    "it": frozenset("il la lo gli le e è sono di del della una un per in con che si al non più".split()),
    "nl": frozenset("de het een en is zijn van voor met op dat die niet te aan bij ook door".split()),
}
QUOTES = {'"': '"', "'": "'", "“": "”", "„": "“", "«": "»", "”": "”", "‘": "’"}
PREAMBLE = re.compile(
    r"^\s*(title|titel|titre|título|titolo|summary|zusammenfassung|résumé|resumen|riassunto|samenvatting)\s*:"
    r"|^\s*(here is|here's|sure|certainly|of course|okay)\b",
    re.I,
)


@dataclass(frozen=True)
class UtilityItem:
    key: str
    task: str  # title | summary
    lang: str
    text: str
    max_words: int
    min_words: int = 1

    def prompt(self) -> str:
        tpl = TITLE_PROMPT if self.task == "title" else SUMMARY_PROMPT
        return tpl.format(max_words=self.max_words, min_words=self.min_words, text=self.text)


def parse_items(lines: Sequence[str]) -> tuple[UtilityItem, ...]:
    items = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            p = json.loads(line)
            item = UtilityItem(str(p["id"]), str(p["task"]), str(p["lang"]), str(p["text"]), int(p["max_words"]),
                               int(p.get("min_words", 1)))  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"utility item on line {no}: {exc!r}") from None
        if item.task not in ("title", "summary") or item.lang not in STOPWORDS:
            raise ValueError(
                f"utility item {item.key}: task must be title|summary and lang one of {sorted(STOPWORDS)}"
            )
        items.append(item)
    return tuple(items)


def load_items() -> tuple[UtilityItem, ...]:
    text = resources.files("engines.evals").joinpath("data", "utility.jsonl").read_text(encoding="utf-8")
    return parse_items(text.splitlines())


def guess_language(text: str) -> tuple[str | None, int]:
    """(language, function words of it found); None when no language has a function word or two tie."""
    toks = [w.lower() for w in words(text)]
    hits = {lang: sum(1 for t in toks if t in sw) for lang, sw in STOPWORDS.items()}
    best = sorted(hits.items(), key=lambda kv: -kv[1])
    if best[0][1] == 0 or best[0][1] == best[1][1]:
        return None, best[0][1]
    return best[0][0], best[0][1]


def _language(answer: str, item: UtilityItem) -> CheckResult:
    lang, _ = guess_language(answer)
    if lang is not None:
        return CheckResult(
            "language_kept", lang == item.lang, f"function words say {lang} (want {item.lang})"
        )
    content = [w.lower() for w in words(answer) if len(w) >= 4 and w.isalpha()]
    stems = {w.lower()[:4] for w in words(item.text) if len(w) >= 4}
    shared = [w for w in content if w[:4] in stems]
    return CheckResult("language_kept", bool(shared),
                       f"no function words; shares {len(shared)} content word(s) with the text")  # fmt: skip


def check(answer: str | None, item: UtilityItem) -> list[CheckResult]:
    a = (answer or "").strip()
    out = [CheckResult("non_empty", bool(a), "empty answer" if not a else "ok")]
    if not a:
        return out
    n = len(words(a))
    if item.task == "title":
        out.append(CheckResult("single_line", "\n" not in a, f"{a.count(chr(10)) + 1} line(s)"))
        ok_len = 1 <= n <= item.max_words
        out.append(CheckResult("length", ok_len, f"{n} words (want at most {item.max_words})"))
    else:
        src = len(words(item.text))
        ok_len = item.min_words <= n <= item.max_words and n < src
        out.append(
            CheckResult(
                "length", ok_len, f"{n} words (want {item.min_words}..{item.max_words}, text has {src})"
            )
        )
    wrapped = len(a) >= 2 and a[0] in QUOTES and a[-1] == QUOTES[a[0]]
    period = item.task == "title" and a.endswith(".")
    out.append(CheckResult("no_quotes", not wrapped and not period,
                           "wrapped in quotes" if wrapped else "title ends with a period" if period else "ok"))  # fmt: skip
    pre = PREAMBLE.search(a)
    out.append(
        CheckResult("no_preamble", pre is None, f"starts with {pre.group(0).strip()!r}" if pre else "ok")
    )
    out.append(_language(a, item))
    return out


def utility_metrics(results: Mapping[str, tuple[str, Sequence[CheckResult]]]) -> dict[str, float]:
    """``{item key: (task, checks)}`` -> ``title_pass``, ``summary_pass`` (items with every check passing),
    ``format_pass`` (all items) and ``check_pass:<check>`` (that check's pass rate)."""
    if not results:
        return {}
    out: dict[str, float] = {}
    for task in ("title", "summary"):
        rs = [cs for t, cs in results.values() if t == task]
        if rs:
            out[f"{task}_pass"] = sum(all(c.passed for c in cs) for cs in rs) / len(rs)
    out["format_pass"] = sum(all(c.passed for c in cs) for _, cs in results.values()) / len(results)
    by: dict[str, list[bool]] = {}
    for _, cs in results.values():
        for c in cs:
            by.setdefault(c.type, []).append(c.passed)
    out.update({f"check_pass:{k}": sum(v) / len(v) for k, v in sorted(by.items())})
    return out


def as_rows(checks: Sequence[CheckResult]) -> list[dict[str, Any]]:
    return [c.as_dict() for c in checks]


Ask = Callable[[str], Awaitable[Answer]]
"""A prompt -> the model's answer (`engines.evals.completions.ModelClient` on a real server)."""


async def run_items(
    items: Sequence[UtilityItem], ask: Ask, parallel: int = 1
) -> dict[str, tuple[str, list[CheckResult]]]:
    """Ask every item (``parallel`` at a time) and check its answer; a failed request fails ``non_empty``
    with the error as its detail."""
    sem = asyncio.Semaphore(parallel)

    async def one(item: UtilityItem) -> tuple[str, tuple[str, list[CheckResult]]]:
        async with sem:
            a = await ask(item.prompt())
        if a.error is not None:
            return item.key, (item.task, [CheckResult("non_empty", False, f"request failed: {a.error}")])
        return item.key, (item.task, check(a.text, item))

    return dict(await asyncio.gather(*(one(i) for i in items)))


# ------------------------------------------------------------------------------------------ judge rubric

RUBRIC_FILE = "utility_rubric.jsonl"


@cache
def rubric_prompts() -> dict[str, judging.JudgePrompt]:
    text = resources.files("engines.evals").joinpath("data", RUBRIC_FILE).read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        if line.strip():
            p = json.loads(line)
            out[p["name"]] = judging.JudgePrompt(p["name"], p["version"], p["system"], p["user"])
    if set(out) != {"title", "summary"} or len({p.version for p in out.values()}) != 1:
        raise ValueError(f"{RUBRIC_FILE}: expected the title and summary rubrics of one version, got {sorted(out)}")
    return out


RUBRIC_VERSION = next(iter(rubric_prompts().values())).version


def rubric_identity(jm: JudgeModel) -> str:
    """The judge as stored with a utility run and its scores: a changed judge or rubric makes them stale."""
    return f"{jm.provider_id}/{jm.model_id}@{RUBRIC_VERSION}"


def rubric_messages(item: UtilityItem, answer: str) -> list[dict[str, str]]:
    p = rubric_prompts()[item.task]
    user = p.user.format(text=item.text, answer=answer, max_words=item.max_words, min_words=item.min_words)
    return [{"role": "system", "content": p.system}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class RubricJudgment:
    raw: str | None  # the judge's text; None when the request failed
    parsed: bool
    score: float | None
    reason: str  # the parser's note, or the request error

    @property
    def failed(self) -> bool:
        """The request failed (nothing came back): the answer stays unscored and is judged again on resume."""
        return self.raw is None

    def as_detail(self, jm: JudgeModel) -> dict[str, Any]:
        return {"judge": rubric_identity(jm), "self_judged": jm.self_judged, "parsed": self.parsed,
                "score": self.score, "note": self.reason}  # fmt: skip

    def as_row(self, answer_id: int, jm: JudgeModel) -> dict[str, Any]:
        """The ``eval_judgments`` row (no score unless parsed)."""
        return {"answer_id": answer_id, "swapped": False, "judge_provider_id": jm.provider_id,
                "judge_model_id": jm.model_id, "judge_model_file": jm.model_file, "prompt_version": RUBRIC_VERSION,
                "sampling": dict(jm.sampling), "raw": self.raw, "parsed": self.parsed,
                "verdict": f"rubric: {self.reason}", "score": self.score if self.parsed else None,
                "self_judged": jm.self_judged}  # fmt: skip


async def judge_answer(client: httpx.AsyncClient, jm: JudgeModel, item: UtilityItem, answer: str) -> RubricJudgment:
    """The judge's rubric rating of one answer."""
    a = await ask(client, jm.url, jm.headers, jm.model_id, rubric_messages(item, answer), jm.sampling,
                  int(jm.sampling["seed"]), jm.timeout_s)  # fmt: skip
    if a.error is not None:
        return RubricJudgment(None, False, None, f"judge request failed: {a.error}")
    r = judging.parse_rating(a.text)
    return RubricJudgment(a.text, r.parsed, r.score if r.parsed else None, r.reason)


def rubric_metrics(judged: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, float]:
    """``[(task, detail.rubric)]`` of the judged answers -> the rubric metrics (see the module docstring)."""
    if not judged:
        return {}
    parsed = [(t, float(r["score"])) for t, r in judged if r.get("parsed") and r.get("score") is not None]
    out = {"rubric_unparseable": 1 - len(parsed) / len(judged)}
    if parsed:
        out["rubric_score"] = sum(v for _, v in parsed) / len(parsed)
    for task in ("title", "summary"):
        vs = [v for t, v in parsed if t == task]
        if vs:
            out[f"rubric_score/{task}"] = sum(vs) / len(vs)
    return out
