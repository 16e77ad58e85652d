"""Cached data for the Routing page: the policy book, the measured fleet facts, and rankings as tables.

The ranking is `gateway.ranking.rank` on `gateway.facts.load_facts`; the gateway's in-flight counters and
cooldowns live in the gateway process and are not visible here, so the page ranks as if nothing were in
flight or cooling down (and says so).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import streamlit as st

from core.settings import get_settings
from gateway.facts import FleetFacts, load_facts
from gateway.policies import Policy, PolicyBook, PolicyWatcher
from gateway.ranking import Need, Ranking, rank
from ui.data import engine
from ui.tables import Col

FACTS_TTL = 5


@st.cache_resource(show_spinner=False)
def _watcher(path: str) -> PolicyWatcher:
    from pathlib import Path

    return PolicyWatcher(Path(path))


def policies() -> tuple[PolicyBook, str | None]:
    """The current policy book (the last good one while the file has an error) and that error, if any."""
    w = _watcher(str(get_settings().gateway_policies_path))
    book = w.current()
    return book, w.error


@st.cache_data(ttl=FACTS_TTL, show_spinner=False, max_entries=8)
def _facts(at: datetime) -> FleetFacts:
    return load_facts(engine(), at)


def facts(at: datetime) -> FleetFacts:
    """The facts as of ``at`` rounded down to FACTS_TTL seconds, so every ranking of one page run (and of the
    runs within those seconds) reads them once."""
    return _facts(at - timedelta(seconds=at.second % FACTS_TTL, microseconds=at.microsecond))


def ranked(policy: Policy, need: Need, at: datetime) -> Ranking:
    return rank(policy, need, facts(at), {}, ())


CANDIDATE_COLS = [
    Col("rank", "#", "int"),
    Col("target", "Target", width="medium"),
    Col("score", "Score", "number", digits=3),
    Col("quality", "Quality", "number", digits=2),
    Col("speed", "Speed", "number", digits=2),
    Col("energy", "Energy", "number", digits=2),
    Col("expected_s", "Expected", "number", unit="s", digits=1),
    Col("cold_s", "Load time", "number", unit="s", digits=1),
    Col("why", "Why", width="large"),
]
SKIPPED_COLS = [Col("target", "Target", width="medium"), Col("why", "Skipped because", width="large")]


def candidates_table(r: Ranking) -> pl.DataFrame:
    """One row per candidate in rank order: score, each factor, expected time, load time paid, the reasons."""
    rows = [
        {
            "rank": i,
            "target": c.key,
            "score": c.score,
            "quality": c.factors["quality"],
            "speed": c.factors["speed"],
            "energy": c.factors["energy"],
            "expected_s": c.factors["expected_ms"] / 1000 if "expected_ms" in c.factors else None,
            "cold_s": c.factors["cold_ms"] / 1000,
            "why": " · ".join(c.reasons),
        }
        for i, c in enumerate(r.candidates, 1)
    ]
    schema = {"rank": pl.Int64, "target": pl.Utf8, "score": pl.Float64, "quality": pl.Float64, "speed": pl.Float64,
              "energy": pl.Float64, "expected_s": pl.Float64, "cold_s": pl.Float64, "why": pl.Utf8}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def skipped_table(r: Ranking) -> pl.DataFrame:
    return pl.DataFrame([{"target": k, "why": w} for k, w in r.skipped], schema={"target": pl.Utf8, "why": pl.Utf8})
