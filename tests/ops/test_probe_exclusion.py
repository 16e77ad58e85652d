"""Probe traffic is not user traffic: the activity rows canary probes made are left out of every user statistic
(rollups -> Reports/digest/Analysis, Reports' speeds and errors, the Activity page's speed statistics, the alert
error rate, thrash). Without the probe's record the same rows count: the test can fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from tests.flows.synthetic import add_provider
from warehouse import rollups
from warehouse import schema as s
from warehouse.queries import activity as q_activity
from warehouse.queries import alerts as q_alerts
from warehouse.queries import reports as q_reports
from warehouse.schema_alerts import canary_probes

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def row(conn, uid: int, at: datetime, status: int = 200, tps: float = 20.0, out: int = 5) -> None:
    conn.execute(insert(s.activity).values(
        provider_id="h1", epoch="e1", upstream_id=uid, finished_at=at, model_id="qwen",
        req_path="/v1/chat/completions", resp_content_type="application/json", status_code=status,
        input_tokens=10, output_tokens=out, cache_tokens=-1, draft_tokens=-1, draft_acc_tokens=-1,
        prompt_per_second=100.0, tokens_per_second=tps, duration_ms=500, has_capture=False,
        error_msg=None if status == 200 else "boom"))


@pytest.mark.parametrize("probes_recorded", [True, False], ids=["probes-recorded", "no-probe-record"])
def test_probe_rows_are_left_out_of_user_statistics(db, probes_recorded: bool) -> None:
    with db.begin() as conn:
        add_provider(conn, "h1")
        for i in range(1, 4):  # three users' requests, 20 tok/s
            row(conn, i, T + timedelta(minutes=i))
        row(conn, 4, T + timedelta(minutes=5), tps=900.0, out=1)  # a canary probe that answered
        row(conn, 5, T + timedelta(minutes=6), status=502, tps=0, out=0)  # a canary probe that failed
        if probes_recorded:
            for uid, minute, ok in ((4, 5, True), (5, 6, False)):
                conn.execute(insert(canary_probes).values(
                    provider_id="h1", model_id="qwen", sent_at=T + timedelta(minutes=minute, seconds=-1), ok=ok,
                    ttft_ms=5.0 if ok else None, activity_upstream_id=uid,
                    activity_finished_at=T + timedelta(minutes=minute)))
        rollups.rollup_activity(conn, T, T + timedelta(hours=1))
    end = T + timedelta(hours=1)
    users, errors = (3, 0) if probes_recorded else (5, 1)

    with db.connect() as c:
        hour = c.execute(text("SELECT requests, errors, gen_tps_samples FROM rollup_activity_1h")).one()
    assert tuple(hour) == (users, errors, 3 if probes_recorded else 4)
    speeds = q_reports.speed_percentiles(db, T, end)
    assert speeds["gen_n"].to_list() == [3 if probes_recorded else 4]
    assert speeds["gen_p99"].to_list()[0] == (20.0 if probes_recorded else pytest.approx(873.6))  # 20 + 0.97 * 880
    assert q_reports.top_errors(db, T, end).height == errors
    stats = q_activity.speed_stats(db, q_activity.ActivityFilter(T, end))
    assert stats.filter(stats["metric"] == "generation")["n"].to_list() == [3 if probes_recorded else 4]
    counts = q_alerts.error_counts(db, end, timedelta(hours=1))
    assert counts.select("requests", "errors").row(0) == (users, errors)

    # the Activity list still shows every row (they happened), the probes' Path cells labelled as such
    from ui.widgets import activity_rows_for_people

    page = q_activity.activity_page(db, q_activity.ActivityFilter(T, end))
    shown = activity_rows_for_people(page.rows)
    assert page.total == 5
    labelled = "/v1/chat/completions (canary probe)"
    assert shown["req_path"].to_list() == (
        [labelled, labelled] + ["/v1/chat/completions"] * 3 if probes_recorded else ["/v1/chat/completions"] * 5)
