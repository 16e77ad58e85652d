"""The one write path on a real Postgres: order, Postgres away and back (spool replay without duplicates),
spill past ``buffer_rows``, a full spool, unreadable spool files, batches Postgres rejects for their content (set
aside, never blocking the rest), and connector health's ``last_error``."""

from __future__ import annotations

import asyncio
import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from core.providers import Provider
from warehouse.db import psycopg_dsn
from warehouse.ingest import sync_providers
from warehouse.migrate import upgrade
from warehouse.records import Activity, Capture, Epoch, Health, ModelInfo, RawEvent, Record
from warehouse.spool import Spool
from warehouse.writer import WriteOptions, Writer, rejection_gaps

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
EPOCH = "2026-11-21T09:00:00Z"


def act(i: int) -> Activity:
    return Activity("w", EPOCH, i, T0 + timedelta(seconds=i), "m", "/v1/chat/completions", "application/json", 200,
                    10, 5, -1, -1, -1, 0.0, 20.0, 100 + i, False, None, None)


def model(state: str, s: int) -> ModelInfo:
    return ModelInfo("w", "m", T0 + timedelta(seconds=s), state=state)


def rows(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT upstream_id FROM activity WHERE provider_id='w' ORDER BY 1")]


def model_state(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT state FROM models WHERE provider_id='w' AND model_id='m'").fetchone()
        assert row is not None
        return str(row[0])


@pytest.fixture()
def dsn(db, db_url) -> str:
    d = psycopg_dsn(db_url)
    with psycopg.connect(d) as conn:
        sync_providers(conn, [Provider(id="w", label="w", base_url="http://w")])
    return d


def writer(dsn: str, spool_dir: Path, **opts: int) -> Writer:
    return Writer(dsn, Spool(spool_dir), WriteOptions(**{"batch_rows": 1000, "flush_s": 0.05, **opts}))  # type: ignore[arg-type]


def emit_flush(w: Writer, *batches: list[Record]) -> None:
    async def main() -> None:
        for b in batches:
            await w.emit(b)
        await w.flush()

    asyncio.run(main())


def test_postgres_away_and_back_replays_the_spool_in_order_without_duplicates(pg_cluster, tmp_path):
    pg_cluster.ensure_database("writer_away")
    url = pg_cluster.url("writer_away")
    upgrade(url)
    dsn = psycopg_dsn(url)
    with psycopg.connect(dsn) as conn:
        sync_providers(conn, [Provider(id="w", label="w", base_url="http://w")])
        conn.execute("DELETE FROM activity WHERE provider_id='w'")
        conn.commit()
    w = writer(dsn, tmp_path / "sp")
    emit_flush(w, [Epoch("w", EPOCH, T0, "first contact"), act(1), act(2), model("ready", 1)])
    assert w.db_ok and rows(dsn) == [1, 2]
    pg_cluster.stop("fast")
    try:
        emit_flush(w, [act(2), act(3), model("stopped", 2)])  # id 2 fetched again (a reconnect): a duplicate
        assert not w.db_ok and w.last_error and len(w.spool) == 1
        emit_flush(w, [act(4), model("ready", 3)])
        assert not w.db_ok and len(w.spool) == 2
    finally:
        pg_cluster.start()
    emit_flush(w, [act(5), model("stopped", 4)])
    assert w.db_ok and w.last_error is None
    assert len(w.spool) == 0 and w.replayed_batches == 2
    assert rows(dsn) == [1, 2, 3, 4, 5]  # each exactly once
    assert model_state(dsn) == "stopped"  # the spool went in before the newer batch: the last write is the newest


def test_spill_past_buffer_rows_keeps_the_order(dsn, tmp_path):
    w = writer(dsn, tmp_path / "sp", buffer_rows=3)

    async def main() -> None:
        await w.emit([model("ready", 1), act(1), act(2)])  # the buffer is full
        await w.emit([model("stopped", 2), act(3)])  # newer records: spilled to disk, with what was pending first
        assert w.pending == [] and len(w.spool) == 2
        await w.emit([act(4)])
        await w.flush()

    asyncio.run(main())
    assert rows(dsn) == [1, 2, 3, 4]
    assert model_state(dsn) == "stopped"  # before: the older pending "ready" was written after the spilled "stopped"
    assert len(w.spool) == 0 and w.dropped_records == 0


def test_a_full_spool_drops_with_a_count_and_never_raises(dsn, tmp_path):
    one = len(pickle.dumps([act(1), act(2)], protocol=pickle.HIGHEST_PROTOCOL))
    w = Writer(dsn, Spool(tmp_path / "sp", max_bytes=one + 10), WriteOptions(buffer_rows=2))

    async def main() -> None:
        await w.emit([act(1), act(2)])
        await w.emit([act(3)])  # spills [1, 2] (fits), then [3]: over the budget, dropped
        await w.flush()

    asyncio.run(main())
    assert w.dropped_records == 1 and rows(dsn) == [1, 2]


def test_unreadable_spool_files_are_set_aside_and_the_rest_is_written(dsn, tmp_path):
    sp = Spool(tmp_path / "sp")
    sp.put([act(1)])
    (tmp_path / "sp" / "000000000001.batch").write_bytes(b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x0f"
                                                         b"connectors.gone\x94\x8c\x06Health\x94\x93\x94.")
    (tmp_path / "sp" / "000000000002.batch").write_bytes(b"torn")
    w = writer(dsn, tmp_path / "sp")
    w.spool.put([act(2)])
    emit_flush(w, [act(3)])
    assert w.db_ok and rows(dsn) == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "sp").iterdir()) == ["000000000001.bad", "000000000002.bad"]


