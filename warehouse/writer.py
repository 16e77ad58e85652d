"""The one write path: records into Postgres in batches, idempotently, spooled to disk while Postgres is away.

Producers (the connector's followers, later evals and the gateway) hand `Writer.emit` lists of records from
`warehouse.records`; one `Writer.run` task flushes them every ``flush_s`` or ``batch_rows`` through
`warehouse.ingest.write_batch` in a worker thread. When Postgres is away, batches go to the on-disk
`Spool` and are replayed in order, without duplicates (every table deduplicates by constraint), when it
returns. Past ``buffer_rows`` pending records, new records spill straight to disk so memory stays bounded.
A batch Postgres rejects for its content (a constraint or data error, not a lost connection) would fail the same
way forever and block every later one: it is set aside on disk (``Spool.set_aside``), logged and counted, and the
writer goes on with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from warehouse.ingest import write_batch
from warehouse.records import Record
from warehouse.spool import Spool, SpoolFull

log = logging.getLogger(__name__)

# Errors caused by a batch's content: retrying the same batch fails the same way. Anything else (a lost connection,
# a missing schema, a permission) is about the database and is retried from the spool once it is back.
REJECTED = (psycopg.DataError, psycopg.IntegrityError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0] if text else ''}"[:500]


@dataclass(frozen=True)
class WriteOptions:
    batch_rows: int = 2000
    flush_s: float = 0.25
    buffer_rows: int = 200_000


class Writer:
    """Batches records into Postgres; spools to disk while Postgres is away."""

    def __init__(self, dsn: str, spool: Spool, opts: WriteOptions) -> None:
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
        self.replayed_batches = 0  # spool files written to Postgres so far (state loaded before a replay is stale)
        self.dropped_records = 0  # records lost because the spool was over its budget (each logged as an error)
        self.set_aside_batches = 0  # batches Postgres rejected for their content, kept on disk as .bad files
        self._spill_lock = asyncio.Lock()
        self._flushes_started = 0  # generations, so `drain` knows which flush carries a given record
        self._flushes_done = 0
        self._flushed = asyncio.Event()

    async def emit(self, records: Sequence[Record]) -> None:
        if len(self.pending) >= self.opts.buffer_rows:
            # Spill what is pending, then these, in that order: a flush replays the spool before its own batch,
            # so spilling only the newer records would let older pending ones overwrite them (model states,
            # catalog fields: the last write wins).
            older, self.pending = self.pending, []
            async with self._spill_lock:
                await asyncio.to_thread(self._spill, [older, list(records)])
            return
        self.pending.extend(records)
        if len(self.pending) >= self.opts.batch_rows:
            self._wake.set()

    def _spill(self, batches: list[list[Record]]) -> None:
        for batch in batches:
            if not batch:
                continue
            try:
                self.spool.put(batch)
            except SpoolFull as exc:
                self.dropped_records += len(batch)
                log.error("dropping %d records: %s", len(batch), exc)

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, connect_timeout=5)
        return self._conn

    def _write(self, records: Sequence[Record]) -> None:
        try:
            write_batch(self._connect(), records)
        except psycopg.OperationalError:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None
            raise

    def _set_aside(self, path: Path | None, records: Sequence[Record], exc: Exception) -> None:
        self.set_aside_batches += 1
        log.error("batch of %d records rejected by Postgres (%s); set aside as %s, writing the rest",
                  len(records), _first_line(exc), path if path is not None else "(taken by another connector)")

    def _drain_spool(self) -> int:
        n = 0
        while (item := self.spool.peek()) is not None:
            path, records = item
            try:
                self._write(records)
            except REJECTED as exc:
                self._set_aside(self.spool.set_aside(path), records, exc)
                continue
            self.spool.ack(path)
            self.replayed_batches += 1
            n += len(records)
        return n

    def _flush_sync(self, batch: list[Record]) -> None:
        try:
            if len(self.spool):
                self._drain_spool()
            if batch:
                try:
                    self._write(batch)
                except REJECTED as exc:
                    self._put_aside(batch, exc)
                    batch = []
            self.rows_written += len(batch)
            if not self.db_ok:
                log.info("Postgres is back; spool replayed")
            self.db_ok, self.last_error = True, None
        except psycopg.Error as exc:
            if self.db_ok:
                why = exc.__class__.__name__ if isinstance(exc, psycopg.OperationalError) else _first_line(exc)
                log.error("Postgres write failed (%s); spooling to %s and retrying", why, self.spool.dir)
            self.db_ok, self.last_error = False, str(exc).strip()[:500]
            if batch:
                try:
                    self.spool.put(batch)
                except SpoolFull as full:
                    self.dropped_records += len(batch)
                    log.error("dropping %d records: %s", len(batch), full)

    def _put_aside(self, batch: list[Record], exc: Exception) -> None:
        try:
            path = self.spool.put_aside(batch)
        except SpoolFull as full:
            self.dropped_records += len(batch)
            log.error("dropping %d records rejected by Postgres (%s): %s", len(batch), _first_line(exc), full)
            return
        self._set_aside(path, batch, exc)

    async def flush(self) -> None:
        batch, self.pending = self.pending, []
        self._flushes_started += 1
        gen = self._flushes_started
        t0 = time.monotonic()
        try:
            await asyncio.to_thread(self._flush_sync, batch)
        finally:
            self.flush_seconds += time.monotonic() - t0
            self.flushes += 1
            self._flushes_done = max(self._flushes_done, gen)
            self._flushed.set()
            self._flushed = asyncio.Event()

    async def drain(self) -> bool:
        """Wait until every record emitted before this call is written (or spooled) by the running `run` loop.

        True when Postgres took them. A connector calls this before handing a provider to another process, so the
        next owner's `load_state` sees everything this one observed.
        """
        target = self._flushes_started + (1 if self.pending else 0)
        self._wake.set()
        while self._flushes_done < target:
            await self._flushed.wait()
        return self.db_ok

    def landed(self) -> bool:
        """Postgres has everything spooled so far (nothing waits on disk and the last write succeeded)."""
        if not self.db_ok or len(self.spool):
            self._wake.set()  # replay at the next tick of `run` rather than after flush_s
            return False
        return True

    def stats_line(self) -> str:
        avg = 1000 * self.flush_seconds / self.flushes if self.flushes else 0.0
        line = (f"writer: {self.rows_written} records in {self.flushes} batches (avg {avg:.0f} ms), "
                f"pending {len(self.pending)}, spooled batches {len(self.spool)}"
                + (f", set aside (rejected) {self.set_aside_batches}" if self.set_aside_batches else ""))
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
