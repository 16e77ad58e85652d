"""The Evals figures on hand-made frames: what is drawn where, and fleet text escaped in every label."""

from __future__ import annotations

import polars as pl

from reports import eval_figures as ef
from warehouse.queries.evals import CATEGORY_SCHEMA

HOSTILE = 'p/bad"name<b>%{x}'
ESCAPED = "p/bad\"name&lt;b&gt;&#37;{x}"


def test_category_radar_closes_each_run_and_escapes_labels() -> None:
    cats = pl.DataFrame(
        [(1, "json", 1.0, 2), (1, "length", 0.5, 4), (1, "<i>case</i>", 0.25, 4), (2, "json", 0.0, 2),
         (2, "length", 1.0, 4)],  # run 2 has no answer in one category: a gap, not a zero
        schema=CATEGORY_SCHEMA, orient="row",
    )  # fmt: skip
    fig = ef.category_radar(cats, {1: HOSTILE, 2: "p/other"}, "prompt_strict")
    one, two = fig.data
    assert list(one.theta) == ["&lt;i&gt;case&lt;/i&gt;", "json", "length", "&lt;i&gt;case&lt;/i&gt;"]
    assert list(one.r) == [0.25, 1.0, 0.5, 0.25] and list(two.r) == [None, 0.0, 1.0, None]
    assert one.name == ESCAPED
    assert fig.layout.polar.radialaxis.range == (0, 1.0)


def test_interval_dots_and_win_matrix_escape_model_ids() -> None:
    fig = ef.interval_dots([HOSTILE, "p/ok"], [0.5, 0.25], [0.25, None], [1.0, None], "t", ef.score_axis("pass@1"),
                           [True, False])  # fmt: skip
    dots = fig.data[0]
    assert list(dots.y) == [ESCAPED + " (stale)", "p/ok"]
    assert list(dots.error_x.array) == [0.5, 0.0] and list(dots.error_x.arrayminus) == [0.25, 0.0]
    m = ef.win_rate_matrix([HOSTILE, "p/ok"], {(HOSTILE, "p/ok"): 0.75, ("p/ok", HOSTILE): 0.25},
                           {(HOSTILE, "p/ok"): 4, ("p/ok", HOSTILE): 4})  # fmt: skip
    assert list(m.data[0].x) == [ESCAPED, "p/ok"] and list(m.data[0].text[0]) == ["", "75% of 4"]


def test_quality_vs_speed_draws_the_front_in_speed_order() -> None:
    df = pl.DataFrame({"label": ["a", "b", "c", "d"], "metric": ["pass@1"] * 4, "score": [0.9, 0.5, 0.4, 0.8],
                       "gen_tps": [10.0, 50.0, 20.0, None], "pareto": [True, True, False, False]})  # fmt: skip
    fig = ef.quality_vs_speed(df, "humaneval")
    names = [t.name for t in fig.data]
    assert names == ["dominated", "Pareto front", None]
    assert list(fig.data[2].x) == [10.0, 50.0] and list(fig.data[2].y) == [0.9, 0.5]  # the front's line
    assert list(fig.data[0].text) == ["c"]  # d has no benchmark: not drawn
