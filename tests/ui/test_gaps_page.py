"""Gaps in the cockpit: the Activity page's Gaps section and the Fleet board's count, on seeded rows.

The issue: "Tens of rows disappear per event with nothing in the UI to say so". The connector records every gap
it can prove (``gaps``); these tests pin what a person sees of them, row by row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from tests.ui import seed
from tests.ui.conftest import run_page
from ui.gap_view import missing_text, span_text

HOSTILE = "capture of row 60 could not be fetched: HTTP 500 <b>*boom*</b> | `x` [link](http://e.test)"
RESTART = ("instance restarted with an in-memory activity store while not followed: rows after id 60 of the "
           "previous boot may be lost (count unknown)")
RING = "ids 5..9 were no longer held upstream (activity ring overflowed while not followed)"


def seed_gaps(db: Engine, now: datetime) -> None:
    with db.begin() as c:
        seed.provider(c, "lab_box")
        seed.gap(c, "alpha", "activity", "ep1", 61, None, detected=now - timedelta(minutes=40), reason=RESTART,
                 from_at=now - timedelta(minutes=50), to_at=now - timedelta(minutes=40))
        seed.gap(c, "alpha", "capture", "ep1", 60, 60, detected=now - timedelta(minutes=10), reason=HOSTILE)
        seed.gap(c, "lab_box", "activity", "m1", 5, 9, detected=now - timedelta(minutes=19), reason=RING,
                 from_at=now - timedelta(minutes=20))
        # three days ago: outside the default 24 h window and the board's 24 h count
        seed.gap(c, "beta", "activity", None, None, None, detected=now - timedelta(days=3), reason="old")


def gaps_table(at: AppTest):  # type: ignore[no-untyped-def]
    frames = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert len(frames) == 1, [list(d.value.columns) for d in at.dataframe]
    return frames[0]


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def test_missing_and_span_texts() -> None:
    assert missing_text(5, 9) == "5..9 (5 rows)"
    assert missing_text(60, 60) == "id 60"
    assert missing_text(61, None) == "from id 61, count unknown"
    assert missing_text(None, None) == "count unknown"
    t = datetime(2026, 11, 20, 12, 0, 5)
    assert span_text(t, t + timedelta(minutes=5)) == "2026-11-20 12:00:05 → 2026-11-20 12:05:05"
    assert span_text(t, None) == "2026-11-20 12:00:05 → …"
    assert span_text(None, None) == "—"


def test_activity_page_says_when_there_is_no_gap(live_fleet: datetime) -> None:
    at = run_page("pages/2_Activity.py")
    assert not at.exception, at.exception
    assert "No gaps in this window: the connector missed no row it could know of." in [c.value for c in at.caption]
    assert not at.warning


def test_activity_page_lists_the_gaps_per_provider(live_fleet: datetime, app_env: Engine) -> None:
    now = live_fleet
    seed_gaps(app_env, now)
    at = run_page("pages/2_Activity.py")
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == [
        "3 gaps in this window: alpha 2 (1 count unknown) · lab\\_box 1"  # provider ids escaped for Markdown
    ]
    table = gaps_table(at)
    assert list(table.columns) == ["provider_id", "stream", "epoch", "missing", "span", "detected_at", "reason"]
    rows = [tuple(r) for r in table[["provider_id", "stream", "epoch", "missing", "span", "reason"]].itertuples(
        index=False)]
    assert rows == [
        ("alpha", "capture", "ep1", "id 60", "—", HOSTILE),  # the reason exactly as recorded, never interpreted
        ("alpha", "activity", "ep1", "from id 61, count unknown",
         f"{ts(now - timedelta(minutes=50))} → {ts(now - timedelta(minutes=40))}", RESTART),
        ("lab_box", "activity", "m1", "5..9 (5 rows)", f"{ts(now - timedelta(minutes=20))} → …", RING),
    ]
    assert [t.to_pydatetime() for t in table["detected_at"]] == [
        now - timedelta(minutes=10), now - timedelta(minutes=40), now - timedelta(minutes=19)]

    # the page's filters apply: one provider, then a window that reaches the old gap
    at.multiselect(key="activity_providers").set_value(["lab_box"])
    at.run()
    assert not at.exception, at.exception
    assert list(gaps_table(at)["missing"]) == ["5..9 (5 rows)"]
    assert [w.value for w in at.warning] == ["1 gap in this window: lab\\_box 1"]
    at.multiselect(key="activity_providers").set_value([])
    at.selectbox(key="activity_window").set_value("7 days")
    at.run()
    assert not at.exception, at.exception
    table = gaps_table(at)
    assert list(zip(table["provider_id"], table["missing"], table["epoch"], table["span"], strict=True)) == [
        ("alpha", "id 60", "ep1", "—"),
        ("alpha", "from id 61, count unknown", "ep1",
         f"{ts(now - timedelta(minutes=50))} → {ts(now - timedelta(minutes=40))}"),
        ("beta", "count unknown", "—", "—"),
        ("lab_box", "5..9 (5 rows)", "m1", f"{ts(now - timedelta(minutes=20))} → …"),
    ]


def test_fleet_board_counts_the_gaps_of_the_last_24_hours(live_fleet: datetime, app_env: Engine) -> None:
    seed_gaps(app_env, live_fleet)
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    assert dict(zip(board["provider_id"], board["gaps_recent"], strict=True)) == {
        "alpha": 2, "beta": 0, "gamma": 0, "lab_box": 1}
