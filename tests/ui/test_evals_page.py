"""The Evals page (AppTest) on known runs (tests/reports/eval_seed.py) in the real test Postgres: leaderboard with
intervals and stale marks, pairwise ratings, quality vs speed, the needle grid, item drill-down, run vs run, and a
hostile model id shown as typed everywhere."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from tests.reports.eval_seed import BAD, Seeded, seed_evals
from tests.ui.conftest import run_page

PAGE = "pages/9_Evals.py"


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """Plotly figures of the page by their title."""
    out = {}
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        out[spec["layout"]["title"]["text"]] = spec
    return out


TABLE_COLUMN = {"evals_board_table": "rank", "evals_speed_table": "gen_tps", "evals_bt_table": "rating",
                "evals_items_table": "unparsed", "evals_cmp_table": "change"}  # a column only that table has


def frame(at: AppTest, key: str) -> Any:
    found = [d.value for d in at.dataframe if TABLE_COLUMN[key] in d.value.columns]
    assert len(found) == 1, f"no dataframe {key}"
    return found[0]


def test_empty_database_says_what_to_run(app_env: Engine) -> None:
    at = run_page(PAGE)
    assert not at.exception, at.exception
    assert "No eval runs yet" in at.info[0].value
    assert "`boocontrol eval run provider/model --suite ifeval --yes-take-over`" in at.info[0].value


def seeded_page(db: Engine) -> tuple[Seeded, AppTest]:
    s = seed_evals(db)
    at = run_page(PAGE)
    assert not at.exception, at.exception
    return s, at


def test_leaderboard_intervals_stale_and_hostile_name(app_env: Engine) -> None:
    s, at = seeded_page(app_env)
    assert at.selectbox(key="evals_suite").options == ["humaneval", "ifeval", "chat", "needle"]
    at.selectbox(key="evals_suite").set_value("ifeval").run()
    assert not at.exception, at.exception
    board = frame(at, "evals_board_table")
    assert list(board["label"]) == ["gpu/alpha", "gpu/beta", f"demo/{BAD} (simulated)"]
    assert list(board["score"]) == [0.875, 0.125, 0.0]
    assert list(board["low"]) == [0.625, 0.0, 0.0] and list(board["high"]) == [1.0, 0.375, 0.0]
    assert list(board["stale"]) == [False, False, True]

    fig = charts(at)["ifeval: prompt_strict, newest run per model"]
    dots = fig["data"][0]
    # Plotly reads tags in tick labels: the hostile id is escaped there, never drawn as markup
    assert dots["y"] == ["gpu/alpha", "gpu/beta", "demo/bad\"name&lt;b&gt; (simulated) (stale)"]
    assert dots["error_x"]["array"] == [0.125, 0.25, 0.0] and dots["error_x"]["arrayminus"] == [0.25, 0.125, 0.0]
    assert all(BAD not in json.dumps(c) for c in charts(at).values())

    warning = next(w.value for w in at.warning if "stale" in w.value)
    assert 'demo/bad\\"name\\<b\\> \\(simulated\\): model file changed' in warning
    assert any("simulated host" in w.value for w in at.warning)

    radar = charts(at)["Score per category"]  # two categories only: an explained empty figure
    assert radar["layout"]["annotations"][0]["text"].startswith("a radar needs at least three")

    speed = frame(at, "evals_speed_table")
    assert list(zip(speed["label"], speed["gen_tps"], speed["pareto"], strict=True)) == [
        ("gpu/alpha", 40.0, True), ("gpu/beta", 60.0, True), (f"demo/{BAD} (simulated)", 10.0, False)]  # fmt: skip
    front = [t for t in charts(at)["ifeval: quality vs speed"]["data"] if t.get("name") == "Pareto front"][0]
    assert front["x"] == [40.0, 60.0] and front["text"] == ["gpu/alpha", "gpu/beta"]


def test_pairwise_ratings_and_win_rates(app_env: Engine) -> None:
    _, at = seeded_page(app_env)
    ratings = frame(at, "evals_bt_table")
    assert list(ratings["label"]) == ["gpu/alpha", "gpu/beta"] and list(ratings["comparisons"]) == [3, 3]
    assert list(ratings["wins"]) == [2.25, 0.75]  # 0.75 + 1.0 + 0.5 (a verdict that moved with the order: a tie)
    matrix = charts(at)["Pairwise win rate (row vs column)"]["data"][0]
    assert matrix["z"] == [[None, 0.75], [0.25, None]]
    assert any("3 comparisons" in c.value and "1 moved with the order" in c.value for c in at.caption)


def test_needle_heatmap(app_env: Engine) -> None:
    s, at = seeded_page(app_env)
    heat = next(v for k, v in charts(at).items() if k.startswith(f"#{s.runs['R8']} gpu/alpha"))["data"][0]
    assert heat["x"] == ["500 tok", "1,000 tok"] and heat["y"] == ["depth 0", "depth 1", "several needles"]
    assert heat["z"][:2] == [[1.0, 1.0], [0.0, 1.0]] and heat["z"][2][0] is None
    assert abs(heat["z"][2][1] - 2 / 3) < 1e-12 and heat["text"][2] == ["", "2/3"]


def test_item_drill_down_shows_sandbox_and_judge_text(app_env: Engine) -> None:
    s, at = seeded_page(app_env)
    at.selectbox(key="evals_item_run").set_value(s.runs["R5"]).run()
    at.selectbox(key="evals_item").set_value(s.answers[("R5", "HumanEval/1")]).run()
    assert not at.exception, at.exception
    codes = [c.value for c in at.code]
    assert "def f1():" in codes and any("AssertionError: <b>wrong</b>" in c for c in codes)
    assert any("exit 1" in c.value for c in at.caption)

    at.selectbox(key="evals_item_run").set_value(s.runs["R6"]).run()
    at.selectbox(key="evals_item").set_value(s.answers[("R6", "c1")]).run()
    assert not at.exception, at.exception
    codes = [c.value for c in at.code]
    assert "[[8]]" in codes and "I'd say eight out of ten" in codes
    assert any("unparseable" in c.value for c in at.caption)
    items = frame(at, "evals_items_table")
    assert list(items["passed"]) == ["—", "—"] and list(items["unparsed"]) == [1, 0]


def test_compare_runs_lists_what_regressed(app_env: Engine) -> None:
    s, at = seeded_page(app_env)
    assert "Comparing needs two runs of humaneval; 1 is stored" in at.info[-1].value
    at.selectbox(key="evals_suite").set_value("ifeval").run()
    assert not at.exception, at.exception
    # by default: the newest run with an earlier run of the same model (alpha's #R2), against that run (#R1)
    assert at.selectbox(key="evals_cmp_b").value == s.runs["R2"]
    assert at.selectbox(key="evals_cmp_a").value == s.runs["R1"]
    assert at.selectbox(key="evals_cmp_a").options[0].startswith(f"#{s.runs['R1']} gpu/alpha · ifeval")
    assert next(m.value for m in at.metric if m.label == "Regressed") == "1"
    cmp = frame(at, "evals_cmp_table")
    assert list(cmp["change"])[:2] == ["regressed", "same"] and list(cmp["item_key"])[0] == "i2"
    assert list(cmp["passed_a"])[0] == "pass" and list(cmp["passed_b"])[0] == "fail"
