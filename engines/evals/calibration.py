"""Judge calibration: how often a judge agrees with people on pairwise comparisons, and whether it may be
trusted (plain functions; the flow and CLI are thin shells).

Labels file (JSON lines), one human pairwise judgment per line::

    {"id": "q81-t1", "category": "writing", "turns": ["user turn 1", ...],
     "answers_a": ["reply 1", ...], "answers_b": ["reply 1", ...], "winner": "a" | "b" | "tie",
     "reference": ["..."]}            # reference optional (used for math / reasoning / coding)

The judge sees each pair in both orders (`engines.evals.judge.combine_orders`: a verdict that moves with the
order is a tie). **Non-tie agreement** = of the pairs where both the person and the judge name a winner, the
share where they name the same one (the MT-bench paper's "agreement without ties"). A judge is ``trusted``
only with at least `MIN_NON_TIE` such pairs and a non-tie agreement of at least `TRUST_THRESHOLD` (80 %);
below that it is refused, with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from engines.evals import judge as judging
from engines.evals.chat import JudgeModel, judge_lease
from engines.evals.completions import ask
from warehouse import eval_store

TRUST_THRESHOLD = 0.8
MIN_NON_TIE = 10
WINNERS = ("a", "b", "tie")


@dataclass(frozen=True)
class Label:
    id: str
    category: str | None
    turns: tuple[str, ...]
    answers_a: tuple[str, ...]
    answers_b: tuple[str, ...]
    winner: str  # a | b | tie
    reference: tuple[str, ...] | None = None


def parse_labels(text: str, source: str) -> list[Label]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source} line {n}"
        try:
            r = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(r, dict):
            raise ValueError(f"{where}: expected a JSON object")
        for k in ("turns", "answers_a", "answers_b"):
            v = r.get(k)
            if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
                raise ValueError(f"{where}: {k} must be a non-empty list of strings")
        if not len(r["answers_a"]) == len(r["answers_b"]) <= len(r["turns"]):
            raise ValueError(f"{where}: answers_a and answers_b need the same number of replies (at most one per turn)")
        if r.get("winner") not in WINNERS:
            raise ValueError(f"{where}: winner must be one of {', '.join(WINNERS)}")
        ref = r.get("reference")
        out.append(Label(str(r.get("id", n)), r.get("category"), tuple(r["turns"]), tuple(r["answers_a"]),
                         tuple(r["answers_b"]), r["winner"], tuple(ref) if isinstance(ref, list) else None))  # fmt: skip
    if not out:
        raise ValueError(f"{source}: no labels")
    return out


def load_labels(path: str | Path) -> list[Label]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"no labels file at {p}")
    return parse_labels(p.read_text(encoding="utf-8"), str(p))


@dataclass(frozen=True)
class CalibrationReport:
    judge: str
    pairs: int  # labels
    parsed: int  # pairs whose both judgments parsed
    non_tie: int  # parsed pairs where the person and the judge both name a winner
    agreed: int  # ... and the same one
    agreement: float | None  # agreed / non_tie
    agreement_with_ties: float | None  # judge == person (ties included) over parsed pairs
    inconsistent: int  # pairs whose verdict moved with the order (counted as ties)
    trusted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_winner(outcome: judging.PairOutcome) -> str | None:
    """The judge's winner between A (= x, shown first in the first order) and B: a | b | tie; None unparsed."""
    w = outcome.winner
    return None if w is None else {"x": "a", "y": "b", "tie": "tie"}[w]


