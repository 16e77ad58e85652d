"""A gateway replica in a thread (its own event loop) on a real Postgres, and the catalog rows routing reads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.providers import Provider, Registry
from gateway.attribution import KeyBook
from gateway.policies import PolicyWatcher
from gateway.server import Gateway, GatewayOptions, serve
from warehouse.db import make_engine, psycopg_dsn
from warehouse.ingest import sync_providers, write_batch
from warehouse.records import Health, ModelInfo, Record
from warehouse.spool import Spool
from warehouse.writer import WriteOptions, Writer


@dataclass
class RunningGateway:
    base_url: str  # what an OpenAI client takes (…/v1)
    root: str
    gateway: Gateway
    writer: Writer


@contextmanager
def run_gateway(db_url: str, registry: Registry, tmp: Path, *, keys: KeyBook | None = None,
                policies: Path | None = None, **opts: Any) -> Iterator[RunningGateway]:
    options = GatewayOptions(**{"replica": "test", "first_byte_timeout_s": 5.0, "connect_timeout_s": 2.0,
                                "facts_refresh_s": 0.2, **opts})
    writer = Writer(psycopg_dsn(db_url), Spool(tmp / "gw-spool"), WriteOptions(batch_rows=500, flush_s=0.05))
    engine = make_engine(db_url, pool_size=1)
    gw = Gateway(registry, keys or KeyBook({}), PolicyWatcher(policies), engine, writer.emit, options)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    port: list[int] = []
    started = threading.Event()

    async def main() -> None:
        writer_stop = asyncio.Event()
        task = asyncio.create_task(writer.run(writer_stop))
        try:
            await serve(gw, "127.0.0.1", 0, stop, lambda p: (port.append(p), started.set()))
        finally:
            writer_stop.set()
            await task

    th = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    th.start()
    assert started.wait(30), "gateway did not start"
    root = f"http://127.0.0.1:{port[0]}"
    try:
        yield RunningGateway(root + "/v1", root, gw, writer)
    finally:
        loop.call_soon_threadsafe(stop.set)
        th.join(30)
        loop.close()
        engine.dispose()


def seed(db_url: str, providers: Sequence[Provider], models: Sequence[tuple[str, str]],
         offline: Sequence[str] = (), extra: Sequence[Record] = ()) -> None:
    """Providers in the registry table, their models in the catalog, each connected unless named offline."""
    now = datetime.now(UTC)
    recs: list[Record] = [ModelInfo(p, m, now, state=None) for p, m in models]
    recs += [Health(p.id, "disconnected" if p.id in offline else "connected", now) for p in providers]
    recs += list(extra)
    with psycopg.connect(psycopg_dsn(db_url)) as conn:
        sync_providers(conn, providers)
        write_batch(conn, recs)
        conn.commit()


def rows(db_url: str, where: str = "true") -> list[dict[str, Any]]:
    with psycopg.connect(psycopg_dsn(db_url)) as conn:
        cur = conn.execute(f"SELECT * FROM gateway_requests WHERE {where} ORDER BY id")  # noqa: S608 - test SQL
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def wait_rows(db_url: str, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The gateway records a request after answering it: wait until ``n`` rows have landed."""
    deadline = time.monotonic() + timeout
    while True:
        got = rows(db_url)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.fixture()
def gw_db(db: Any, db_url: str) -> str:
    return db_url
