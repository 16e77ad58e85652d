"""Chat-assistant quality: question sets in the MT-bench format, multi-turn asking, and grading by a judge model.

Question sets (`load_questions`): JSON lines with ``question_id`` (int or str), ``category`` (str),
``turns`` (a non-empty list of str: the user's messages, asked one after the other in one conversation) and an
optional ``reference`` (a list of str: a correct answer per turn, used for math / reasoning / coding). The
project's own set (``engines/evals/data/chat.jsonl``, 10 two-turn items written for BooControl) is the
``chat`` suite; any file of that format — e.g. MT-bench's ``question.jsonl`` from a path the user gives — is
the ``mt-bench`` suite (``--questions PATH``). A malformed file is a one-line error naming the line.

A chat answer is stored as one ``eval_answers`` row whose ``text`` is a JSON array with the assistant's reply
to each turn. Each turn is graded by the judge (`engines.evals.judge`, the whole conversation up to that
turn shown, the item's reference when its category uses one): one ``eval_judgments`` row per turn with the raw
judge text, whether it parsed, the rating, the judge model and model file, the prompt version, the judge's
sampling, the turn, and ``self_judged`` when the judge is the candidate. The answer's score is the mean of its
parsed turn ratings (NULL when none parsed — an unparseable judgment is never a score).

Metrics of a run (`chat_metrics`): ``judge_score`` (mean of parsed turn ratings, 1-10), ``judge_score/turn<k>``,
``judge_score/<category>``, and ``judge_unparseable`` (the share of judgments that did not parse).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from connectors.llama_swap_api import auth_headers
from core.providers import Provider
from engines.evals import judge as judging
from engines.evals.completions import Answer, ask
from engines.evals.suites import Item, Suite, content_version
from warehouse import lease


@dataclass(frozen=True)
class JudgeModel:
    """The judge a run uses: where it is asked, and what is stored with each judgment."""

    provider_id: str
    model_id: str
    url: str  # its chat-completions URL
    headers: Mapping[str, str] = field(default_factory=dict)
    sampling: Mapping[str, Any] = field(default_factory=lambda: dict(judging.DEFAULT_JUDGE_SAMPLING))
    model_file: str | None = None
    timeout_s: float = 600.0
    self_judged: bool = False  # set by `with_run`: the judge is the candidate

    @property
    def identity(self) -> str:
        """Stored as the run's and every score's ``judge``: a changed judge or judge prompt makes scores stale."""
        return f"{self.provider_id}/{self.model_id}@{judging.PROMPT_VERSION}"


def judge_for(provider: Provider, model_id: str, environ: Mapping[str, str] | None = None,
              timeout_s: float = 600.0) -> JudgeModel:  # fmt: skip
    """The judge ``provider/model`` of the registry, asked like any candidate (its API key from the
    environment, never stored)."""
    url = provider.spec.openai_base_url(provider.base_url) + "/chat/completions"
    return JudgeModel(provider.id, model_id, url, auth_headers(provider, environ), timeout_s=timeout_s)


def with_run(
    jm: JudgeModel, headers: Mapping[str, str], candidate_file: str | None, provider_id: str, model_id: str
) -> JudgeModel:
    """The judge as one run uses it: the run's headers, and whether it is the candidate itself (the same
    provider/model, or the same model file)."""
    same = (jm.provider_id, jm.model_id) == (provider_id, model_id)
    model_file = candidate_file if same else jm.model_file
    self_judged = judging.is_self_judged((provider_id, model_id), (jm.provider_id, jm.model_id), candidate_file,
                                         model_file)  # fmt: skip
    return replace(jm, headers=dict(headers), model_file=model_file, self_judged=self_judged)


@contextlib.asynccontextmanager
async def judge_lease(engine: Engine, jm: JudgeModel, purpose: str, wait_s: float | None = 30.0) -> AsyncIterator[None]:
    """Hold the judge host's lease (scope ``host``) while a pairwise comparison or a calibration asks it; held
    elsewhere (an action, a benchmark, an eval) is a one-line ValueError naming the holder."""
    keeper = lease.LeaseKeeper(engine.url.render_as_string(hide_password=False), jm.provider_id, lease.SCOPE_HOST,
                               purpose, holder=lease.holder_id("judge"), wait_s=wait_s)  # fmt: skip
    try:
        await keeper.__aenter__()
    except lease.LeaseHeld as exc:
        raise ValueError(f"refusing to ask the judge on {jm.provider_id}: {exc}") from None
    try:
        yield
    finally:
        await keeper.__aexit__(None, None, None)


# -------------------------------------------------------------------------------------------- questions


def parse_questions(text: str, source: str) -> list[dict[str, Any]]:
    """Validated question records from MT-bench-format JSON lines (a one-line ValueError names the bad line)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source} line {n}"
        try:
            q = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(q, dict):
            raise ValueError(f"{where}: expected a JSON object")
        qid, cat, turns, ref = q.get("question_id"), q.get("category"), q.get("turns"), q.get("reference")
        if not isinstance(qid, (int, str)) or isinstance(qid, bool) or str(qid) == "":
            raise ValueError(f"{where}: question_id must be an int or a non-empty string")
        if not isinstance(cat, str) or not cat:
            raise ValueError(f"{where}: category must be a non-empty string")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t for t in turns):
            raise ValueError(f"{where}: turns must be a non-empty list of non-empty strings")
        if ref is not None and (not isinstance(ref, list) or not all(isinstance(r, str) for r in ref)):
            raise ValueError(f"{where}: reference must be a list of strings")
        if str(qid) in seen:
            raise ValueError(f"{where}: duplicate question_id {qid}")
        seen.add(str(qid))
        rec: dict[str, Any] = {"question_id": str(qid), "category": cat, "turns": list(turns)}
        if ref:
            rec["reference"] = list(ref)
        out.append(rec)
    if not out:
        raise ValueError(f"{source}: no questions")
    return out


