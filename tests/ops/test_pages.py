"""The Thrash and Alerts pages render the known data (AppTest against the real test Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from tests.ops import scripted
from tests.ui.conftest import app_env, run_page  # noqa: F401 - fixture

__all__ = ["app_env"]


def metric(at, label: str) -> str:  # type: ignore[no-untyped-def]
    values = [str(m.value) for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return values[0]


def test_thrash_page_shows_the_scripted_sequence(app_env: Engine) -> None:
    now = datetime.now(UTC)
    # the scripted hour ends 2 hours ago: inside the page's default 24 h window
    scripted.load(app_env, shift=(now - timedelta(hours=2)) - scripted.END)
    at = run_page("pages/13_Thrash.py")
    assert not at.exception, at.exception
    # the whole script is in the window: the hour's 5 loads plus 11:59 (5 s) and 13:00:30 (2 s)
    assert metric(at, "Model loads") == "7"
    assert metric(at, "GPU time lost to loads") == "36.5 s"  # 32 measured + 4.5 estimated
    assert metric(at, "Time loading (of loading + serving)") == "81.0 %"  # 32 / (32 + 6.5 + 1 on h2)
    pairs = at.dataframe[1].value
    assert pairs["model_a"].to_list() == ["A"] and pairs["reversals"].to_list() == [2]
    consumers = at.dataframe[2].value
    assert consumers["consumer"].to_list() == ["unknown", "app-x", "team-a", "warm by ops"]
    assert consumers["loads"].to_list() == [3, 2, 1, 1]


def test_thrash_page_empty(app_env: Engine) -> None:
    at = run_page("pages/13_Thrash.py")
    assert not at.exception, at.exception
    assert any("No model loads" in str(i.value) for i in at.info)
