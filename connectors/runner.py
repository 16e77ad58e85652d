"""The resident connector: follows every provider concurrently and lands records in Postgres.

* One asyncio task per provider runs `LlamaSwapFollower.session()` in a loop with exponential backoff
  and jitter; one slow or broken provider never blocks another.
* Followers hand records to `emit`, which only appends to an in-memory list; one writer task flushes
  batches (every ``flush_s`` or ``batch_rows``) through `warehouse.ingest.write_batch` in a worker
  thread. When Postgres is away, batches go to the on-disk `Spool` and are replayed, in order and
  without duplicates, when it returns. Past ``buffer_rows`` pending records, new records spill straight
  to disk so memory stays bounded.
* Connection status and the last error per provider land in ``connector_health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from connectors.follower import LlamaSwapFollower, ProviderState, StreamEnded
from connectors.llama_swap_api import LlamaSwapAPI, LlamaSwapError
from connectors.records import Health, Record, utcnow
from connectors.spool import Spool, SpoolFull
from core.providers import Provider, Registry

log = logging.getLogger(__name__)


@dataclass
class ConnectorOptions:
    batch_rows: int = 2000
    flush_s: float = 0.25
    buffer_rows: int = 200_000
    perf_poll_s: float = 5.0
    liveness_s: float = 15.0
    fetch_captures: bool = True
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(status, message) for connector_health; never includes credentials."""
    if isinstance(exc, LlamaSwapError):
        if exc.status in (401, 403):
            return "auth_failed", f"HTTP {exc.status} on {exc.path}: {exc.message} (check the provider's api_key_env)"
        return "error", str(exc)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return "unreachable", f"cannot connect: {exc.__class__.__name__}: {exc}"
    if isinstance(exc, StreamEnded):
        return "reconnecting", str(exc)
    if isinstance(exc, httpx.HTTPError):
        return "error", f"{exc.__class__.__name__}: {exc}"
    return "error", f"{exc.__class__.__name__}: {exc}"


class Writer:
    """Batches records into Postgres; spools to disk while Postgres is away."""

    def __init__(self, dsn: str, spool: Spool, opts: ConnectorOptions) -> None:
        self.dsn = dsn
        self.spool = spool
        self.opts = opts
        self.pending: list[Record] = []
        self._conn: psycopg.Connection[Any] | None = None
        self._wake = asyncio.Event()
        self.rows_written = 0
        self.flushes = 0
        self.flush_seconds = 0.0
        self.db_ok = True
        self.last_error: str | None = None

    async def emit(self, records: Sequence[Record]) -> None:
        if len(self.pending) >= self.opts.buffer_rows:
            try:
                await asyncio.to_thread(self.spool.put, list(records))
            except SpoolFull as exc:
                log.error("dropping %d records: %s", len(records), exc)
            return
        self.pending.extend(records)
        if len(self.pending) >= self.opts.batch_rows:
            self._wake.set()

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, connect_timeout=5)
        return self._conn

    def _write(self, records: Sequence[Record]) -> None:
        from warehouse.ingest import write_batch

        try:
            write_batch(self._connect(), records)
        except psycopg.OperationalError:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None
            raise

    def _drain_spool(self) -> int:
        n = 0
        while (item := self.spool.peek()) is not None:
            path, records = item
            self._write(records)
            self.spool.ack(path)
            n += len(records)
        return n

    def _flush_sync(self, batch: list[Record]) -> None:
        try:
            if len(self.spool):
                self._drain_spool()
            if batch:
                self._write(batch)
            self.rows_written += len(batch)
            if not self.db_ok:
                log.info("Postgres is back; spool replayed")
            self.db_ok, self.last_error = True, None
        except psycopg.Error as exc:
            if self.db_ok:
                log.error("Postgres write failed (%s); spooling to %s", exc.__class__.__name__, self.spool.dir)
            self.db_ok, self.last_error = False, str(exc).strip()[:500]
            if batch:
                try:
                    self.spool.put(batch)
                except SpoolFull as full:
                    log.error("dropping %d records: %s", len(batch), full)
            if not isinstance(exc, psycopg.OperationalError):
                log.exception("batch rejected by Postgres; kept in the spool for inspection")

    async def flush(self) -> None:
        batch, self.pending = self.pending, []
        t0 = time.monotonic()
        await asyncio.to_thread(self._flush_sync, batch)
        self.flush_seconds += time.monotonic() - t0
        self.flushes += 1

    def stats_line(self) -> str:
        avg = 1000 * self.flush_seconds / self.flushes if self.flushes else 0.0
        line = (f"writer: {self.rows_written} records in {self.flushes} batches (avg {avg:.0f} ms), "
                f"pending {len(self.pending)}, spooled batches {len(self.spool)}")
        self.flushes, self.flush_seconds, self.rows_written = 0, 0.0, 0
        return line

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        last_stats = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - last_stats >= 30:
                log.info(self.stats_line())
                last_stats = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.opts.flush_s)
            self._wake.clear()
            if self.pending or len(self.spool):
                await self.flush()
                if not self.db_ok:
                    await asyncio.sleep(min(backoff, 10.0))
                    backoff *= 2
                else:
                    backoff = 0.5
        await self.flush()
        if self._conn is not None:
            self._conn.close()


