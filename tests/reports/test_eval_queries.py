"""The Evals cockpit's read side (`warehouse.queries.evals`) on known runs (tests/reports/eval_seed.py): the
leaderboards and their bootstrap intervals, categories, quality vs speed, the needle grid, run vs run, digest
rows, all against hand-computed values."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from core.stats import ratio_interval
from tests.reports.eval_seed import BAD, W0, seed_evals
from warehouse.queries import evals as q


def test_ratio_interval_matches_the_exact_bootstrap_distribution() -> None:
    # 7 of 8: the bootstrap mean is Binomial(8, 7/8)/8; P(<= 4/8) = 0.011, P(<= 5/8) = 0.067 -> 2.5th pct 5/8
    assert ratio_interval([1] * 7 + [0], [1] * 8) == (0.875, 0.625, 1.0)
    # 1 of 8 mirrors it
    assert ratio_interval([1] + [0] * 7, [1] * 8) == (0.125, 0.0, 0.375)
    # ratings: units (8, 1) and (10, 2): resampled means 8 (1/4), 6 (1/2), 5 (1/4)
    assert ratio_interval([8, 10], [1, 2]) == (6.0, 5.0, 8.0)
    assert ratio_interval([1, 2], [0, 0]) is None
    with pytest.raises(ValueError):
        ratio_interval([1], [1, 1])


def test_leaderboard_order_intervals_and_stale_marks(db: Engine) -> None:
    s = seed_evals(db)
    board = q.leaderboard(db, "ifeval")
    rows = board.select("rank", "label", "run_id", "metric", "score", "low", "high", "items", "stale",
                        "simulated").rows()  # fmt: skip
    assert rows == [
        (1, "gpu/alpha", s.runs["R2"], "prompt_strict", 0.875, 0.625, 1.0, 8, False, False),  # newest run, not R1
        (2, "gpu/beta", s.runs["R3"], "prompt_strict", 0.125, 0.0, 0.375, 8, False, False),
        (3, f"demo/{BAD} (simulated)", s.runs["R4"], "prompt_strict", 0.0, 0.0, 0.0, 8, True, True),
    ]
    assert board["stale_reason"].to_list()[2] == "model file changed: /models/a.gguf -> /models/b.gguf"
    assert board["stale_since"].to_list()[2] is not None and board["model_file"].to_list()[0] == "m.gguf"

    chat = q.leaderboard(db, "chat")
    assert chat.select("label", "metric", "score", "low", "high", "items").rows() == [
        ("gpu/alpha", "judge_score", 6.0, 5.0, 8.0, 2),  # (8 + 6 + 4) / 3; the unparseable turn counts for nothing
        ("gpu/beta", "judge_score", 4.0, 3.0, 5.0, 2),
    ]
    assert q.leaderboard(db, "humaneval").select("metric", "score", "low", "high").rows() == [("pass@1", 0.5, 0.0, 1.0)]
    needle = q.leaderboard(db, "needle")
    assert needle["metric"].to_list() == ["accuracy"] and needle["score"][0] == pytest.approx(11 / 15)
    assert q.leaderboard(db, "agentic").height == 0
    assert q.suites(db) == ["humaneval", "ifeval", "chat", "needle"]


def test_headline_metric_per_suite_kind() -> None:
    assert q.headline_metric("agentic", ["solved@1", "solved@3", "solved@3:fix", "mean_turns_solved"]) == "solved@3"
    assert q.headline_metric("code", ["pass@1", "pass@5"]) == "pass@1"
    assert q.headline_metric("chat", ["judge_unparseable"]) is None


def test_categories_speed_pareto_and_needle_cells(db: Engine) -> None:
    s = seed_evals(db)
    cats = q.category_scores(db, [s.runs["R2"], s.runs["R3"]])
    assert cats.rows() == [(s.runs["R2"], "format", 1.0, 4), (s.runs["R2"], "length", 0.75, 4),
                           (s.runs["R3"], "format", 0.25, 4), (s.runs["R3"], "length", 0.0, 4)]  # fmt: skip

    qs = q.quality_vs_speed(db, "ifeval")
    # alpha: its newest bench run's lowest level (40 tok/s, not 30 at level 2 nor the older run's 99)
    assert qs.select("label", "score", "gen_tps", "pareto").rows() == [
        ("gpu/alpha", 0.875, 40.0, True),
        ("gpu/beta", 0.125, 60.0, True),
        (f"demo/{BAD} (simulated)", 0.0, 10.0, False),  # alpha is better and faster
    ]
    assert q.pareto_flags([1, 2, 2, 3], [3, 2, 2, 1]) == [True, True, True, True]
    assert q.pareto_flags([1, 2], [1, 1]) == [False, True]

    cells = q.needle_cells(db, [s.runs["R8"]])
    assert cells.select("target_tokens", "depth", "found", "asked").rows() == [
        (500, 0.0, 1, 1), (500, 1.0, 0, 1), (1000, 0.0, 1, 1), (1000, 1.0, 1, 1), (1000, None, 2, 3)]  # fmt: skip
    assert cells["accuracy"].to_list()[:4] == [1.0, 0.0, 1.0, 1.0]
    assert cells["accuracy"][4] == pytest.approx(2 / 3)


def test_run_vs_run_regressions_first(db: Engine) -> None:
    s = seed_evals(db)
    cmp = q.compare_runs(db, s.runs["R1"], s.runs["R2"])
    assert cmp.height == 8
    assert cmp.row(0, named=True) | {"answer_a": None, "answer_b": None} == {
        "item_key": "i2", "category": "length", "sample_idx": 0, "passed_a": True, "passed_b": False,
        "score_a": 1.0, "score_b": 0.0, "delta": -1.0, "change": "regressed", "answer_a": None, "answer_b": None}  # fmt: skip
    assert cmp["change"].to_list()[1:] == ["same"] * 7
    back = q.compare_runs(db, s.runs["R2"], s.runs["R1"])
    assert back.filter(back["change"] != "same").select("item_key", "change").rows() == [("i2", "fixed")]
    chat = q.compare_runs(db, s.runs["R7"], s.runs["R6"])  # judged answers: no pass/fail, a score delta
    assert chat.select("item_key", "change", "delta").rows() == [("c1", "higher score", 3.0),
                                                                 ("c2", "higher score", 2.0)]  # fmt: skip


def test_drill_down_has_prompt_answer_judgments_and_sandbox(db: Engine) -> None:
    s = seed_evals(db)
    items = q.run_items(db, s.runs["R5"])
    assert items.select("item_key", "passed", "exit_code").rows() == [("HumanEval/0", True, 0), ("HumanEval/1", False, 1)]
    d = q.answer_detail(db, s.answers[("R5", "HumanEval/1")])
    assert d is not None and d["payload"]["prompt"] == "def f1():\n" and d["text"].startswith("```python")
    assert d["sandbox"]["exit_code"] == 1 and "AssertionError" in d["sandbox"]["stderr"] and d["judgments"] == []
    c = q.answer_detail(db, s.answers[("R6", "c1")])
    assert c is not None
    singles = [(j["raw"], j["parsed"], j["score"]) for j in c["judgments"] if j["other_answer_id"] is None]
    assert singles == [("[[8]]", True, 8.0), ("I'd say eight out of ten", False, None)]
    chat_items = q.run_items(db, s.runs["R6"])
    assert chat_items.select("item_key", "judgments", "unparsed").rows() == [("c1", 2, 1), ("c2", 2, 0)]


def test_digest_rows_new_scores_regressions_and_stale(db: Engine) -> None:
    s = seed_evals(db)
    rows = q.period_scores(db, W0, W0 + timedelta(days=7))
    assert rows.select("suite", "provider_id", "model_id", "metric", "prev_run_id", "prev_value", "delta",
                       "items_regressed").rows() == [  # fmt: skip
        ("chat", "gpu", "alpha", "judge_score", None, None, None, None),
        ("chat", "gpu", "beta", "judge_score", None, None, None, None),
        ("humaneval", "gpu", "alpha", "pass@1", None, None, None, None),
        ("ifeval", "demo", BAD, "prompt_strict", None, None, None, None),
        ("ifeval", "gpu", "alpha", "prompt_strict", s.runs["R1"], 1.0, -0.125, 1),
        ("ifeval", "gpu", "beta", "prompt_strict", None, None, None, None),
        ("needle", "gpu", "alpha", "accuracy", None, None, None, None),
    ]
    assert rows["simulated"].to_list() == [False, False, False, True, False, False, False]
    # the week before holds only R1
    before = q.period_scores(db, W0 - timedelta(days=7), W0)
    assert before.select("run_id", "value").rows() == [(s.runs["R1"], 1.0)]
    stale = q.stale_headlines(db)
    assert stale.select("suite", "model_id", "run_id", "value").rows() == [("ifeval", BAD, s.runs["R4"], 0.0)]
    # as of the start of the week R4 did not exist yet; an hour after it finished it was not marked yet
    assert q.stale_headlines(db, W0).height == 0
    assert q.stale_headlines(db, W0 + timedelta(days=3, minutes=30)).height == 0
    assert q.stale_headlines(db, W0 + timedelta(days=3, hours=2)).height == 1
