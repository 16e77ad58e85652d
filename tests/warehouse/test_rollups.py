"""Rollups against synthetic data with exactly known numbers, window edges and idempotent re-runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.flows.synthetic import add_gpu_samples, at, load_activity_scenario, load_gpu_scenario
from warehouse.rollups import ceil_to, floor_to, rollup_activity, rollup_perf, rollup_window


def rows(engine, table, order="bucket_start"):
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))]


def by_bucket(engine, table, **match):
    out = {}
    for r in rows(engine, table):
        if all(r[k] == v for k, v in match.items()):
            out[r["bucket_start"]] = r
    return out


def test_floor_and_ceil_align_on_utc_epoch():
    five = timedelta(minutes=5)
    assert floor_to(at(12, 5, 0), five) == at(12, 5, 0)
    assert floor_to(at(12, 9, 59.9), five) == at(12, 5, 0)
    assert ceil_to(at(12, 5, 0), five) == at(12, 5, 0)
    assert ceil_to(at(12, 5, 0.001), five) == at(12, 10, 0)
    assert floor_to(at(12, 5, 0), timedelta(days=1)) == at(0, 0, 0)
    with pytest.raises(ValueError):
        floor_to(datetime(2026, 1, 1), five)


def test_gpu_energy_is_the_trapezoid_integral_split_at_bucket_boundaries(db):
    load_gpu_scenario(db)
    with db.begin() as conn:
        res = rollup_perf(conn, at(12, 0), at(13, 0))
    assert res.rows["rollup_gpu_5m"] == 3
    gpu = by_bucket(db, "rollup_gpu_5m")
    b00, b05, b10 = gpu[at(12, 0)], gpu[at(12, 5)], gpu[at(12, 10)]
    # 12:00 bucket: 100 W for 10 s, then 100 -> 200 W over 10 s ending exactly on the boundary
    assert b00["samples"] == 2
    assert b00["energy_j"] == pytest.approx(1000 + 1500)
    assert b00["covered_s"] == pytest.approx(20)
    # 12:05 bucket holds the boundary sample; the 280 s gap adds nothing; 12:09:50 -> 12:10:20 is split at
    # 12:10 where the interpolated power is 300 - 200 * 10 / 30 W
    pm = 300 - 200 * 10 / 30
    assert b05["samples"] == 3
    assert b05["power_w_mean"] == pytest.approx(200)
    assert b05["power_w_max"] == 300
    assert b05["energy_j"] == pytest.approx(1500 + (300 + pm) / 2 * 10)
    assert b05["covered_s"] == pytest.approx(20)
    assert b10["samples"] == 1
    assert b10["energy_j"] == pytest.approx((pm + 100) / 2 * 20)
    # the split conserves the interval's energy
    assert b05["energy_j"] - 1500 + b10["energy_j"] == pytest.approx((300 + 100) / 2 * 30)

    hour = rows(db, "rollup_gpu_1h")
    assert len(hour) == 1
    assert hour[0]["bucket_start"] == at(12, 0)
    assert hour[0]["samples"] == 6
    assert hour[0]["energy_j"] == pytest.approx(1000 + 1500 + 1500 + 6000)
    assert hour[0]["covered_s"] == pytest.approx(60)
    assert hour[0]["power_w_mean"] == pytest.approx(150)
    assert hour[0]["power_w_max"] == 300

    host = by_bucket(db, "rollup_host_5m")
    assert host[at(12, 0)]["samples"] == 1
    assert host[at(12, 5)]["samples"] == 2  # 12:05:00 and 12:05:10
    assert host[at(12, 5)]["cpu_util_pct_mean"] == pytest.approx(40)
    assert host[at(12, 5)]["cpu_util_pct_max"] == 50
    assert host[at(12, 5)]["gpu_count"] == 1
    assert host[at(12, 5)]["gpu_energy_j"] == pytest.approx(b05["energy_j"])
    host_h = rows(db, "rollup_host_1h")
    assert host_h[0]["samples"] == 3
    assert host_h[0]["cpu_util_pct_mean"] == pytest.approx(30)
    assert host_h[0]["gpu_energy_j"] == pytest.approx(10000)
    assert host[at(12, 10)]["samples"] == 0
    assert host[at(12, 10)]["cpu_util_pct_mean"] is None


def test_energy_across_an_hour_edge_is_the_same_whichever_window_computes_it(db):
    with db.begin() as conn:
        from tests.flows.synthetic import add_provider

        add_provider(conn)
        add_gpu_samples(conn, [(at(12, 59, 50), 100.0), (at(13, 0, 10), 300.0)])
    with db.begin() as conn:
        rollup_perf(conn, at(12, 0), at(13, 0))
        rollup_perf(conn, at(13, 0), at(14, 0))
    split = by_bucket(db, "rollup_gpu_5m")
    assert split[at(12, 55)]["energy_j"] == pytest.approx((100 + 200) / 2 * 10)
    assert split[at(13, 0)]["energy_j"] == pytest.approx((200 + 300) / 2 * 10)
    first = rows(db, "rollup_gpu_5m")
    with db.begin() as conn:
        rollup_perf(conn, at(12, 30), at(13, 30))  # one window over both
    assert rows(db, "rollup_gpu_5m") == first


def test_perf_rollup_rerun_rewrites_identical_rows(db):
    load_gpu_scenario(db)
    tables = ["rollup_gpu_5m", "rollup_gpu_1h", "rollup_host_5m", "rollup_host_1h"]
    with db.begin() as conn:
        rollup_perf(conn, at(12, 0), at(13, 0))
    first = {t: rows(db, t) for t in tables}
    with db.begin() as conn:
        rollup_perf(conn, at(12, 7), at(12, 8))  # widened to the same hour
        rollup_perf(conn, at(12, 0), at(13, 0))
    assert {t: rows(db, t) for t in tables} == first


def test_perf_rollup_rejects_naive_windows_and_large_gaps(db):
    with db.begin() as conn, pytest.raises(ValueError):
        rollup_perf(conn, datetime(2026, 1, 1), datetime(2026, 1, 2))
    with db.begin() as conn, pytest.raises(ValueError):
        rollup_perf(conn, at(12, 0), at(13, 0), max_gap_s=301)


def test_activity_rollup_known_numbers(db):
    load_activity_scenario(db)
    with db.begin() as conn:
        rollup_activity(conn, at(12, 0), at(13, 0))
    five = by_bucket(db, "rollup_activity_5m", model_id="m1")
    b00, b05 = five[at(12, 0)], five[at(12, 5)]
    assert b00["requests"] == 2
    assert b00["errors"] == 0
    assert (b00["input_tokens"], b00["output_tokens"], b00["cache_tokens"]) == (300, 150, 10)
    assert b00["request_ms"] == 6000
    # busy: 2 s + 4 s, plus the first second of the 31 s request that started at 12:04:59
    assert b00["busy_ms"] == 7000
    assert b00["prompt_tps_samples"] == 2
    assert b00["prompt_tps_p50"] == pytest.approx(1500)
    assert b00["prompt_tps_p95"] == pytest.approx(1950)
    assert b00["prompt_tps_p99"] == pytest.approx(1990)
    assert b00["gen_tps_p50"] == pytest.approx(40)
    assert b00["gen_tps_p95"] == pytest.approx(49)
    assert b00["swaps"] == 1
    assert b00["loads_timed"] == 1
    assert b00["load_ms_sum"] == 12500
    assert b00["load_ms_max"] == 12500

    # the request finishing exactly at 12:05:00 belongs to the 12:05 bucket; its 0 sentinels are ignored
    assert b05["requests"] == 3
    assert b05["errors"] == 1
    assert (b05["input_tokens"], b05["output_tokens"], b05["cache_tokens"]) == (350, 45, 5)
    assert b05["request_ms"] == 42000
    assert b05["busy_ms"] == 30000 + 10000
    assert b05["prompt_tps_samples"] == 1
    assert b05["prompt_tps_p50"] == b05["prompt_tps_p99"] == pytest.approx(500)
    assert b05["gen_tps_samples"] == 2
    assert b05["gen_tps_p50"] == pytest.approx(30)
    assert b05["gen_tps_p95"] == pytest.approx(39)
    assert b05["gen_tps_p99"] == pytest.approx(39.8)
    assert b05["swaps"] == 1  # stopped -> ready without an observed starting
    assert b05["loads_timed"] == 0
    assert b05["load_ms_max"] is None

    # m2's load starts at 12:58 and is ready at 13:00, just past the window: timed through the look-ahead
    m2 = by_bucket(db, "rollup_activity_5m", model_id="m2")
    assert m2[at(12, 55)]["requests"] == 0
    assert m2[at(12, 55)]["load_ms_sum"] == 120000

    hour = by_bucket(db, "rollup_activity_1h", model_id="m1")[at(12, 0)]
    assert hour["requests"] == 5
    assert hour["errors"] == 1
    assert hour["busy_ms"] == 47000
    assert hour["request_ms"] == 48000
    assert hour["swaps"] == 2
    assert hour["gen_tps_samples"] == 4
    assert hour["gen_tps_p50"] == pytest.approx(35)
    assert hour["gen_tps_p95"] == pytest.approx(48.5)
    assert hour["gen_tps_p99"] == pytest.approx(49.7)
    assert hour["prompt_tps_p50"] == pytest.approx(1000)
    assert hour["prompt_tps_p95"] == pytest.approx(1900)
    assert hour["prompt_tps_p99"] == pytest.approx(1980)

    day = by_bucket(db, "rollup_activity_1d", model_id="m1")
    assert list(day) == [datetime(2026, 3, 2, tzinfo=UTC)]
    assert {k: day[datetime(2026, 3, 2, tzinfo=UTC)][k] for k in ("requests", "busy_ms", "swaps")} == {
        "requests": 5,
        "busy_ms": 47000,
        "swaps": 2,
    }


def test_activity_rollup_is_idempotent_and_window_independent(db):
    load_activity_scenario(db)
    tables = ["rollup_activity_5m", "rollup_activity_1h", "rollup_activity_1d"]
    order = "provider_id, model_id, bucket_start"
    with db.begin() as conn:
        rollup_activity(conn, at(12, 0), at(13, 0))
    first = {t: rows(db, t, order) for t in tables}
    with db.begin() as conn:
        rollup_activity(conn, at(12, 0), at(13, 0))
    assert {t: rows(db, t, order) for t in tables} == first
    with db.begin() as conn:  # two 5-minute windows meeting at the boundary instead of one hour
        rollup_activity(conn, at(12, 0), at(12, 5), grains=("5m",))
        rollup_activity(conn, at(12, 5), at(12, 10), grains=("5m",))
    assert rows(db, "rollup_activity_5m", order) == first["rollup_activity_5m"]


def test_busy_time_of_a_request_spanning_buckets_is_split(db):
    from tests.flows.synthetic import add_provider, add_request

    with db.begin() as conn:
        add_provider(conn)
        add_request(conn, at(12, 11, 0), 8 * 60 * 1000)  # 12:03 -> 12:11
    with db.begin() as conn:
        rollup_activity(conn, at(12, 0), at(12, 15), grains=("5m",))
    five = by_bucket(db, "rollup_activity_5m")
    assert {b: r["busy_ms"] for b, r in five.items()} == {
        at(12, 0): 120_000,
        at(12, 5): 300_000,
        at(12, 10): 60_000,
    }
    assert five[at(12, 10)]["requests"] == 1
    assert five[at(12, 0)]["requests"] == 0


def test_rollup_window_runs_both(db):
    load_gpu_scenario(db)
    with db.begin() as conn:
        res = rollup_window(conn, at(12, 0), at(13, 0))
    assert res.rows["rollup_gpu_5m"] == 3
    assert res.rows["rollup_activity_1d"] == 0


def test_a_gap_across_a_boundary_adds_no_energy_or_coverage(db):
    from tests.flows.synthetic import add_provider

    with db.begin() as conn:
        add_provider(conn)
        add_gpu_samples(conn, [(at(12, 59, 30), 100.0), (at(13, 1, 0), 300.0), (at(13, 1, 30), 300.0)])
    with db.begin() as conn:
        rollup_perf(conn, at(12, 0), at(14, 0))
    gpu = by_bucket(db, "rollup_gpu_5m")
    assert (gpu[at(12, 55)]["energy_j"], gpu[at(12, 55)]["covered_s"]) == (0, 0)
    assert gpu[at(13, 0)]["energy_j"] == pytest.approx(300 * 30)
    assert gpu[at(13, 0)]["covered_s"] == pytest.approx(30)