def poison(i: int) -> Activity:
    """A row Postgres rejects for its content: its provider is not in the registry (foreign key violation)."""
    return Activity("gone", EPOCH, i, T0, "m", "/v1/chat/completions", "application/json", 200,
                    10, 5, -1, -1, -1, 0.0, 20.0, 100, False, None, None)


def test_records_postgres_rejects_are_set_aside_and_the_rest_is_written(dsn, tmp_path, caplog):
    sp = Spool(tmp_path / "sp")
    sp.put([act(1)])
    sp.put([act(89), poison(7), act(90)])  # replayed from the spool: must not block what follows
    sp.put([act(2)])
    w = writer(dsn, tmp_path / "sp")
    emit_flush(w, [act(3)])
    assert w.db_ok and w.last_error is None and rows(dsn) == [1, 2, 3, 89, 90]  # only the rejected row is missing
    assert (w.set_aside_batches, w.set_aside_records, w.replayed_batches, len(w.spool)) == (1, 1, 3, 0)
    bad = tmp_path / "sp" / "000000000003.bad"
    assert sorted(p.name for p in (tmp_path / "sp").iterdir()) == [bad.name]
    with open(bad, "rb") as f:
        assert pickle.load(f) == [poison(7)]  # nothing deleted: kept for inspection
    lines = [r.getMessage() for r in caplog.records if "rejected by Postgres" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("spool file 000000000001.batch: 1 of 3 records rejected by Postgres "
                               "(ForeignKeyViolation: ")
    assert lines[0].endswith(f"set aside as {bad}, the other 2 written")

    # a fresh batch: its rejected records straight to a set-aside file, never into the replay order
    emit_flush(w, [act(4), poison(8), act(5), poison(9), act(6)])
    assert w.db_ok and (w.set_aside_batches, w.set_aside_records, len(w.spool)) == (2, 3, 0)
    assert rows(dsn) == [1, 2, 3, 4, 5, 6, 89, 90]
    with open(tmp_path / "sp" / "000000000004.bad", "rb") as f:
        assert pickle.load(f) == [poison(8), poison(9)]
    assert w.dropped_records == 0


def test_with_no_room_for_the_rejected_records_alone_the_spooled_file_is_set_aside_whole(dsn, tmp_path):
    batch: list[Record] = [act(89), poison(7), act(90)]
    one = len(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    Spool(tmp_path / "sp").put(batch)
    w = Writer(dsn, Spool(tmp_path / "sp", max_bytes=one + 10), WriteOptions())
    emit_flush(w)
    assert w.db_ok and rows(dsn) == [89, 90] and w.dropped_records == 0 and len(w.spool) == 0
    with open(tmp_path / "sp" / "000000000000.bad", "rb") as f:
        assert pickle.load(f) == batch  # never acknowledged away: nothing deleted
    assert sorted(p.name for p in (tmp_path / "sp").iterdir()) == ["000000000000.bad"]


def test_records_that_cannot_be_encoded_never_kill_the_writer(dsn, tmp_path):
    """A lone UTF-16 surrogate (JSON's ``\\ud800`` decodes to one) or an integer beyond bigint fails in Python, before
    Postgres: it raised out of the flush (the writer task died and the batch was lost). Texts with a lone surrogate
    or NUL (Postgres' text and jsonb hold neither) are written with U+FFFD in their place; the integer is set aside
    and shown as a missing row."""
    w = writer(dsn, tmp_path / "sp")
    surrogate = replace(act(11), model_id="qwen\ud800", error_msg="a\x00b")
    huge = replace(act(12), input_tokens=2**70)
    raw = RawEvent("w", None, T0, "sse:x", {"k\ud801": ["v\udfff", {"n": "\x00"}]})
    emit_flush(w, [act(10), surrogate, huge, raw, act(13)])
    assert w.db_ok and rows(dsn) == [10, 11, 13]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT model_id, error_msg FROM activity WHERE upstream_id = 11").fetchone() == (
            "qwen\ufffd", "a\ufffdb")
        assert conn.execute("SELECT payload FROM raw_events WHERE type = 'sse:x'").fetchone() == (
            {"k\ufffd": ["v\ufffd", {"n": "\ufffd"}]},)
    bad = tmp_path / "sp" / "000000000000.bad"
    with open(bad, "rb") as f:
        assert pickle.load(f) == [huge]
    assert (w.set_aside_batches, w.set_aside_records) == (1, 1)
    # the cockpit shows it as a missing row (Activity page, Gaps), saying where it is kept
    with psycopg.connect(dsn) as conn:
        gaps = conn.execute("SELECT stream, epoch, from_id, to_id, from_at, to_at, reason FROM gaps "
                            "WHERE provider_id='w'").fetchall()
    assert gaps == [("activity", EPOCH, 12, 12, act(12).finished_at, act(12).finished_at,
                     f"row 12 rejected by Postgres (OverflowError: int too big to convert); kept in {bad}")]


def test_rejection_gaps_name_the_row_and_never_carry_unencodable_text():
    cap = Capture("w", EPOCH, 7, {}, T0)
    gaps = rejection_gaps([act(5), model("ready", 1), cap, replace(act(6), upstream_id=2**70)], "sp/3.bad",
                          "E: bad '\ud800' \x00", T0)
    assert [(g.stream, g.from_id, g.to_id, g.from_at) for g in gaps] == [
        ("activity", 5, 5, act(5).finished_at), ("capture", 7, 7, None), ("activity", None, None, act(6).finished_at)]
    assert gaps[0].reason == "row 5 rejected by Postgres (E: bad '\\ud800' \\x00); kept in sp/3.bad"
    assert gaps[1].reason.startswith("capture of row 7 rejected by Postgres (")


def test_set_aside_never_replaces_an_earlier_bad_file(tmp_path):
    sp = Spool(tmp_path / "sp")
    (tmp_path / "sp" / "000000000000.bad").write_bytes(b"earlier")  # a previous run's, same sequence number
    first = sp.set_aside(sp.put([act(1)]))
    assert first == tmp_path / "sp" / "000000000000.1.bad"
    assert (tmp_path / "sp" / "000000000000.bad").read_bytes() == b"earlier"
    assert sp.set_aside(tmp_path / "sp" / "000000000009.batch") is None  # gone meanwhile (another connector)
    assert len(sp) == 0 and [p.name for p in sp.set_aside_files()] == ["000000000000.1.bad", "000000000000.bad"]


def test_last_error_is_cleared_when_the_provider_connects(dsn, tmp_path):
    w = writer(dsn, tmp_path / "sp")

    def health() -> tuple[str, str | None, datetime | None]:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT status, last_error, last_error_at FROM connector_health").fetchone()
            assert row is not None
            return row[0], row[1], row[2]

    emit_flush(w, [Health("w", "unreachable", T0, last_error="cannot connect: ConnectError")])
    assert health() == ("unreachable", "cannot connect: ConnectError", T0)
    emit_flush(w, [Health("w", "connected", T0 + timedelta(seconds=5), version="v250")])
    assert health() == ("connected", None, None)
    emit_flush(w, [Health("w", "reconnecting", T0 + timedelta(seconds=9))])  # a stream end is not an error
    assert health() == ("reconnecting", None, None)
    emit_flush(w, [Health("w", "error", T0 + timedelta(seconds=12), last_error="HTTP 500")])
    emit_flush(w, [Health("w", "reconnecting", T0 + timedelta(seconds=13))])
    assert health() == ("reconnecting", "HTTP 500", T0 + timedelta(seconds=12))