def _suite(name: str, records: Sequence[Mapping[str, Any]], source: str) -> Suite:
    items = tuple(
        Item(str(r["question_id"]), idx, str(r["category"]), str(r["turns"][0]),
             {k: r[k] for k in ("turns", "reference") if k in r})
        for idx, r in enumerate(records)
    )  # fmt: skip
    return Suite(name, "chat", items, source, content_version(name, items))


def load_questions(path: str | Path, name: str = "mt-bench") -> Suite:
    """An MT-bench-format question file the user gives."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"no question file at {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {p}: {exc}") from None
    return _suite(name, parse_questions(text, str(p)), str(p))


def suite_of(suite: str, questions: str | None) -> Suite:
    """The suite a run asks: a chat question file the user gave, else the named suite."""
    from engines.evals.suites import load_suite

    return load_questions(questions) if questions else load_suite(suite)


def load_chat() -> Suite:
    """The project's own chat questions (package data)."""
    text = resources.files("engines.evals").joinpath("data", "chat.jsonl").read_text(encoding="utf-8")
    return _suite("chat", parse_questions(text, "engines/evals/data/chat.jsonl"), "engines/evals/data/chat.jsonl")


# ------------------------------------------------------------------------------------------------ asking


async def ask_conversation(
    client: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    model_id: str,
    turns: Sequence[str],
    sampling: Mapping[str, Any],
    seed: int,
    timeout_s: float,
) -> Answer:
    """Every turn in one conversation (each reply fed back); ``text`` is the JSON array of replies. Tokens and
    latency are summed over the turns; the first failing turn ends it with its error."""
    history: list[dict[str, str]] = []
    replies: list[str] = []
    ptok = ctok = 0
    ms = 0.0
    last: Answer | None = None
    for turn in turns:
        history.append({"role": "user", "content": turn})
        last = await ask(client, url, headers, model_id, history, sampling, seed, timeout_s)
        ms += last.latency_ms
        if last.error is not None or last.text is None:
            return Answer(None, None, None, None, ms, None, last.error or "no reply")
        replies.append(last.text)
        history.append({"role": "assistant", "content": last.text})
        ptok += last.prompt_tokens or 0
        ctok += last.completion_tokens or 0
    assert last is not None
    return Answer(json.dumps(replies, ensure_ascii=False), last.finish_reason, ptok, ctok, ms,
                      {"turns": len(replies)}, None)  # fmt: skip


def replies_of(text: str | None) -> list[str]:
    """The per-turn replies stored in a chat answer's ``text`` ([] when it is not a chat answer)."""
    if not text:
        return []
    try:
        v = json.loads(text)
    except ValueError:
        return []
    return [str(x) for x in v] if isinstance(v, list) else []


# ----------------------------------------------------------------------------------------------- grading


@dataclass(frozen=True)
class TurnJudgment:
    turn: int  # 1-based
    raw: str | None  # the judge's text (None when the request failed)
    parsed: bool
    score: float | None
    reason: str  # the parser's note, or the request error
    messages: list[dict[str, str]]


