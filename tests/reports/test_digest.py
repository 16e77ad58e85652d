"""A digest rendered from known data, its numbers checked in the summary, Markdown and HTML."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reports.digest import (
    build_digest,
    inline_plotlyjs,
    last_closed_period,
    period_start_for,
    render_digest,
    store_report,
)
from tests.flows.synthetic import add_boot, add_request, at, load_activity_scenario
from warehouse.queries.reports import get_report, list_reports
from warehouse.rollups import rollup_activity

D = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
PREV = D - timedelta(days=1)


def load_fleet(db):
    load_activity_scenario(db)  # 5 requests of m1 around 12:05 on D, loads of m1 and m2
    with db.begin() as conn:
        add_request(conn, at(15, 30), 100)
        add_request(conn, at(9, 0, day=PREV), 100, tps=20.0)
        add_request(conn, at(10, 0, day=PREV), 100, tps=30.0)
        # boot markers are llama-swap's captured_at: the process start
        add_boot(conn, "2026-02-28T00:00:00Z", datetime(2026, 2, 28, tzinfo=UTC), at(6, 0))
        add_boot(conn, "2026-03-02T06:00:30Z", at(6, 0, 30), at(23, 0))
    with db.begin() as conn:
        rollup_activity(conn, PREV - timedelta(days=7), D + timedelta(days=7))


def test_periods_are_utc_days_and_monday_weeks():
    assert period_start_for("daily", date(2026, 3, 4)) == datetime(2026, 3, 4, tzinfo=UTC)
    assert period_start_for("weekly", date(2026, 3, 4)) == D
    assert last_closed_period("daily", datetime(2026, 3, 3, 0, 20, tzinfo=UTC)) == (D, D + timedelta(days=1))
    assert last_closed_period("weekly", datetime(2026, 3, 9, 1, tzinfo=UTC)) == (D, D + timedelta(days=7))
    with pytest.raises(ValueError):
        period_start_for("monthly", date(2026, 3, 4))


def test_daily_digest_numbers(db):
    load_fleet(db)
    d = build_digest(db, "daily", D)
    rep = render_digest(d)
    s = rep.summary
    assert (s["requests"], s["errors"]) == (6, 1)
    assert (s["input_tokens"], s["output_tokens"], s["cache_tokens"]) == (660, 200, 15)
    assert s["swaps"] == 3
    assert s["previous"]["requests"] == 2
    assert s["restarts"] == 1
    assert s["error_rate_pct"] == pytest.approx(100 / 6)
    assert s["busiest_hours"] == [
        {"hour": "2026-03-02T12:00:00+00:00", "requests": 5},
        {"hour": "2026-03-02T15:00:00+00:00", "requests": 1},
    ]
    (m1,) = [r for r in s["speeds"] if r["model_id"] == "m1"]
    assert m1["gen_n"] == 4
    assert m1["gen_p50"] == pytest.approx(35)
    assert m1["gen_p95"] == pytest.approx(48.5)
    assert m1["gen_p50_prev"] == pytest.approx(25)

    up = d.uptime.row(0, named=True)
    assert (up["boots"], up["restarts"]) == (1, 1)
    assert up["uptime_s"] == pytest.approx(6 * 3600 + 16 * 3600 + 59 * 60 + 30)

    md = rep.markdown
    assert rep.title == "Fleet digest — 2026-03-02"
    assert md.startswith("# Fleet digest — 2026-03-02")
    assert "| Requests | 6 | 2 | +200.0 % |" in md
    assert "| Errors | 1 | 0 | new |" in md
    assert "| p1 | m1 | 6 | 660 | 15 | 200 | 1 |" in md
    assert "| p1 | m1 | 4 | 35.0 | 48.5 | 49.7 | 1,000.0 | 25.0 | +40.0 % |" in md
    assert "| p1 | v250 | 1 | 1 | 22h 59m | 95.8 % |" in md
    assert "| p1 | m1 | 500 | boom | 1 |" in md
    assert "| p1 | m2 | 1 | 1 | 120.0 | 120.0 |" in md
    assert "2026-03-02 12:00 UTC: 5 requests" in md

    assert set(rep.figures) == {"tokens_by_model", "requests_by_hour", "speed_change"}
    assert "<table>" in rep.html and "plotly-graph-div" in rep.html
    assert rep.html.count("cdn.plot.ly") == 1
    standalone = inline_plotlyjs(rep.html)
    assert "cdn.plot.ly/plotly" not in standalone and len(standalone) > len(rep.html) + 1_000_000


def test_weekly_digest_compares_with_the_previous_week(db):
    load_fleet(db)
    rep = render_digest(build_digest(db, "weekly", D))
    assert rep.title.startswith("Fleet digest — week 2026-W10")
    assert rep.summary["requests"] == 6
    assert rep.summary["previous"]["requests"] == 2


def test_empty_period_renders(db):
    rep = render_digest(build_digest(db, "daily", D))
    assert rep.summary["requests"] == 0
    assert "No requests in this period." in rep.markdown
    assert rep.figures == {}


def test_stored_report_is_replaced_on_rerender(db):
    load_fleet(db)
    rep = render_digest(build_digest(db, "daily", D))
    with db.begin() as conn:
        first = store_report(conn, rep)
    with db.begin() as conn:
        again = store_report(conn, rep)
    assert first == again
    listed = list_reports(db)
    assert listed.height == 1 and listed["title"][0] == rep.title
    stored = get_report(db, first)
    assert stored is not None
    assert stored.markdown == rep.markdown
    assert stored.summary["requests"] == 6
    assert set(stored.figures) == set(rep.figures)
    assert get_report(db, first + 100) is None


def test_build_digest_rejects_a_misaligned_start(db):
    with pytest.raises(ValueError):
        build_digest(db, "weekly", D + timedelta(days=1))


def test_today_so_far_compares_with_the_same_hours_of_yesterday(db):
    load_fleet(db)
    with db.begin() as conn:  # yesterday after 13:00: outside the compared span
        add_request(conn, at(14, 0, day=PREV), 100)
        rollup_activity(conn, PREV, D)
    d = build_digest(db, "daily", D, at(13, 0))
    rep = render_digest(d)
    assert rep.title == "Fleet digest — 2026-03-02 (so far, to 13:00 UTC)"
    assert (rep.summary["requests"], rep.summary["previous"]["requests"]) == (5, 2)
    assert rep.summary["period_end"] == "2026-03-02T13:00:00+00:00"
    assert "compared with the same hours of the previous day (so far)." in rep.markdown
    # boot a until 06:00, boot b from 06:00:30: 12h 59m 30s of 13 h
    assert d.uptime.row(0, named=True)["uptime_s"] == 13 * 3600 - 30
    with pytest.raises(ValueError):
        build_digest(db, "daily", D, D + timedelta(days=1, seconds=1))


def test_a_simulated_host_is_labelled_in_the_digest(db):
    """The demo fleet's numbers are synthetic: the headline names its hosts and their rows say "(simulated)"; a host
    is labelled by the boot current in the period (a demo host replaced by a real one afterwards still is)."""
    from sqlalchemy import text

    load_fleet(db)
    with db.begin() as conn:
        conn.execute(text("""UPDATE instance_boots SET hardware = '{"simulated": true}'"""))
        add_boot(conn, "2026-03-05T00:00:00Z", datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 5, 1, tzinfo=UTC))
    rep = render_digest(build_digest(db, "daily", D))
    assert rep.summary["simulated_providers"] == ["p1"]
    md = rep.markdown
    assert "Simulated hosts (the demo fleet: their speeds, hardware and energy are synthetic, not measurements): p1." in md
    assert "| p1 \\(simulated\\) | m1 | 6 | 660 | 15 | 200 | 1 |" in md
    assert "| p1 \\(simulated\\) | m1 | 4 | 35.0 |" in md
    assert "<td>p1 (simulated)</td>" in rep.html
    later = render_digest(build_digest(db, "daily", D + timedelta(days=3)))  # the real boot of 03-05
    assert later.summary["simulated_providers"] == [] and "Simulated hosts" not in later.markdown
