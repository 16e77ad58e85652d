from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from tests.ui import seed
from tests.ui.seed import T0
from warehouse.captures import CaptureRow, upsert_capture
from warehouse.queries import activity as q

WINDOW = q.ActivityFilter(start=T0 - timedelta(days=1), end=T0 + timedelta(seconds=1))


@pytest.fixture()
def rows(db: Engine) -> Engine:
    """alpha: 100 chat rows with prompt speed 1..100 tok/s and gen speed 2x; beta: 20 rows, 5 of them errors."""
    with db.begin() as c:
        seed.provider(c, "alpha")
        seed.provider(c, "beta")
        seed.epoch(c, "alpha", "e1", T0 - timedelta(days=3))
        seed.epoch(c, "alpha", "e2", T0 - timedelta(days=2))
        for i in range(1, 101):
            seed.activity(
                c,
                "alpha",
                "e2",
                i,
                T0 - timedelta(minutes=101 - i),
                model_id="qwen",
                pps=float(i),
                tps=2.0 * i,
                has_capture=i == 100,
            )
        for i in range(1, 21):
            err = i <= 5
            seed.activity(
                c,
                "beta",
                "b1",
                i,
                T0 - timedelta(hours=2, minutes=i),
                model_id="llama",
                status=502 if err else 200,
                pps=0 if err else -1,
                tps=0 if err else -1,
                error="502 Bad Gateway" if err else None,
            )
        seed.activity(c, "alpha", "e1", 1, T0 - timedelta(days=2, hours=1), model_id="old")  # outside window
        upsert_capture(
            c, "alpha", "e2", 100, CaptureRow("/v1/chat/completions", {}, {}, b"{}", b"{}", 4, False), T0
        )
    return db


def test_pagination_totals_and_order(rows: Engine) -> None:
    p1 = q.activity_page(rows, WINDOW, page=1, page_size=50)
    assert p1.total == 120 and p1.pages == 3 and p1.rows.height == 50
    assert p1.rows["upstream_id"][0] == 100 and p1.rows["provider_id"][0] == "alpha"
    assert p1.rows["capture_stored"][0] is True and p1.rows["capture_stored"][1] is False
    p3 = q.activity_page(rows, WINDOW, page=3, page_size=50)
    assert p3.rows.height == 20
    seen = set()
    for n in (1, 2, 3):
        page = q.activity_page(rows, WINDOW, page=n, page_size=50).rows
        seen |= {(r["provider_id"], r["upstream_id"]) for r in page.to_dicts()}
    assert len(seen) == 120  # no overlap, nothing skipped
    assert q.activity_page(rows, WINDOW, page=4, page_size=50).rows.height == 0


def test_filters(rows: Engine) -> None:
    def total(**kw: object) -> int:
        f = q.ActivityFilter(start=WINDOW.start, end=WINDOW.end, **kw)  # type: ignore[arg-type]
        return q.activity_page(rows, f).total

    assert total(provider_ids=("beta",)) == 20
    assert total(status="error") == 5
    assert total(status="ok", provider_ids=("beta",)) == 15
    assert total(model_ids=("qwen", "llama")) == 120
    assert total(model_ids=("nope",)) == 0
    wide = q.ActivityFilter(start=T0 - timedelta(days=5), end=T0 + timedelta(seconds=1))
    assert q.activity_page(rows, wide).total == 121
    with pytest.raises(ValueError):
        total(status="weird")


def test_speed_sentinels_become_null(rows: Engine) -> None:
    page = q.activity_page(rows, q.ActivityFilter(WINDOW.start, WINDOW.end, provider_ids=("beta",)))
    assert page.rows["prompt_tps"].null_count() == 20 and page.rows["cache_tokens"].null_count() == 20


def test_percentiles_exact(rows: Engine) -> None:
    stats = {r["metric"]: r for r in q.speed_stats(rows, WINDOW).to_dicts()}
    p = stats["prompt"]
    # values 1..100 (beta's -1 and 0 are excluded); linear interpolation
    assert p["n"] == 100 and p["min"] == 1.0 and p["max"] == 100.0 and p["mean"] == 50.5
    assert p["p50"] == pytest.approx(50.5) and p["p95"] == pytest.approx(95.05)
    assert p["p99"] == pytest.approx(99.01)
    g = stats["generation"]
    assert g["p50"] == pytest.approx(101.0) and g["p95"] == pytest.approx(190.1)


def test_histogram_sturges_bins(rows: Engine) -> None:
    h = q.speed_histogram(rows, WINDOW, "prompt")
    # n=100 -> ceil(log2 100) + 1 = 8 bins over [1, 100], width 12.375
    assert h.height == 8 and h["count"].sum() == 100
    assert h["bin_start"][0] == 1.0 and h["bin_end"][7] == 100.0
    # [1,13.375)=1..13, [13.375,25.75)=14..25, [25.75,38.125)=26..38, ... last bin closed at 100
    assert h["count"].to_list() == [13, 12, 13, 12, 12, 13, 12, 13]


def test_histogram_single_value_and_empty(db: Engine) -> None:
    with db.begin() as c:
        seed.provider(c, "alpha")
        for i in range(3):
            seed.activity(c, "alpha", "e", i, T0 - timedelta(minutes=i), pps=42.0)
    h = q.speed_histogram(db, WINDOW, "prompt")
    assert h.to_dicts() == [{"bin": 1, "bin_start": 42.0, "bin_end": 42.0, "count": 3}]
    assert q.speed_histogram(db, WINDOW, "generation").height == 0


def test_current_epoch(rows: Engine) -> None:
    assert q.current_epoch(rows, "alpha") == "e2"
    assert q.current_epoch(rows, "beta") is None
