"""Data for the Evals page: cached reads of `warehouse.queries.evals`, and the pairwise leaderboard rebuilt from
stored verdicts with the engine's own rules (`engines.evals.judge.combine_orders`: both orders, a verdict that
moves with the order is a tie; `engines.evals.ratings`: Bradley–Terry with bootstrap 95 % intervals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
import streamlit as st

from engines.evals import judge as judging
from engines.evals.chat import turn_of
from engines.evals.ratings import Comparison, ModelRating, bradley_terry, win_rate_matrix
from ui import data
from ui.tables import Col
from warehouse.queries import evals as q
from warehouse.queries import fleet as q_fleet

TTL = 30


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def suites() -> list[str]:
    return q.suites(data.engine())


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def runs(suite: str | None = None) -> pl.DataFrame:
    return q.list_runs(data.engine(), suite)


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def leaderboard(suite: str) -> pl.DataFrame:
    return q.leaderboard(data.engine(), suite)


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def categories(run_ids: tuple[int, ...]) -> pl.DataFrame:
    return q.category_scores(data.engine(), list(run_ids))


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def quality_vs_speed(suite: str) -> pl.DataFrame:
    return q.quality_vs_speed(data.engine(), suite, leaderboard(suite))


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def needle_cells(run_ids: tuple[int, ...]) -> pl.DataFrame:
    return q.needle_cells(data.engine(), list(run_ids))


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def run_items(run_id: int) -> pl.DataFrame:
    return q.run_items(data.engine(), run_id)


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def answer(answer_id: int) -> dict[str, Any] | None:
    return q.answer_detail(data.engine(), answer_id)


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def compare(run_a: int, run_b: int) -> pl.DataFrame:
    return q.compare_runs(data.engine(), run_a, run_b)


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def pair_verdicts() -> pl.DataFrame:
    return q.pair_verdicts(data.engine())


def run_labels(df: pl.DataFrame) -> dict[int, str]:
    """run_id → "#12 provider/model (simulated) · suite · 2026-11-24 10:00 · status"."""
    out = {}
    for r in df.iter_rows(named=True):
        when = r["finished_at"] or r["started_at"]
        stamp = when.strftime("%Y-%m-%d %H:%M") if isinstance(when, datetime) else ""
        out[int(r["run_id"])] = f"#{r['run_id']} {r['label']} · {r['suite']} · {stamp} · {r['status']}"
    return out


@dataclass
class Pairwise:
    judge: str
    comparisons: list[Comparison]
    ratings: list[ModelRating]
    models: list[str]
    rates: dict[tuple[str, str], float]
    counts: dict[tuple[str, str], int]
    inconsistent: int = 0
    unparseable: int = 0
    incomplete: int = 0  # pairs with only one order stored
    judges: list[str] = field(default_factory=list)


def pairwise(verdicts: pl.DataFrame, simulated: frozenset[str] = frozenset(), judge: str | None = None,
             n_boot: int = 500, seed: int = 20261202) -> Pairwise:
    """The comparisons of one judge (default: the one with the most verdicts) from stored pairwise verdicts:
    each (first answer, other answer, turn) judged in both orders becomes one comparison (model of the first
    answer, the other's model, its win share), then Bradley–Terry ratings and the win-rate matrix."""
    judges = (verdicts.group_by("judge", "prompt_version").len().sort(["len", "judge"], descending=[True, False])
              if verdicts.height else verdicts)  # fmt: skip
    names = [f"{j}@{v}" for j, v in zip(judges["judge"], judges["prompt_version"], strict=True)] if judges.height else []
    pick = judge if judge in names else (names[0] if names else "")
    out = Pairwise(pick, [], [], [], {}, {}, judges=names)
    if not pick:
        return out
    j, _, version = pick.rpartition("@")
    halves: dict[tuple[int, int, int], dict[bool, dict[str, Any]]] = {}
    for r in verdicts.filter((pl.col("judge") == j) & (pl.col("prompt_version") == version)).iter_rows(named=True):
        turn = turn_of(r["verdict"])
        if turn is None:
            continue
        halves.setdefault((int(r["answer_id"]), int(r["other_answer_id"]), turn), {})[bool(r["swapped"])] = r
    for both in halves.values():
        if False not in both or True not in both:
            out.incomplete += 1
            continue
        first, swapped = both[False], both[True]
        o = judging.combine_orders(judging.parse_pair_verdict(first["raw"]), judging.parse_pair_verdict(swapped["raw"]))
        if not o.parsed or o.score_x is None:
            out.unparseable += 1
            continue
        out.inconsistent += not o.consistent
        a = q.model_label(first["provider_a"], first["model_a"], first["provider_a"] in simulated)
        b = q.model_label(first["provider_b"], first["model_b"], first["provider_b"] in simulated)
        out.comparisons.append((a, b, float(o.score_x)))
    if not out.comparisons:
        return out
    out.ratings = bradley_terry(out.comparisons, n_boot=n_boot, seed=seed)
    out.models = [r.model for r in out.ratings]
    out.rates = win_rate_matrix(out.comparisons)
    for a, b, _ in out.comparisons:
        out.counts[(a, b)] = out.counts.get((a, b), 0) + 1
        out.counts[(b, a)] = out.counts.get((b, a), 0) + 1
    return out


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def pairwise_board(judge: str | None = None) -> Pairwise:
    """`pairwise` of the stored verdicts (cached: the bootstrap refits the ratings 500 times, as `eval pairwise`
    does, so the page shows the CLI's intervals)."""
    return pairwise(pair_verdicts(), simulated(), judge)


def ratings_frame(p: Pairwise) -> pl.DataFrame:
    """The Bradley–Terry ratings as a table, best first."""
    rows = [{"label": r.model, "rating": r.rating, "low": r.low, "high": r.high, "comparisons": r.comparisons,
             "wins": r.wins} for r in p.ratings]  # fmt: skip
    return pl.DataFrame(rows, schema={"label": pl.Utf8, "rating": pl.Float64, "low": pl.Float64, "high": pl.Float64,
                                      "comparisons": pl.Int64, "wins": pl.Float64})  # fmt: skip


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=data.MAX_ENTRIES)
def simulated() -> frozenset[str]:
    """Providers that are simulated hosts (the demo fleet)."""
    return frozenset(q_fleet.simulated_providers(data.engine()))


