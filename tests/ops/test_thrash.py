"""Swap-thrash analytics: exact numbers on the scripted swap sequence (tests/ops/scripted.py), real Postgres."""

from __future__ import annotations

from engines.thrash import Eviction, LoadEta, PingPong, load_eta, thrash_report
from tests.ops import scripted
from tests.ops.scripted import END, START, t
from warehouse.queries.thrash import load_history_ms


def test_scripted_swap_sequence_gives_exact_thrash_numbers(db):
    scripted.load(db)
    rep = thrash_report(db, START, END)

    loads = [(ld.model_id, ld.started_at, ld.load_s, ld.failed, ld.trigger, ld.consumer) for ld in rep.loads]
    assert loads == [
        ("B", t(12, 0, 2), 10.0, False, "request 1", "app-x"),
        ("A", t(12, 10, 1), 4.0, False, "request 2", "team-a"),  # the gateway's attribution wins
        ("B", t(12, 20, 1), 8.0, False, "action #7 warm", "warm by ops"),
        ("C", t(12, 30, 0), 3.0, True, "request 5", "unknown"),
        ("A", t(12, 50, 1), None, False, "request 6", "app-x"),  # stopped -> ready: no measured time
    ]
    assert rep.evictions == [
        Eviction("h1", "B", "A", t(12, 0, 0), t(12, 0, 2)),
        Eviction("h1", "A", "B", t(12, 10, 0), t(12, 10, 1)),
        Eviction("h1", "B", "A", t(12, 20, 0), t(12, 20, 1)),
        Eviction("h1", "A", "B", t(12, 50, 0), t(12, 50, 1)),
    ]
    # two reversals within 15 min; the 12:50 one comes 30 min after the previous eviction of the pair
    assert rep.pairs == [PingPong("h1", "A", "B", a_evicted_b=2, b_evicted_a=2, reversals=2,
                                  gpu_s_lost=10 + 4 + 8 + 4.5, last_at=t(12, 50, 0))]
    h1, h2 = rep.hosts
    assert (h1.provider_id, h1.loads, h1.failed_loads, h1.loads_per_hour, h1.evictions) == ("h1", 5, 1, 5.0, 4)
    assert h1.loading_s == 25.0  # 10 + 4 + 8 + 3 (the stopped -> ready load has no duration)
    # requests minus loading: 1.5 (r1) + 1 (r2) + 2 (r5) + 0.5 (r3) + 1.5 (r4); the probe's row is left out
    assert h1.serving_s == 6.5
    assert h1.loading_share == round(25 / 31.5, 6)
    assert (h1.gpu_s_lost, h1.gpu_s_lost_estimated) == (25.0, 4.5)  # A's median of 5 s and 4 s
    assert (h2.provider_id, h2.loads, h2.serving_s, h2.loading_share) == ("h2", 0, 1.0, 0.0)
    assert rep.hourly == [("h1", t(12, 0), 5)]
    assert rep.consumers == [("app-x", 2, 14.5), ("team-a", 1, 4.0), ("unknown", 1, 3.0), ("warm by ops", 1, 8.0)]


def test_one_host_only(db):
    scripted.load(db)
    rep = thrash_report(db, START, END, provider_id="h2")
    assert [h.provider_id for h in rep.hosts] == ["h2"] and rep.loads == [] and rep.pairs == []


def test_load_eta_from_measured_history(db):
    scripted.load(db)
    assert load_history_ms(db, "h1", "A") == [4000.0, 5000.0]
    eta = load_eta(load_history_ms(db, "h1", "A"))
    assert eta == LoadEta(median_s=4.5, p90_s=5.0, samples=2)
    assert eta.describe() == "~4.5 s (median of 2 loads, 90% within 5.0 s)"
    assert load_eta([None, None]) is None
    assert load_eta([1000.0 * i for i in range(1, 11)]) == LoadEta(5.5, 9.0, 10)


def test_a_queued_warm_says_how_long_its_load_should_take(db):
    """The status line of a queued warm carries the load ETA from the model's measured loads (median 4.5 s)."""
    from dataclasses import replace

    from actions.progress import describe, measured_load_s
    from tests.actions.test_progress import progress

    scripted.load(db)
    load_s = measured_load_s(load_history_ms(db, "h1", "A"))
    assert describe(progress(target="A"), load_s).text == (
        "#12 warm A: queued for 4.0 s: waiting for the action executor; once it runs, the load should take "
        "~4.5 s (measured)")
    # already loaded (or loading): no ETA; never measured: none either
    assert "should take" not in describe(replace(progress(target="A"), target_state="ready"), load_s).text
    assert "should take" not in describe(progress(target="A"), None).text


def test_digest_has_a_swap_thrash_section(db):
    """The daily digest of the scripted day: the thrash section with its exact numbers and the ping-pong pair."""
    from reports.digest import build_digest, render_digest

    scripted.load(db)
    d = build_digest(db, "daily", scripted.DAY)
    md = render_digest(d).markdown
    assert "## Swap thrash" in md and "## Ping-pong pairs" in md
    # the whole day: 7 loads (32 s measured incl. the failed 3 s, 4.5 s estimated); loading 32 s, serving 7.5 s
    assert ("7 model loads; time loading 81.0 % of loading + serving; GPU time lost to loads 36.5 s" in md)
    assert "| h1 | 7 | 0.3 | 1 | 83.1 % | 36.5 |" in md  # h1 alone: 32 / (32 + 6.5)
    assert "| h1 | A | B | 2 | 2 | 2 | 26.5 |" in md


def test_serving_time_in_postgres_equals_the_pure_definition(db):
    """thrash_report computes serving time in SQL (a day of a fleet is millions of requests); the pure path over
    every request (engines.thrash.analyze without serving_by_host) gives the same hosts, to the microsecond."""
    from sqlalchemy import text

    from engines.thrash import Request, Transition, analyze

    scripted.load(db)
    with db.connect() as c:
        trans = [Transition(*r) for r in c.execute(text(
            "SELECT provider_id, model_id, observed_at, to_state FROM model_transitions"))]
        reqs = [Request(*r) for r in c.execute(text(
            "SELECT provider_id, model_id, finished_at, duration_ms, upstream_id FROM activity "
            "WHERE NOT (provider_id = 'h1' AND upstream_id = 4)"))]  # the probe's row, as the SQL leaves it out
    for start, end in ((START, END), (scripted.DAY, scripted.DAY + (END - START) * 24), (t(12, 5), t(12, 25))):
        pure = analyze(trans, reqs, start, end)
        sql = thrash_report(db, start, end)
        assert [(h.provider_id, h.loading_s, h.serving_s) for h in sql.hosts] == \
            [(h.provider_id, h.loading_s, h.serving_s) for h in pure.hosts]