def report(judge_id: str, labels: Sequence[Label], outcomes: Sequence[judging.PairOutcome],
           threshold: float = TRUST_THRESHOLD, min_non_tie: int = MIN_NON_TIE) -> CalibrationReport:  # fmt: skip
    """Agreement of the judge's outcomes (one per label, same order) with the people's labels."""
    if len(labels) != len(outcomes):
        raise ValueError("one outcome per label")
    parsed = agreed = non_tie = same = inconsistent = 0
    for lab, o in zip(labels, outcomes, strict=True):
        w = judge_winner(o)
        if w is None:
            continue
        parsed += 1
        inconsistent += not o.consistent
        same += w == lab.winner
        if w != "tie" and lab.winner != "tie":
            non_tie += 1
            agreed += w == lab.winner
    agreement = agreed / non_tie if non_tie else None
    if non_tie < min_non_tie:
        trusted, why = False, f"not trusted: only {non_tie} non-tie pairs (need {min_non_tie})"
    elif agreement is not None and agreement >= threshold:
        trusted, why = True, f"trusted: {agreement:.1%} non-tie agreement on {non_tie} pairs (>= {threshold:.0%})"
    else:
        trusted, why = False, f"not trusted: {agreement:.1%} non-tie agreement on {non_tie} pairs (< {threshold:.0%})"
    return CalibrationReport(judge_id, len(labels), parsed, non_tie, agreed, agreement,
                             same / parsed if parsed else None, inconsistent, trusted, why)  # fmt: skip


async def judge_pair(client: httpx.AsyncClient, jm: JudgeModel, lab: Label) -> judging.PairOutcome:
    """The judge's verdict on one labelled pair, asked in both orders."""
    async def one(first: Sequence[str], second: Sequence[str]) -> judging.PairVerdict:
        msgs = judging.pair_messages(lab.turns, first, second, lab.category, lab.reference)
        a = await ask(client, jm.url, jm.headers, jm.model_id, msgs, jm.sampling, int(jm.sampling["seed"]),
                      jm.timeout_s)  # fmt: skip
        return judging.parse_pair_verdict(a.text) if a.error is None else judging.PairVerdict(False, None, None, a.error)

    return judging.combine_orders(await one(lab.answers_a, lab.answers_b), await one(lab.answers_b, lab.answers_a))


async def calibrate(client: httpx.AsyncClient, jm: JudgeModel, labels: Sequence[Label],
                    threshold: float = TRUST_THRESHOLD, min_non_tie: int = MIN_NON_TIE) -> CalibrationReport:  # fmt: skip
    outcomes = [await judge_pair(client, jm, lab) for lab in labels]
    return report(jm.identity, labels, outcomes, threshold, min_non_tie)


def labels_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()


def calibration_row(r: CalibrationReport, jm: JudgeModel, labels_source: str, labels_hash: str,
                    threshold: float = TRUST_THRESHOLD) -> dict[str, Any]:  # fmt: skip
    """The ``eval_judge_calibrations`` row of a report."""
    return {"judge_provider_id": jm.provider_id, "judge_model_id": jm.model_id, "judge": r.judge,
            "prompt_version": judging.PROMPT_VERSION, "sampling": dict(jm.sampling), "labels_source": labels_source,
            "labels_sha256": labels_hash, "pairs": r.pairs, "parsed": r.parsed, "non_tie": r.non_tie,
            "agreed": r.agreed, "agreement": r.agreement, "agreement_with_ties": r.agreement_with_ties,
            "inconsistent": r.inconsistent, "threshold": threshold, "trusted": r.trusted, "reason": r.reason}  # fmt: skip


def run_calibration(engine: Engine, jm: JudgeModel, labels_path: str | Path,
                    threshold: float = TRUST_THRESHOLD, min_non_tie: int = MIN_NON_TIE) -> tuple[CalibrationReport, int]:  # fmt: skip
    """Load the labels, ask the judge, store the result; returns the report and its row id. A bad labels file
    is a one-line ValueError before anything is asked."""
    labels = load_labels(labels_path)

    async def go() -> CalibrationReport:
        async with judge_lease(engine, jm, f"judge calibration ({jm.model_id})"):
            async with httpx.AsyncClient(trust_env=False) as client:
                return await calibrate(client, jm, labels, threshold, min_non_tie)

    r = asyncio.run(go())
    with engine.begin() as conn:
        rid = eval_store.insert_calibration(conn, calibration_row(r, jm, str(labels_path), labels_sha256(labels_path),
                                                                  threshold))  # fmt: skip
    return r, rid
