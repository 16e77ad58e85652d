"""The default judge: the best-scoring local model, when the user names no ``--judge``.

The rule (deterministic; the same stored scores always give the same judge):

1. **Local only.** Models of the registry's providers whose kind is local (`core.kinds`: llama-swap, vLLM,
   Ollama). An ``openai``-kind provider may be a paid cloud API: it judges only when named with ``--judge``.
2. **Scored by code, on the whole current suite.** The ranking reads the fresh (not stale) scores of the
   ``ifeval`` suite — instruction following checked by code, so no judge is needed to choose the judge —
   and only those computed on every item of the suite's current version (a ``--limit 3`` run is not
   comparable with a full one). Per provider/model, its newest such run counts.
3. **Order.** Highest ``prompt_strict`` (items with every instruction followed), then highest
   ``instruction_strict``, then ``provider/model`` alphabetically.

A chat run uses one default judge for every candidate (so their judge scores are comparable), even when that
judge is the candidate itself: such judgments stay flagged ``self_judged``. With no such score the choice is
a one-line `NoDefaultJudge` naming ``--judge provider/model``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from core.providers import Provider
from engines.evals.suites import load_suite
from warehouse import eval_store

RANK_SUITE = "ifeval"
RANK_METRICS = ("prompt_strict", "instruction_strict")


class NoDefaultJudge(ValueError):
    """No local model has a score to be chosen by."""


@dataclass(frozen=True)
class JudgeChoice:
    provider_id: str
    model_id: str
    run_id: int
    prompt_strict: float
    instruction_strict: float
    considered: int  # local models with a full, fresh ifeval score

    @property
    def model(self) -> str:
        return f"{self.provider_id}/{self.model_id}"

    def describe(self) -> str:
        return (f"{self.model} (default judge: the best of {self.considered} local model(s) on the {RANK_SUITE} "
                f"suite, prompt_strict {self.prompt_strict:.3f}, run #{self.run_id})")  # fmt: skip


def choose_judge(
    scores: Iterable[Mapping[str, Any]], providers: Sequence[Provider], suite_version: str, n_items: int
) -> JudgeChoice:
    """The judge by the module's rule from ``eval_scores`` rows (any suite; the others are ignored)."""
    local = {p.id for p in providers if p.spec.local}
    runs: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    for s in scores:
        if (s["suite_name"] != RANK_SUITE or s["suite_version"] != suite_version or s["stale_reason"] is not None
                or s["provider_id"] not in local or int(s["n_items"]) != n_items or s["metric"] not in RANK_METRICS):
            continue  # fmt: skip
        runs.setdefault((s["provider_id"], s["model_id"]), {}).setdefault(int(s["run_id"]), {})[s["metric"]] = float(
            s["value"]
        )
    ranked = []
    for (pid, mid), by_run in runs.items():
        run_id = max(by_run)  # the model's newest full, fresh run
        m = by_run[run_id]
        if "prompt_strict" in m:
            ranked.append((-m["prompt_strict"], -m.get("instruction_strict", 0.0), pid, mid, run_id))
    if not ranked:
        raise NoDefaultJudge(
            "no --judge given, and no local model has a fresh score on the whole ifeval suite to choose the default "
            "judge by: give --judge provider/model (or run `eval run provider/model --suite ifeval` on a local model)"
        )
    ranked.sort()
    ps, ins, pid, mid, run_id = ranked[0]
    return JudgeChoice(pid, mid, run_id, -ps, -ins, len(ranked))


def default_judge(conn: Connection, providers: Sequence[Provider]) -> JudgeChoice:
    """`choose_judge` on the stored scores and the current ifeval suite."""
    suite = load_suite(RANK_SUITE)
    rows = eval_store.scores(conn, suite=RANK_SUITE, include_stale=False)
    return choose_judge(rows, providers, suite.version, len(suite.items))
