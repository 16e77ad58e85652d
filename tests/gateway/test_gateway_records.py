"""GatewayRequest rows through the shared write path on a real Postgres: written once (a replay is a no-op),
spooled while Postgres is away and written when it is back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from warehouse.db import psycopg_dsn
from warehouse.migrate import upgrade
from warehouse.records import GatewayRequest, Record
from warehouse.spool import Spool
from warehouse.writer import WriteOptions, Writer

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def req(i: int, **kw: object) -> GatewayRequest:
    base: dict[str, object] = dict(
        request_id=uuid.UUID(int=i), started_at=T0, replica="r1", consumer="alice", consumer_source="key",
        requested_model="auto:code", endpoint="chat", stream=True, status=200, total_ms=12.5, policy="auto:code",
        provider_id="gpu", model_id="qwen", reason="fastest loaded",
        fallbacks=[{"target": "cpu/qwen", "why": "connect error"}], ttft_ms=3.25, prompt_tokens=10,
        completion_tokens=i)
    base.update(kw)
    return GatewayRequest(**base)  # type: ignore[arg-type]


def emit_flush(w: Writer, *batches: list[Record]) -> None:
    async def main() -> None:
        for b in batches:
            await w.emit(b)
        await w.flush()

    asyncio.run(main())


def rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT completion_tokens, consumer, requested_model, provider_id, model_id, fallbacks, "
                            "stream, status, ttft_ms, total_ms FROM gateway_requests ORDER BY completion_tokens"
                            ).fetchall()


def test_gateway_requests_are_written_once_and_spooled_while_postgres_is_away(pg_cluster, tmp_path: Path):
    pg_cluster.ensure_database("gateway_records")
    url = pg_cluster.url("gateway_records")
    upgrade(url)
    dsn = psycopg_dsn(url)
    w = Writer(dsn, Spool(tmp_path / "sp"), WriteOptions(batch_rows=1000, flush_s=0.05))
    emit_flush(w, [req(1), req(2, error="upstream closed mid-stream", status=200)])
    assert w.db_ok
    got = rows(dsn)
    assert [r[0] for r in got] == [1, 2]
    assert got[0][1:] == ("alice", "auto:code", "gpu", "qwen", [{"target": "cpu/qwen", "why": "connect error"}],
                          True, 200, 3.25, 12.5)
    pg_cluster.stop("fast")
    try:
        emit_flush(w, [req(2), req(3)])  # req 2 again (a replay): a no-op once written
        assert not w.db_ok and len(w.spool) == 1
    finally:
        pg_cluster.start()
    emit_flush(w, [req(4, consumer="curl", consumer_source="user-agent", fallbacks=[])])
    assert w.db_ok and len(w.spool) == 0
    assert [r[0] for r in rows(dsn)] == [1, 2, 3, 4]
