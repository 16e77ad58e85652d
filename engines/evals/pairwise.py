"""Pairwise comparison of stored chat runs by a judge, and the Bradley–Terry leaderboard over them.

`compare_runs` takes two or more completed ``chat`` runs of the same suite version (different models), and for
every pair of runs, every item both answered and every turn, asks the judge to compare the two conversations
in both orders (`engines.evals.judge.pair_messages`). Each verdict is stored as an ``eval_judgments`` row:
``answer_id`` = the answer of the run given first, ``other_answer_id`` = the other run's, ``swapped`` = whether
the judge saw the other run's answer as A, ``raw`` text, ``parsed``, ``verdict`` (``turn N: [[A>B]]`` or why
it did not parse), ``score`` = the verdict from the shown A's side (+2..-2; NULL unless parsed). Verdicts
already stored for the same judge and prompt version are reused (a stopped comparison continues).

The pair's outcome is `engines.evals.judge.combine_orders` (a verdict that moves with the order is a tie), its
share of the win feeds `engines.evals.ratings.bradley_terry` (with bootstrap 95 % intervals).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from engines.evals import judge as judging
from engines.evals.chat import JudgeModel, judge_lease, replies_of, turn_of
from engines.evals.completions import ask
from engines.evals.ratings import Comparison, ModelRating, bradley_terry
from warehouse import eval_store


@dataclass
class PairwiseResult:
    ratings: list[ModelRating]
    comparisons: list[Comparison]
    asked: int = 0  # judge requests sent now
    reused: int = 0  # verdicts found stored
    unparseable: int = 0  # pairs with an unparseable half (count for nobody)
    inconsistent: int = 0  # pairs whose verdict moved with the order (ties)
    labels: dict[int, str] = field(default_factory=dict)  # run id -> model label


def _key(answer_id: int, other_id: int, swapped: bool, turn: int) -> tuple[int, int, bool, int]:
    return answer_id, other_id, swapped, turn


async def compare_runs(
    engine: Engine,
    client: httpx.AsyncClient,
    jm: JudgeModel,
    run_ids: Sequence[int],
    *,
    n_boot: int = 500,
    seed: int = 20261202,
    l2: float = 0.01,
    lease_wait_s: float | None = 30.0,
) -> PairwiseResult:
    """See the module docstring; the judge host's lease is held while the judge is asked. A one-line
    ValueError when the runs cannot be compared or the judge host is leased elsewhere."""
    async with judge_lease(engine, jm, f"pairwise comparison of runs {', '.join(map(str, run_ids))}", lease_wait_s):
        return await _compare(engine, client, jm, run_ids, n_boot, seed, l2)


async def _compare(engine: Engine, client: httpx.AsyncClient, jm: JudgeModel, run_ids: Sequence[int], n_boot: int,
                   seed: int, l2: float) -> PairwiseResult:  # fmt: skip
    if len(set(run_ids)) < 2:
        raise ValueError("pairwise comparison needs at least two different runs")
    with engine.connect() as conn:
        runs = [eval_store.get_run(conn, r) for r in run_ids]
        answers = {r: {a["item_key"]: a for a in eval_store.chat_answers(conn, r)} for r in run_ids}
        all_ids = [int(a["id"]) for by_key in answers.values() for a in by_key.values()]
        stored = eval_store.pair_judgments(conn, all_ids) if all_ids else []
    if len({r["suite_id"] for r in runs}) != 1:
        raise ValueError("pairwise comparison needs runs of the same suite version")
    labels = {int(r["id"]): f"{r['provider_id']}/{r['model_id']}" for r in runs}
    if len(set(labels.values())) != len(labels):
        raise ValueError("pairwise comparison needs runs of different models")
    bad = [f"#{r['id']} ({r['status']})" for r in runs if r["status"] != "completed"]
    if bad:
        raise ValueError(f"pairwise comparison needs completed runs: {', '.join(bad)}")
    have = {
        _key(int(j["answer_id"]), int(j["other_answer_id"]), bool(j["swapped"]), t): j
        for j in stored
        if j["judge_provider_id"] == jm.provider_id and j["judge_model_id"] == jm.model_id
        and j["prompt_version"] == judging.PROMPT_VERSION and (t := turn_of(j["verdict"])) is not None
    }  # fmt: skip
    out = PairwiseResult([], [], labels=labels)
    for rx, ry in itertools.combinations(run_ids, 2):
        for key in [k for k in answers[rx] if k in answers[ry]]:
            ax, ay = answers[rx][key], answers[ry][key]
            px, py = replies_of(ax["text"]), replies_of(ay["text"])
            payload = ax["payload"] or {}
            turns = list(payload.get("turns") or [payload.get("prompt", "")])
            for turn in range(1, min(len(px), len(py), len(turns)) + 1):
                verdicts = []
                for swapped in (False, True):
                    k = _key(int(ax["id"]), int(ay["id"]), swapped, turn)
                    if k in have:
                        out.reused += 1
                        verdicts.append(judging.parse_pair_verdict(have[k]["raw"]))
                        continue
                    first, second = (py, px) if swapped else (px, py)
                    msgs = judging.pair_messages(turns[:turn], first[:turn], second[:turn], ax["category"],
                                                 payload.get("reference"))  # fmt: skip
                    a = await ask(client, jm.url, jm.headers, jm.model_id, msgs, jm.sampling,
                                  int(jm.sampling["seed"]), jm.timeout_s)  # fmt: skip
                    out.asked += 1
                    v = (judging.parse_pair_verdict(a.text) if a.error is None
                         else judging.PairVerdict(False, None, None, f"judge request failed: {a.error}"))  # fmt: skip
                    verdicts.append(v)
                    row = {"answer_id": int(ax["id"]), "other_answer_id": int(ay["id"]), "swapped": swapped,
                           "judge_provider_id": jm.provider_id, "judge_model_id": jm.model_id,
                           "judge_model_file": jm.model_file, "prompt_version": judging.PROMPT_VERSION,
                           "sampling": dict(jm.sampling), "raw": a.text, "parsed": v.parsed,
                           "verdict": f"turn {turn}: {v.reason}", "score": v.value if v.parsed else None,
                           "self_judged": (jm.provider_id, jm.model_id) in {
                               (str(r["provider_id"]), str(r["model_id"])) for r in runs
                               if int(r["id"]) in (rx, ry)}}  # fmt: skip
                    with engine.begin() as conn:
                        eval_store.insert_judgments(conn, [row])
                o = judging.combine_orders(verdicts[0], verdicts[1])
                if not o.parsed or o.score_x is None:
                    out.unparseable += 1
                    continue
                out.inconsistent += not o.consistent
                out.comparisons.append((labels[rx], labels[ry], o.score_x))
    out.ratings = bradley_terry(out.comparisons, l2=l2, n_boot=n_boot, seed=seed)
    return out

