"""warehouse.queries.gaps on known rows: which gaps a window holds, and the per-provider counts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from tests.ui import seed
from tests.ui.seed import T0
from warehouse.queries import gaps as q


def test_window_holds_gaps_detected_in_it_or_whose_span_overlaps_it(db: Engine) -> None:
    with db.begin() as c:
        seed.provider(c, "a")
        seed.provider(c, "b")
        # detected inside the window
        seed.gap(c, "a", "capture", "e", 7, 7, detected=T0 - timedelta(minutes=30), reason="in")
        # detected after the window, but its rows went missing inside it (a restart noticed later)
        seed.gap(c, "a", "activity", "e", 8, None, detected=T0 + timedelta(hours=2), reason="span",
                 from_at=T0 - timedelta(minutes=20), to_at=T0 + timedelta(hours=1))
        # only a start, inside the window
        seed.gap(c, "b", "activity", "f", 3, 4, detected=T0 + timedelta(hours=3), reason="start",
                 from_at=T0 - timedelta(minutes=5))
        # entirely before the window
        seed.gap(c, "b", "activity", "f", 1, 2, detected=T0 - timedelta(hours=5), reason="before",
                 from_at=T0 - timedelta(hours=6), to_at=T0 - timedelta(hours=5))
    start, end = T0 - timedelta(hours=1), T0
    df = q.gaps(db, start, end)
    assert list(zip(df["provider_id"], df["reason"], strict=True)) == [("a", "span"), ("a", "in"), ("b", "start")]
    assert df.row(0, named=True)["to_id"] is None and df.row(1, named=True)["from_id"] == 7
    assert list(q.gaps(db, start, end, ("b",))["reason"]) == ["start"]
    counts = q.gap_counts(db, T0 - timedelta(hours=1))
    assert counts.to_dicts() == [{"provider_id": "a", "gaps": 2, "unknown": 1},
                                 {"provider_id": "b", "gaps": 1, "unknown": 0}]
