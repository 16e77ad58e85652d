"""The one write path: records into Postgres in batches, idempotently, spooled to disk while Postgres is away.

Producers (the connector's followers, later evals and the gateway) hand `Writer.emit` lists of records from
`warehouse.records`; one `Writer.run` task flushes them every ``flush_s`` or ``batch_rows`` through
`warehouse.ingest.write_batch` in a worker thread. When Postgres is away, batches go to the on-disk
`Spool` and are replayed in order, without duplicates (every table deduplicates by constraint), when it
returns. Past ``buffer_rows`` pending records, new records spill straight to disk so memory stays bounded.
A batch Postgres rejects for its content (a constraint or data error, a value that cannot be encoded; not a lost
connection) would fail the same way on every replay and block every later one: its halves are written until the
rejected records are isolated, those are set aside on disk (``<seq>.bad``, `Spool.put_aside`), logged in one line
and counted, and the writer goes on with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from warehouse.ingest import write_batch
from warehouse.records import Activity, Capture, Gap, Record
from warehouse.spool import Spool, SpoolFull

log = logging.getLogger(__name__)

MAX_SPLIT_WRITES = 64  # writes spent isolating the rejected records of one batch; past that, parts go aside whole


def rejected_for_content(exc: Exception) -> bool:
    """True for errors a batch's content causes, which retrying the same records repeats: Postgres refusing a
    value or a constraint (DataError, IntegrityError), or a record that cannot be encoded at all (a lone UTF-16
    surrogate in a text, an integer beyond bigint: Python errors, raised before Postgres sees the row). Anything
    else from Postgres (a lost connection, a missing schema, a permission) is about the database: the batch is
    kept in the spool and retried once it is back."""
    if isinstance(exc, psycopg.Error):
        return isinstance(exc, (psycopg.DataError, psycopg.IntegrityError))
    return True


_BIGINT = 2**63 - 1
_UNENCODABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone UTF-16 surrogates: no text or jsonb holds them


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _UNENCODABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(v) for v in value)
    return value


def encodable(record: Record) -> Record | None:
    """``record`` with every NUL and lone UTF-16 surrogate in its texts (nested JSON too) replaced by U+FFFD, or
    None when it has none. JSON's ``\\ud800`` decodes to a lone surrogate; neither Postgres' text nor jsonb can
    hold one, so such a record is written this way rather than set aside."""
    changes = {}
    for f in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        cleaned = _clean(value)
        if cleaned != value:
            changes[f.name] = cleaned
    return dataclasses.replace(record, **changes) if changes else None  # type: ignore[type-var]


def rejection_gaps(records: Sequence[Record], kept_in: str, why: str, now: datetime) -> list[Gap]:
    """A `Gap` for every activity row or capture among rejected records, so the cockpit shows them as missing
    (Activity page, Gaps) and says where they are kept; other record types are only in the ``.bad`` file."""
    gaps: list[Gap] = []
    for r in records:
        if isinstance(r, (Activity, Capture)):
            uid = r.upstream_id if isinstance(r.upstream_id, int) and 0 <= r.upstream_id <= _BIGINT else None
            at = r.finished_at if isinstance(r, Activity) else None
            stream = "activity" if isinstance(r, Activity) else "capture"
            what = "row" if isinstance(r, Activity) else "capture of row"
            reason = f"{what} {r.upstream_id} rejected by Postgres ({why}); kept in {kept_in}"
            # the error text may quote the offending value: never let it fail the same way again
            reason = reason.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
            gaps.append(Gap(r.provider_id, stream, r.epoch, uid, uid, at, at, now, reason))
    return gaps


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
        self.set_aside_batches = 0  # .bad files of records Postgres rejected for their content (kept on disk)
        self.set_aside_records = 0
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

    def _write_isolating(self, records: Sequence[Record]) -> list[tuple[list[Record], Exception]]:
        """Write ``records``; when they are rejected for their content, write the halves Postgres accepts (in order:
        the last write still wins, as with any batch boundary) and return the rejected parts, each with its error:
        single records, or past `MAX_SPLIT_WRITES` the part that held them. Other errors propagate: the caller keeps
        the whole batch for a replay, which is idempotent."""
        rejected: list[tuple[list[Record], Exception]] = []
        budget = MAX_SPLIT_WRITES

        def write(part: Sequence[Record]) -> None:
            nonlocal budget
            budget -= 1
            try:
                self._write(part)
            except Exception as exc:
                if not rejected_for_content(exc):
                    raise
                if len(part) == 1 and (fixed := encodable(part[0])) is not None:
                    try:
                        self._write([fixed])
                        log.warning("a %s record with NUL or lone surrogate characters was written with U+FFFD "
                                    "in their place", type(fixed).__name__)
                        return
                    except Exception as again:
                        if not rejected_for_content(again):
                            raise
                if len(part) == 1 or budget <= 0:
                    rejected.append((list(part), exc))
                    return
                write(part[: len(part) // 2])
                write(part[len(part) // 2 :])

        write(records)
        return rejected

    def _set_aside(
        self, origin: str, total: int, parts: list[tuple[list[Record], Exception]], spooled: Path | None = None
    ) -> int:
        """Keep what Postgres rejected in a ``.bad`` file beside the spool, say so in one line, and record the rows
        among them as gaps. Returns how many records were rejected. With no room for a new file, a ``spooled``
        batch is set aside whole instead (its accepted records are in Postgres too: a replay deduplicates them)."""
        rejected = [r for part, _ in parts for r in part]
        if not rejected:
            return 0
        first = _first_line(parts[0][1])
        more = f" and {len(parts) - 1} more" if len(parts) > 1 else ""
        try:
            path = self.spool.put_aside(rejected)
        except SpoolFull as full:
            if spooled is not None:
                path = self.spool.set_aside(spooled)
                self.set_aside_batches += 1
                self.set_aside_records += len(rejected)
                log.error("%s: %d of %d records rejected by Postgres (%s%s); no room for them alone (%s): the whole "
                          "file set aside as %s", origin, len(rejected), total, first, more, full, path)
                return len(rejected)
            self.dropped_records += len(rejected)
            log.error("%s: dropping %d of %d records rejected by Postgres (%s%s): %s", origin, len(rejected), total,
                      first, more, full)
            return len(rejected)
        self.set_aside_batches += 1
        self.set_aside_records += len(rejected)
        kept_in = str(path) if path is not None else f"{self.spool.dir} (set aside by a connector sharing it)"
        log.error("%s: %d of %d records rejected by Postgres (%s%s); set aside as %s, the other %d written",
                  origin, len(rejected), total, first, more, kept_in, total - len(rejected))
        now = datetime.now(UTC)
        gaps = [g for part, exc in parts for g in rejection_gaps(part, kept_in, _first_line(exc), now)]
        if gaps:
            try:
                self._write(gaps)
            except Exception as gap_exc:  # noqa: BLE001 - the records are on disk and logged; the gap is a courtesy
                log.error("%s: could not record the rejected rows as gaps (%s)", origin, _first_line(gap_exc))
        return len(rejected)

    def _drain_spool(self) -> int:
        n = 0
        while (item := self.spool.peek()) is not None:
            path, records = item
            rejected = self._set_aside(f"spool file {path.name}", len(records), self._write_isolating(records), path)
            self.spool.ack(path)
            self.replayed_batches += 1
            n += len(records) - rejected
        return n

    def _flush_sync(self, batch: list[Record]) -> None:
        try:
            if len(self.spool):
                self._drain_spool()
            rejected = self._set_aside("batch", len(batch), self._write_isolating(batch)) if batch else 0
            self.rows_written += len(batch) - rejected
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
                + (f", rejected records set aside {self.set_aside_records}" if self.set_aside_records else ""))
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
