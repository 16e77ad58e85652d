"""The weekly digest's evals section on known runs (tests/reports/eval_seed.py): new scores, the regression
against the previous run, stale scores — in the summary, the Markdown (fleet text escaped) and the HTML."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from reports.digest import build_digest, render_digest
from tests.reports.eval_seed import BAD, W0, seed_evals


def test_weekly_digest_has_eval_scores_regressions_and_stale(db: Engine) -> None:
    s = seed_evals(db)
    rep = render_digest(build_digest(db, "weekly", W0))
    ev = rep.summary["evals"]
    assert ev["new_scores"] == 7 and ev["stale"] == 1
    assert ev["regressions"] == [{
        "suite": "ifeval", "provider_id": "gpu", "model_id": "alpha", "run_id": s.runs["R2"],
        "metric": "prompt_strict", "value": 0.875, "prev_run_id": s.runs["R1"], "prev_value": 1.0, "delta": -0.125,
        "items_regressed": 1}]  # fmt: skip

    md = rep.markdown
    scores = md.split("## Eval scores this week")[1].split("## Eval regressions")[0]
    assert "| ifeval | gpu | alpha | prompt\\_strict | 0.875 | 1.000 | -0.125 | 1 |" in scores
    assert "| humaneval | gpu | alpha | pass@1 | 0.500 | — | — | — |" in scores
    # the simulated host is labelled; the hostile model id is escaped whole, its stale score marked
    assert '| ifeval | demo \\(simulated\\) | bad\\"name\\<b\\> | prompt\\_strict \\(stale\\) | 0.000 |' in scores
    regress = md.split("## Eval regressions")[1].split("## Stale eval scores")[0]
    assert regress.count("| ifeval |") == 1 and "| 1.000 | 0.875 | -0.125 | 1 |" in regress
    stale = md.split("## Stale eval scores")[1]
    assert "model file changed\\: /models/a\\.gguf \\-\\> /models/b\\.gguf" in stale
    assert BAD not in md
    assert "bad&quot;name&lt;b&gt;" in rep.html and BAD not in rep.html


def test_weekly_digest_without_eval_runs_says_how_to_start_one(db: Engine) -> None:
    seed_evals(db)
    rep = render_digest(build_digest(db, "weekly", W0 + timedelta(days=7)))  # nothing completed that week
    assert rep.summary["evals"] == {"new_scores": 0, "regressions": [], "stale": 1}
    assert "No eval run completed in this period" in rep.markdown
    assert "No regression against the previous run" in rep.markdown
    daily = render_digest(build_digest(db, "daily", W0 + timedelta(days=1)))
    assert "evals" not in daily.summary and "Eval scores" not in daily.markdown