LEADERBOARD = [
    Col("rank", "#", "int"),
    Col("label", "Provider / model", width="medium"),
    Col("score", "Score", "number", digits=3),
    Col("low", "95 % low", "number", digits=3),
    Col("high", "95 % high", "number", digits=3),
    Col("items", "Items", "int"),
    Col("stale", "Stale", "bool"),
    Col("stale_reason", "Stale because", width="medium"),
    Col("run_id", "Run", "int"),
    Col("finished_at", "Finished (UTC)", "datetime"),
    Col("suite_version", "Suite version"),
    Col("model_file", "Model file"),
    Col("judge", "Judge"),
]

RATINGS = [
    Col("label", "Provider / model", width="medium"),
    Col("rating", "Rating", "number", digits=1),
    Col("low", "95 % low", "number", digits=1),
    Col("high", "95 % high", "number", digits=1),
    Col("comparisons", "Comparisons", "int"),
    Col("wins", "Wins", "number", digits=2),
]

SPEED = [
    Col("label", "Provider / model", width="medium"),
    Col("score", "Score", "number", digits=3),
    Col("gen_tps", "Generation", "number", "tok/s", 1),
    Col("pareto", "Pareto front", "bool"),
    Col("bench_run_id", "Bench run", "int"),
]

ITEMS = [
    Col("item_key", "Item"),
    Col("category", "Category"),
    Col("sample_idx", "Sample", "int"),
    Col("passed", "Passed"),
    Col("score", "Score", "number", digits=3),
    Col("error", "Request error", width="medium"),
    Col("exit_code", "Sandbox exit", "int"),
    Col("killed_reason", "Killed because"),
    Col("judgments", "Judgments", "int"),
    Col("unparsed", "Unparseable", "int"),
    Col("completion_tokens", "Generated", "int", "tok"),
    Col("latency_ms", "Latency", "number", "ms"),
]

COMPARE = [
    Col("change", "Change"),
    Col("item_key", "Item"),
    Col("category", "Category"),
    Col("sample_idx", "Sample", "int"),
    Col("passed_a", "Passed in A"),
    Col("passed_b", "Passed in B"),
    Col("score_a", "Score A", "number", digits=3),
    Col("score_b", "Score B", "number", digits=3),
    Col("delta", "B − A", "number", digits=3),
]


def verdicts_as_text(df: pl.DataFrame, cols: tuple[str, ...] = ("passed", "passed_a", "passed_b")) -> pl.DataFrame:
    """Pass/fail columns as words: ``pass``, ``fail``, and ``—`` where there is none (a judged answer, a
    request that failed, an item the other run did not ask)."""
    return df.with_columns(
        pl.col(c).replace_strict({True: "pass", False: "fail"}, default=None, return_dtype=pl.Utf8)
        for c in cols if c in df.columns
    )