class Connector:
    def __init__(self, registry: Registry, dsn: str, spool_dir: Path, opts: ConnectorOptions | None = None,
                 client: httpx.AsyncClient | None = None,
                 follower_factory: Callable[..., LlamaSwapFollower] = LlamaSwapFollower) -> None:
        self.registry = registry
        self.dsn = dsn
        self.opts = opts or ConnectorOptions()
        self.spool = Spool(spool_dir)
        self.writer = Writer(dsn, self.spool, self.opts)
        self.client = client
        self.follower_factory = follower_factory
        self.followers: dict[str, LlamaSwapFollower] = {}
        self.status: dict[str, str] = {}

    def _prepare_db(self) -> dict[str, ProviderState]:
        from warehouse.ingest import load_state, sync_providers

        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            sync_providers(conn, self.registry.providers)
            return {p.id: load_state(conn, p.id) for p in self.registry.providers}

    async def _wait_for_db(self, stop: asyncio.Event) -> dict[str, ProviderState]:
        delay = 1.0
        while True:
            try:
                return await asyncio.to_thread(self._prepare_db)
            except psycopg.OperationalError as exc:
                log.error("waiting for Postgres: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
                if stop.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def _health(self, provider: Provider, status: str, **kw: Any) -> None:
        self.status[provider.id] = status
        await self.writer.emit([Health(provider.id, status, utcnow(), **kw)])

    async def supervise(self, provider: Provider, state: ProviderState, client: httpx.AsyncClient) -> None:
        if provider.kind != "llama-swap":
            await self._health(provider, "unsupported", last_error=f"connector kind {provider.kind!r} is not available yet")
            return
        api = LlamaSwapAPI(provider, client)
        attempt = 0

        async def connected(version: str | None, boot: str | None) -> None:
            await self._health(provider, "connected", version=version, boot_marker=boot, connected_since=utcnow())

        follower = self.follower_factory(api, state, self.writer.emit, perf_poll_s=self.opts.perf_poll_s,
                                         liveness_s=self.opts.liveness_s, fetch_captures=self.opts.fetch_captures,
                                         on_connected=connected)
        self.followers[provider.id] = follower
        while True:
            started = time.monotonic()
            try:
                await follower.session()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - every failure is reported and retried
                status, message = describe_error(exc)
                if isinstance(exc, StreamEnded):
                    log.info("%s: %s; reconnecting", provider.id, message)
                    await self._health(provider, status)
                else:
                    log.warning("%s: %s", provider.id, message)
                    await self._health(provider, status, last_error=message)
            attempt = 0 if time.monotonic() - started > 10 else attempt + 1
            delay = min(self.opts.backoff_max_s, self.opts.backoff_base_s * (2 ** max(attempt - 1, 0)))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0) if attempt else random.uniform(0.05, 0.3))

    async def _watch_loop_lag(self) -> None:
        """Log how late the event loop wakes up: a late loop delays every provider at once."""
        worst, window_start = 0.0, time.monotonic()
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.1)
            worst = max(worst, time.monotonic() - t0 - 0.1)
            if time.monotonic() - window_start >= 30:
                log.info("event loop: worst wake-up delay %.0f ms in the last 30 s", worst * 1000)
                worst, window_start = 0.0, time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        states = await self._wait_for_db(stop)
        # One small pool per provider: httpcore's pool scans all its connections on every request, so a
        # single shared pool holding 500 long-lived SSE streams makes each request cost O(fleet).
        # They share one TLS context: httpx would otherwise load the CA bundle once per client (~1 MB each).
        tls = ssl.create_default_context()
        clients = {p.id: self.client or httpx.AsyncClient(limits=httpx.Limits(max_connections=8), verify=tls,
                                                          timeout=httpx.Timeout(15.0))
                   for p in self.registry.providers}
        writer = asyncio.ensure_future(self.writer.run(stop))
        tasks = [asyncio.ensure_future(self.supervise(p, states[p.id], clients[p.id])) for p in self.registry.providers]
        tasks.append(asyncio.ensure_future(self._watch_loop_lag()))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            await writer
            for p in self.registry.providers:
                self.writer.pending.append(Health(p.id, "stopped", utcnow()))
            await self.writer.flush()
            if self.client is None:
                for c in clients.values():
                    await c.aclose()