async def judge_turns(
    client: httpx.AsyncClient, jm: JudgeModel, item: Item, replies: Sequence[str]
) -> list[TurnJudgment]:
    """One judgment per answered turn (the conversation up to that turn, the item's reference if it uses one)."""
    turns = list(item.payload.get("turns") or [item.prompt])
    reference = item.payload.get("reference")
    out = []
    for k in range(1, len(replies) + 1):
        msgs = judging.single_messages(turns[:k], replies[:k], item.category, reference)
        c = await ask(client, jm.url, jm.headers, jm.model_id, msgs, jm.sampling, int(jm.sampling["seed"]),
                           jm.timeout_s)  # fmt: skip
        if c.error is not None:
            out.append(TurnJudgment(k, None, False, None, f"judge request failed: {c.error}", msgs))
            continue
        r = judging.parse_rating(c.text)
        out.append(TurnJudgment(k, c.text, r.parsed, r.score, r.reason, msgs))
    return out


async def grade(
    client: httpx.AsyncClient, jm: JudgeModel, item: Item, text: str | None, provider_id: str, model_id: str,
    answer_id: int,
) -> tuple[dict[str, Any], list[dict[str, Any]], float | None]:
    """(answer detail, judgment rows, answer score) of one stored chat answer."""
    replies = replies_of(text)
    if not replies:
        return {"error": "no replies to judge"}, [], None
    js = await judge_turns(client, jm, item, replies)
    score = answer_score(js)
    detail = {"judge": jm.identity, "self_judged": jm.self_judged,
              "turns": [{"turn": j.turn, "parsed": j.parsed, "score": j.score, "note": j.reason} for j in js]}
    return detail, judgment_rows(answer_id, jm, js, jm.self_judged), score  # fmt: skip


def calibration_note(cal: Mapping[str, Any] | None) -> dict[str, Any]:
    """The judge's newest calibration as stored with a run (``trusted`` False when never calibrated)."""
    if cal is None:
        return {"trusted": False, "reason": "never calibrated against human labels (eval calibrate-judge)"}
    return {"trusted": bool(cal["trusted"]), "reason": str(cal["reason"]), "calibration_id": int(cal["id"]),
            "agreement": cal["agreement"], "prompt_version": cal["prompt_version"]}  # fmt: skip


def judge_failed(rows: Sequence[Mapping[str, Any]]) -> bool:
    """A judge request failed (no text came back): the answer is not scored, the run fails and the same
    command asks the judge again (a reply that does not parse is a result, not a failure)."""
    return any(r["raw"] is None for r in rows)


def answer_score(judgments: Sequence[TurnJudgment]) -> float | None:
    """The mean of the parsed turn ratings; None when none parsed."""
    vals = [j.score for j in judgments if j.parsed and j.score is not None]
    return sum(vals) / len(vals) if vals else None


def judgment_rows(
    answer_id: int, jm: JudgeModel, judgments: Sequence[TurnJudgment], self_judged: bool
) -> list[dict[str, Any]]:
    """``eval_judgments`` rows (the verdict column keeps the turn and what was read: ``turn 2: [[7]]``)."""
    return [
        {"answer_id": answer_id, "swapped": False, "judge_provider_id": jm.provider_id,
         "judge_model_id": jm.model_id, "judge_model_file": jm.model_file, "prompt_version": judging.PROMPT_VERSION,
         "sampling": dict(jm.sampling), "raw": j.raw, "parsed": j.parsed,
         "verdict": f"turn {j.turn}: {j.reason}", "score": j.score if j.parsed else None,
         "self_judged": self_judged}
        for j in judgments
    ]  # fmt: skip


_TURN = re.compile(r"^turn (\d+):")


def turn_of(verdict: str | None) -> int | None:
    m = _TURN.match(verdict or "")
    return int(m.group(1)) if m else None


def chat_metrics(
    categories: Mapping[int, str | None], judgments: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """``categories``: item id -> category; ``judgments``: ``eval_judgments`` rows with the ``item_id`` of their
    answer (the turn is read from ``verdict``). See the module docstring for the metric names."""
    if not judgments:
        return {}
    parsed = [j for j in judgments if j["parsed"] and j["score"] is not None]
    out: dict[str, float] = {"judge_unparseable": 1 - len(parsed) / len(judgments)}
    if parsed:
        out["judge_score"] = sum(float(j["score"]) for j in parsed) / len(parsed)
    groups: dict[str, list[float]] = {}
    for j in parsed:
        turn = turn_of(j.get("verdict"))
        if turn is not None:
            groups.setdefault(f"judge_score/turn{turn}", []).append(float(j["score"]))
        cat = categories.get(int(j["item_id"]))
        if cat:
            groups.setdefault(f"judge_score/{cat}", []).append(float(j["score"]))
    out.update({k: sum(v) / len(v) for k, v in sorted(groups.items())})
    return out
