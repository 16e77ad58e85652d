"""Every flow against the real test Postgres under the Prefect test harness."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import duckdb
from sqlalchemy import text

from tests.flows.synthetic import add_provider, add_request, at, load_activity_scenario, load_gpu_scenario

DAY = date(2026, 3, 2)


def table(engine, name, order="1, 2, 3"):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY {order}"))]


def read_artifact(key):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def go():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )

    return asyncio.run(go())


def test_rollup_flow_rolls_up_and_reruns_identically(prefect_harness, flow_env, db):
    from flows.rollups import rollup

    load_gpu_scenario(db)
    load_activity_scenario(db)
    out = rollup(start=at(12, 0), end=at(13, 0))
    assert out["rows"]["rollup_gpu_5m"] == 3
    assert out["rows"]["rollup_activity_1d"] == 2  # m1 and m2
    snapshot = {t: table(db, t) for t in ("rollup_gpu_5m", "rollup_host_1h", "rollup_activity_5m")}
    rollup(start=at(12, 0), end=at(13, 0))
    assert {t: table(db, t) for t in snapshot} == snapshot
    hour = table(db, "rollup_activity_1h")
    assert [(r[1], r[3]) for r in hour] == [("m1", 5), ("m2", 0)]


def test_rollup_flow_splits_a_backfill_at_midnight(prefect_harness, flow_env, db):
    from flows.rollups import rollup

    load_activity_scenario(db)
    with db.begin() as conn:
        add_request(conn, at(0, 10, day=at(0, 0) + timedelta(days=1)), 100)
    out = rollup(start=at(20, 0), end=at(2, 0, day=at(0, 0) + timedelta(days=1)))
    assert out["rows"]["rollup_activity_1d"] == 3  # m1 and m2 on D (whole day recomputed), m1 on D+1


def test_retention_flow_prunes_and_publishes_a_table(prefect_harness, flow_env, db, monkeypatch):
    from core.settings import get_settings
    from flows.retention import retention

    monkeypatch.setenv("BOOCONTROL_RETENTION__ACTIVITY_DAYS", "1")
    get_settings.cache_clear()
    load_activity_scenario(db)
    now = datetime(2026, 3, 4, 6, tzinfo=UTC)  # activity cutoff: 2026-03-03 00:00
    with db.begin() as conn:
        add_request(conn, at(0, 0, day=datetime(2026, 3, 3, tzinfo=UTC)), 10)
    out = retention(now=now)
    assert out["rows"]["activity"] == 5
    assert table(db, "activity", "1")[0][3] == datetime(2026, 3, 3, tzinfo=UTC)
    assert retention(now=now)["rows"]["activity"] == 0
    (artifact, *_) = read_artifact("retention-last-run")
    assert artifact.type == "table"


def test_export_flow_writes_the_lake(prefect_harness, flow_env, db):
    from flows.exports import export_parquet

    load_activity_scenario(db)
    results = export_parquet(day=DAY, tables=["activity", "model_transitions"])
    assert {(r["table"], r["rows"]) for r in results} == {("activity", 5), ("model_transitions", 6)}
    lake = flow_env / "lake"
    got = duckdb.sql(
        f"SELECT model_id, count(*) FROM read_parquet('{lake}/activity/*/*.parquet', hive_partitioning=true)"
        " GROUP BY 1"
    ).fetchall()
    assert got == [("m1", 5)]


def test_export_flow_skips_days_the_database_no_longer_holds(prefect_harness, flow_env, db, monkeypatch):
    from core.settings import get_settings
    from flows.exports import export_parquet

    monkeypatch.delenv("BOOCONTROL_RETENTION__ACTIVITY_DAYS")
    get_settings.cache_clear()
    load_activity_scenario(db)
    (res,) = export_parquet(day=DAY, tables=["activity"])
    assert res["rows"] == 0 and "older than" in res["skipped"]
    assert not (flow_env / "lake" / "activity").exists()


def test_digest_flow_stores_the_report_and_publishes_an_artifact(prefect_harness, flow_env, db):
    from flows.reports import fleet_digest
    from warehouse.queries.reports import get_report

    load_activity_scenario(db)
    out = fleet_digest(kind="daily", day=DAY)
    assert out["summary"]["requests"] == 5
    stored = get_report(db, out["id"])
    assert stored is not None and stored.title == "Fleet digest — 2026-03-02"
    artifacts = read_artifact("fleet-digest-daily")
    assert any(a.data == stored.markdown for a in artifacts)
    again = fleet_digest(kind="daily", day=DAY)
    assert again["id"] == out["id"]
    weekly = fleet_digest(kind="weekly", day=date(2026, 3, 4))
    assert weekly["title"].startswith("Fleet digest — week 2026-W10")


def test_today_so_far_digest_has_todays_numbers(prefect_harness, flow_env, db):
    """A new install has no closed day yet: the "today so far" digest shows today's requests."""
    from flows.reports import fleet_digest
    from warehouse.queries.reports import get_report

    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with db.begin() as conn:
        add_provider(conn)
        for _ in range(3):
            add_request(conn, today + (now - today) / 2, 1000, out=7)
    out = fleet_digest(kind="daily", so_far=True)
    assert (out["summary"]["requests"], out["summary"]["output_tokens"]) == (3, 21)
    stored = get_report(db, out["id"])
    assert stored is not None and stored.period_start == today and stored.period_end > now
    assert stored.title.startswith(f"Fleet digest — {today:%Y-%m-%d} (so far, to ")
