"""Following one llama-swap instance: reconcile on every (re)connect, then consume /api/events.

One `LlamaSwapFollower.session()` call is one connection's life: it reconciles by polling
(version, hardware boot marker, models, running, activity from the id cursor, performance after the
last sample), then follows the SSE stream until it ends, raising `StreamEnded` or an HTTP error. The
runner (`connectors.runner`) owns retries, backoff and health; this class owns the protocol.

Activity bookkeeping
--------------------
``state.epoch`` names the current id sequence and ``state.cursor`` is the highest id handed to the sink.
On a new boot marker the sequence continues only if the row at the cursor still exists upstream with
the same signature (timestamp, model, path, status, duration, tokens: a persistent ``store.path``) and
did not finish after the new boot began; otherwise a new epoch starts. A gap record is written when ids
are missing upstream (ring overflow while we were away), and on a new in-memory epoch when rows may
really be missing:

* the previous boot was not followed to its end. That is decided when a connection ends, after the
  activity fetch it started has finished and one more fetch was tried (`_settle`): every id llama-swap
  announced on the stream was read. Count unknown.
* requests were in flight when the server closed the stream to shut down: llama-swap drains them after
  closing its streams and their rows die with the in-memory store. At most that many ids after the cursor.
* the instance went unobserved long enough for a whole boot to come and go: from the last observation of
  the previous boot (``lost_at``) to the new boot's start (``captured_at``, moved to our clock with the
  offset bounds from ``Date`` headers, `connectors.clock`), some stretch longer than ``unseen_boot_s`` was
  not covered by a refused connect attempt. A boot that ran there left no epoch and no rows: the gap says
  "restarted between T1 and T2 and was not observed; rows unknown".

Captures: llama-swap stores an activity row before its capture and announces the row on the stream after
both, so a row read before its announcement can say ``has_capture: false`` for a capture about to exist.
Such rows are checked again once announced (or after a short wait). A capture the row said was there is
retried on transport errors until llama-swap returns it or answers 404 (dropped from its FIFO, or lost
with a restart); then a ``capture`` gap names the row, so it is never silently absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors import llama_swap as proto
from connectors.llama_swap_api import Event, LlamaSwapAPI, LlamaSwapError, decode_event
from warehouse.records import (
    Activity,
    Boot,
    Capture,
    ConfigReload,
    Epoch,
    Gap,
    GpuSample,
    Inflight,
    LogChunk,
    PerfSample,
    ProviderState,
    RawEvent,
    Record,
    Transition,
    utcnow,
)

log = logging.getLogger(__name__)

Emit = Callable[[Sequence[Record]], Awaitable[None]]
PAGE = 999
LOG_TAIL = 4096
ANNOUNCE_WAIT_S = 5.0  # how long a row read before its announcement waits for it before its capture is asked for
CAPTURE_TRIES = 6  # transport errors tolerated per capture (backoff 0.5, 1, 2, 4, 8 s)
# A boot that leaves rows must start, load a model, serve a request and stop, then its successor must start:
# a stretch without observation shorter than this cannot hold one. A single restart of llama-swap spans
# 0.1-0.5 s, of the Python simulator under load up to ~2 s.
UNSEEN_BOOT_S = 3.0
UNSEEN_TAIL_IDS = 16  # only the newest rows of a fetch can have been read between their storage and their capture


def activity_signature(a: Activity) -> tuple[Any, ...]:
    return (a.finished_at, a.model_id, a.req_path, a.status_code, a.duration_ms, a.input_tokens, a.output_tokens)


def finished_after_boot(finished_at: datetime, boot_marker: str | None) -> bool:
    """True when an activity row (whole-second timestamp, truncated) certainly finished after the process
    whose ``/api/hardware`` ``captured_at`` is ``boot_marker`` started, so it cannot be a row that
    survived from an earlier boot. A row in the boot's own second is undecided (False)."""
    if not boot_marker or boot_marker.startswith("seen:"):
        return False
    try:
        booted = proto.parse_timestamp(boot_marker)
    except proto.ProtocolError:
        return False
    return finished_at >= booted.replace(microsecond=0) + timedelta(seconds=1)


def boot_started_at(boot_marker: str | None) -> datetime | None:
    """When the process named by a boot marker started (its ``captured_at``); None for inferred markers."""
    if not boot_marker or boot_marker.startswith("seen:"):
        return None
    try:
        return proto.parse_timestamp(boot_marker)
    except proto.ProtocolError:
        return None


def unobserved_stretch(lost_at: datetime, absent_at: Sequence[datetime], boot_at: datetime,
                       min_s: float) -> tuple[datetime, datetime] | None:
    """The longest stretch between ``lost_at`` (last observation of the previous boot) and ``boot_at`` (the
    new boot's start, on our clock) not covered by a refused connect attempt, when longer than ``min_s``:
    a boot could have started, served requests and died there unseen. None when no such stretch exists."""
    if boot_at <= lost_at:
        return None
    points = sorted({lost_at, boot_at, *(t for t in absent_at if lost_at < t < boot_at)})
    start, end = max(zip(points, points[1:], strict=False), key=lambda p: p[1] - p[0])
    return (start, end) if (end - start).total_seconds() > min_s else None


def refused(exc: BaseException) -> bool:
    """A connect attempt that proves nothing listened at the instance's address (not a timeout or DNS)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError) or "refused" in str(e).lower():
            return True
        e = e.__cause__ or e.__context__
    return False


class StreamEnded(Exception):
    """The server closed /api/events (shutdown or config reload)."""


def older_cursor(*cursors: str | None) -> str | None:
    """The earliest of llama-swap timestamps, as its raw string (sent back as ``?after=`` unchanged).

    Compared as times, not strings: Go drops trailing zeros (``…15.71Z`` is later than ``…15.7Z`` but sorts
    first) and keeps the host's offset. An unparseable cursor, or none at all, gives None: everything llama-swap
    holds, which only re-fetches samples the database already deduplicates.
    """
    keyed: list[tuple[int, str]] = []
    for raw in cursors:
        if raw:
            try:
                keyed.append((proto.timestamp_ns(raw), raw))
            except proto.ProtocolError:
                return None
    return min(keyed, key=lambda k: k[0])[1] if keyed else None


def newest_cursor(cursors: Sequence[str]) -> str | None:
    """The latest of parsed samples' llama-swap timestamps, as its raw string (compared as times, see
    `older_cursor`); None when there is none that parses."""
    keyed: list[tuple[int, str]] = []
    for raw in cursors:
        with contextlib.suppress(proto.ProtocolError):
            keyed.append((proto.timestamp_ns(raw), raw))
    return max(keyed, key=lambda k: k[0])[1] if keyed else None


class LlamaSwapFollower:
    kind = "llama-swap"

    def __init__(self, api: LlamaSwapAPI, state: ProviderState, emit: Emit, *,
                 perf_poll_s: float = 5.0, liveness_s: float = 15.0, fetch_captures: bool = True,
                 on_connected: Callable[[str | None, str | None], Awaitable[None]] | None = None,
                 unseen_boot_s: float = UNSEEN_BOOT_S) -> None:
        self.api = api
        self.pid = api.provider.id
        self.state = state
        self.emit = emit
        self.perf_poll_s = perf_poll_s
        self.liveness_s = liveness_s
        self.fetch_captures = fetch_captures
        self.on_connected = on_connected
        self.unseen_boot_s = unseen_boot_s  # a stretch this long without observation could hold a whole boot
        self._last_alive: datetime | None = None
        self._observed = False  # this connection saw the boot marker (so its end is a loss of observation)
        self.inflight: dict[str, dict[str, Any]] = {}
        self.max_announced = 0
        self._sync_lock = asyncio.Lock()
        self._sync_wanted = asyncio.Event()
        self._capture_sem = asyncio.Semaphore(4)
        self._replaying: dict[str, bool] = {}
        self._reconciled = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.ended_by_server = False

    # -- helpers -------------------------------------------------------------------------------
    def _raw(self, type_: str, payload: Any) -> RawEvent:
        return RawEvent(self.pid, self.state.boot_marker, utcnow(), type_, payload)

    # -- reconciliation ------------------------------------------------------------------------
    async def reconcile(self) -> None:
        now = utcnow()
        version = await self.api.version()
        hw = await self.api.hardware()
        self.state.version = str(version.get("version"))
        records: list[Record] = [self._raw("poll:/api/version", version)]
        if hw is not None:
            records.append(self._raw("poll:/api/hardware", hw))
        marker = str(hw["captured_at"]) if hw and hw.get("captured_at") else None
        prev_marker = self.state.boot_marker
        new_boot = marker is not None and marker != prev_marker
        if marker is None and prev_marker is None:
            marker = f"seen:{now.isoformat()}"  # before v247: no boot marker; epochs inferred from ids
            new_boot = True
        if new_boot:
            assert marker is not None
            self.state.boot_marker = marker
            records.append(Boot(self.pid, marker, version.get("version"), version.get("commit"),
                                version.get("build_date"), hw, now))
            await self._decide_epoch(records, prev_marker, now)
        elif prev_marker is not None:
            if self.ended_by_server:
                records.append(ConfigReload(self.pid, prev_marker, now, "events stream closed by the server "
                                            "while the boot marker stayed the same (config reload)"))
            records.append(Boot(self.pid, prev_marker, version.get("version"), version.get("commit"),
                                version.get("build_date"), hw, now))
        self.state.lost_at, self.state.inflight_at_close = None, 0  # observing the instance again
        self.state.absent_at.clear()
        self._observed = True
        if self.on_connected is not None:
            await self.on_connected(self.state.version, self.state.boot_marker)
        running = proto.redact_running(await self.api.running())
        records.append(self._raw("poll:/running", running))
        models = await self.api.models()
        records.append(self._raw("poll:/v1/models", models))
        records.extend(proto.parse_v1_models(models, self.pid, now))
        await self.emit(records)
        self.state.followed_to_end = False
        self.ended_by_server = False
        await self.sync_activity()
        await self.sync_performance()
        self._reconciled.set()

    async def _decide_epoch(self, records: list[Record], prev_marker: str | None, now: datetime) -> None:
        st = self.state
        assert st.boot_marker is not None
        if st.epoch is None:
            st.epoch = st.boot_marker
            records.append(Epoch(self.pid, st.epoch, now, "first contact"))
            return
        if st.cursor > 0 and await self._cursor_row_survives():
            log.info("%s: restarted with a persistent activity store; epoch %s continues", self.pid, st.epoch)
            return
        gap = self._restart_gap(prev_marker, now)
        if gap is not None:
            records.append(gap)
        st.epoch, st.cursor, st.cursor_finished_at, st.cursor_model = st.boot_marker, 0, None, None
        st.cursor_signature = None
        records.append(Epoch(self.pid, st.epoch, now, f"activity ids restarted (previous boot {prev_marker})"))

    def _restart_gap(self, prev_marker: str | None, now: datetime) -> Gap | None:
        """On a new in-memory epoch: the rows that may really be missing, or None when nothing can be."""
        st = self.state
        assert st.epoch is not None
        old_epoch, old_cursor = st.epoch, st.cursor
        booted = boot_started_at(st.boot_marker)
        boot_at = self.api.clock.earliest_local(booted) if booted is not None else None
        unseen = (unobserved_stretch(st.lost_at, st.absent_at, boot_at, self.unseen_boot_s)
                  if st.lost_at is not None and boot_at is not None else None)
        if not st.followed_to_end:
            between = f" and any boot before {boot_at.isoformat()}" if boot_at is not None else ""
            return Gap(self.pid, "activity", old_epoch, old_cursor + 1, None, st.cursor_finished_at, boot_at, now,
                       "instance restarted with an in-memory activity store while not followed: rows after id "
                       f"{old_cursor} of the previous boot{between} may be lost (count unknown)")
        if unseen is not None and st.lost_at is not None and boot_at is not None:
            return Gap(self.pid, "activity", old_epoch, old_cursor + 1, None, st.lost_at, boot_at, now,
                       f"instance restarted between {st.lost_at.isoformat()} and {boot_at.isoformat()} and was "
                       "not observed "
                       f"(nothing seen from {unseen[0].isoformat()} to {unseen[1].isoformat()}); rows unknown: "
                       f"of any boot in between, and of boot {prev_marker} after id {old_cursor}")
        if st.inflight_at_close:
            k = st.inflight_at_close
            return Gap(self.pid, "activity", old_epoch, old_cursor + 1, old_cursor + k, st.lost_at, boot_at, now,
                       f"{k} request(s) were in flight when boot {prev_marker} closed its event stream to shut down; "
                       f"their rows (at most ids {old_cursor + 1}..{old_cursor + k}) died with its in-memory store")
        return None

    async def _cursor_row_survives(self) -> bool:
        st = self.state
        try:
            page = await self.api.activity_page(min_id=st.cursor, max_id=st.cursor, limit=1, sort="id", order="asc")
        except Exception:  # noqa: BLE001 - probe only
            return False
        rows = [r for r in page.get("data") or [] if isinstance(r, dict) and r.get("id") == st.cursor]
        if not rows:
            if page.get("data"):  # filter ignored (<= v250): look for the id by paging
                rows = [r for r in await self._rows_desc_until(st.cursor - 1) if r.get("id") == st.cursor]
            if not rows:
                return False
        try:
            row = proto.parse_activity(rows[0], self.pid, st.epoch or "")
        except proto.ProtocolError:
            return False
        # whole-second timestamps alone are not enough: a fresh row 1 can land in the same second
        if st.cursor_signature is None or activity_signature(row) != st.cursor_signature:
            return False
        return not finished_after_boot(row.finished_at, st.boot_marker)

    # -- activity ------------------------------------------------------------------------------
    async def _rows_desc_until(self, stop_at: int) -> list[dict[str, Any]]:
        """For versions without id filters: newest-first pages until an id <= stop_at shows up."""
        rows: list[dict[str, Any]] = []
        page_no = 1
        while True:
            page = await self.api.activity_page(sort="id", order="desc", limit=PAGE, page=page_no)
            data = [r for r in page.get("data") or [] if isinstance(r, dict) and isinstance(r.get("id"), int)]
            rows.extend(r for r in data if r["id"] > stop_at)
            if not data or data[-1]["id"] <= stop_at or page_no >= int(page.get("total_pages") or 0):
                return rows
            page_no += 1

    async def _fetch_new_rows(self) -> list[dict[str, Any]]:
        st = self.state
        if st.id_filter is not False:
            rows: list[dict[str, Any]] = []
            start = st.cursor + 1
            while True:
                page = await self.api.activity_page(min_id=start, sort="id", order="asc", limit=PAGE)
                data = [r for r in page.get("data") or [] if isinstance(r, dict) and isinstance(r.get("id"), int)]
                if any(r["id"] < start for r in data):  # min_id ignored (v250 and older)
                    st.id_filter = False
                    break
                if data:
                    st.id_filter = True
                rows.extend(data)
                if len(data) < PAGE:
                    return rows
                start = data[-1]["id"] + 1
        return sorted(await self._rows_desc_until(st.cursor), key=lambda r: int(r["id"]))

    async def sync_activity(self) -> None:
        """Fetch every activity row after the cursor; coalesces concurrent triggers."""
        self._sync_wanted.set()
        async with self._sync_lock:
            while self._sync_wanted.is_set():
                self._sync_wanted.clear()
                await self._sync_activity_once()

    async def _sync_activity_once(self) -> None:
        st = self.state
        assert st.epoch is not None
        t0 = time.monotonic()
        announced_before = self.max_announced  # rows above this may be read before their capture is stored
        rows = await self._fetch_new_rows()
        took = time.monotonic() - t0
        if took > 2.0:
            log.info("%s: fetching %d activity rows took %.1f s", self.pid, len(rows), took)
        now = utcnow()
        records: list[Record] = []
        if rows:
            records.append(self._raw("poll:/api/metrics/activity", rows))
        if not rows:
            return
        newest = max(int(r["id"]) for r in rows)
        if newest < st.cursor:
            return
        first = int(rows[0]["id"])
        if first > st.cursor + 1:
            records.append(Gap(self.pid, "activity", st.epoch, st.cursor + 1, first - 1, st.cursor_finished_at,
                               None, now, f"ids {st.cursor + 1}..{first - 1} were no longer held upstream "
                                          "(activity ring overflowed while not followed)"))
        acts: list[Activity] = []
        for r in rows:
            try:
                acts.append(proto.parse_activity(r, self.pid, st.epoch))
            except proto.ProtocolError as exc:
                log.error("%s: skipping malformed activity row %r: %s", self.pid, r.get("id"), exc)
        records.extend(acts)
        await self.emit(records)
        last = acts[-1] if acts else None
        st.cursor = newest
        if last is not None and last.upstream_id == newest:
            st.cursor_finished_at, st.cursor_model = last.finished_at, last.model_id
            st.cursor_signature = activity_signature(last)
        if self.fetch_captures:
            tail = {a.upstream_id for a in acts[-UNSEEN_TAIL_IDS:]}
            for a in acts:
                if a.has_capture:
                    self._spawn(self._fetch_capture(a.epoch, a.upstream_id, expected=True))
                elif a.upstream_id > announced_before and a.upstream_id in tail:
                    self._spawn(self._fetch_capture(a.epoch, a.upstream_id, expected=False))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # keep a reference until done (asyncio holds only weak ones)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_capture(self, epoch: str, upstream_id: int, *, expected: bool) -> None:
        """Fetch one capture. ``expected``: the row said llama-swap held it, so a 404 means it was dropped and
        is recorded as a ``capture`` gap. Otherwise the row was read before llama-swap announced it (its capture
        may not have been stored yet): wait for the announcement, then ask; 404 then means there is none."""
        if not expected:
            deadline = time.monotonic() + ANNOUNCE_WAIT_S
            while upstream_id > self.max_announced and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        delay, error, boot = 0.5, "", self.state.boot_marker
        restarted = "the instance restarted before it was fetched"
        for attempt in range(CAPTURE_TRIES):
            if self.state.epoch != epoch or self.state.boot_marker != boot:
                error = restarted
                break
            try:
                async with self._capture_sem:
                    cap = await self.api.capture(upstream_id)
                    if cap is not None and (attempt or not expected):
                        # asked a while after the row was read: a new boot (ids restart at 1) may answer for
                        # the same id with its own capture, so accept it only from the boot the row came from
                        hw = await self.api.hardware()
                        if hw is not None and boot is not None and str(hw.get("captured_at")) != boot:
                            error = restarted
                            break
            except (httpx.HTTPError, LlamaSwapError, ValueError) as exc:
                error = f"{exc.__class__.__name__}: {exc}"
                log.info("%s: capture %s not fetched yet (%s); retrying in %.1f s", self.pid, upstream_id, error, delay)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            if cap is not None:
                await self.emit([Capture(self.pid, epoch, upstream_id, cap, utcnow())])
            elif expected:
                await self.emit([Gap(self.pid, "capture", epoch, upstream_id, upstream_id, None, None, utcnow(),
                                     f"capture of row {upstream_id} was dropped by llama-swap (evicted from its "
                                     "capture buffer, or lost with a reload or restart) before it was fetched")])
            return
        if expected:
            log.warning("%s: capture %s unavailable: %s", self.pid, upstream_id, error)
            await self.emit([Gap(self.pid, "capture", epoch, upstream_id, upstream_id, None, None, utcnow(),
                                 f"capture of row {upstream_id} could not be fetched: {error}")])

    # -- performance ---------------------------------------------------------------------------
    async def sync_performance(self) -> None:
        st = self.state
        after = older_cursor(st.sys_after, st.gpu_after)
        try:
            perf = await self.api.performance(after=after)
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "status", None) == 503:  # performance monitoring disabled
                return
            raise
        sys_stats = [s for s in perf.get("sys_stats") or [] if isinstance(s, dict)]
        gpu_stats = [g for g in perf.get("gpu_stats") or [] if isinstance(g, dict)]
        records: list[Record] = []
        for s in sys_stats:
            try:
                rec = proto.parse_sys_stat(s, self.pid)
            except proto.ProtocolError as exc:
                log.error("%s: bad sys_stat skipped: %s", self.pid, exc)
                continue
            records.append(rec)
        for g in gpu_stats:
            try:
                records.append(proto.parse_gpu_stat(g, self.pid))
            except proto.ProtocolError as exc:
                log.error("%s: bad gpu_stat skipped: %s", self.pid, exc)
        if not records:
            return
        records.append(self._raw("poll:/api/performance", {"sys_stats": sys_stats, "gpu_stats": gpu_stats}))
        await self.emit(records)
        # the newest sample read, by time (not the last list entry: it may be one skipped as malformed)
        st.sys_after = newest_cursor([r.raw_ts for r in records if isinstance(r, PerfSample)]) or st.sys_after
        st.gpu_after = newest_cursor([r.raw_ts for r in records if isinstance(r, GpuSample)]) or st.gpu_after

    # -- SSE -----------------------------------------------------------------------------------
    async def handle_message(self, message: str | Event) -> None:
        """One SSE message (decoded by the events reader, or a raw ``data:`` payload). Malformed input is logged
        and kept as a raw event, never fatal."""
        now = utcnow()
        ev = message if isinstance(message, Event) else decode_event(message)
        type_, payload, data = ev.type, ev.data, ev.raw
        if ev.error is not None:
            log.error("%s: malformed SSE message skipped (%s): %.200r", self.pid, ev.error, data)
            await self.emit([self._raw("sse:malformed", {"error": ev.error, "data": data[:65536]})])
            return
        records: list[Record] = [RawEvent(self.pid, self.state.boot_marker, now, "sse:" + type_, payload)]
        try:
            records.extend(self._interpret(type_, payload, now))
        except proto.ProtocolError as exc:
            log.error("%s: %s message not understood: %s", self.pid, type_, exc)
        await self.emit(records)
        if type_ == "activity" and isinstance(payload, dict) and isinstance(payload.get("id"), int):
            self.max_announced = max(self.max_announced, payload["id"])
            task = asyncio.get_running_loop().create_task(self._sync_soon())
            self._tasks.add(task)  # keep a reference until done (asyncio holds only weak ones)
            task.add_done_callback(self._tasks.discard)

    async def _sync_soon(self) -> None:
        await self._reconciled.wait()
        try:
            await self.sync_activity()
        except Exception as exc:  # noqa: BLE001 - the next reconcile will catch up
            log.warning("%s: activity sync failed: %s", self.pid, exc)

    def _interpret(self, type_: str, payload: Any, now: datetime) -> list[Record]:
        st = self.state
        if type_ == "modelStatus":
            infos = proto.parse_model_status(payload, self.pid, now)
            trans: list[Transition] = proto.diff_states(st.model_states, infos, self.pid, now, st.boot_marker)
            st.model_states = {m.model_id: m.state for m in infos if m.state is not None}
            return [*infos, *trans]
        if type_ == "inflight":
            self.inflight = proto.inflight_requests(payload, self.inflight)
            return [Inflight(self.pid, now, list(self.inflight.values()))]
        if type_ == "logData":
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), str):
                raise proto.ProtocolError("logData without text")
            source = str(payload.get("source", "proxy"))
            text = self._new_log_text(source, payload["data"])
            return [LogChunk(self.pid, source, now, text)] if text else []
        if type_ == "metrics" and isinstance(payload, list):  # before v236: full entries pushed
            assert st.epoch is not None
            return [proto.parse_activity(e, self.pid, st.epoch) for e in payload]
        return []

    def _new_log_text(self, source: str, text: str) -> str:
        """Drop the history replayed on reconnect: keep only what follows the tail we already stored."""
        tail = self.state.log_tails.get(source)
        if tail is not None and self._replaying.get(source, False):
            self._replaying[source] = False
            idx = text.rfind(tail) if tail else -1
            text = text[idx + len(tail):] if idx >= 0 else text
        self.state.log_tails[source] = (self.state.log_tails.get(source, "") + text)[-LOG_TAIL:]
        return text

    async def follow(self) -> None:
        """Consume /api/events until the server closes it."""
        self._replaying = {"proxy": True, "upstream": True}
        async with self.api.events() as events:  # the one /api/events reader (connectors.llama_swap_api)
            async for ev in events:
                await self.handle_message(ev)
        self.ended_by_server = True
        raise StreamEnded("server closed /api/events")

    async def _perf_loop(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.perf_poll_s)
            try:
                await self.sync_performance()
                failures = 0
            except (httpx.HTTPError, LlamaSwapError) as exc:
                failures += 1  # one failed poll is retried at the next tick; the cursor did not move
                log.warning("%s: performance poll failed (%d in a row): %s", self.pid, failures, exc)
                if failures >= 3:
                    raise

    async def _liveness_loop(self) -> None:
        misses = 0
        while True:
            await asyncio.sleep(self.liveness_s)
            answered = self.api.recently_answered(self.liveness_s)  # a poll answered: no probe needed
            if answered is not None:
                misses, self._last_alive = 0, datetime.fromtimestamp(answered, UTC)
            elif await self.api.alive():
                misses, self._last_alive = 0, utcnow()
            else:
                misses += 1
            if misses >= 2:
                raise ConnectionError("instance stopped answering /wol-health")

    async def _settle(self, stream_gone: bool) -> None:
        """A connection that followed a boot has ended. Decide whether that boot was followed to its end only
        after the activity fetch in progress has finished and, when llama-swap announced ids not read yet, one
        more fetch was tried (the server may still answer); a decision taken at the stream's end alone called
        most restarts under traffic incomplete."""
        st = self.state
        st.lost_at = utcnow() if stream_gone or self._last_alive is None else self._last_alive
        if self.max_announced > st.cursor and st.epoch is not None:
            try:
                await asyncio.wait_for(self.sync_activity(), timeout=10.0)
            except Exception as exc:  # noqa: BLE001 - the instance is going away; what was read is what we have
                log.info("%s: last activity fetch after the stream ended failed: %s", self.pid, exc)
        st.followed_to_end = self.max_announced <= st.cursor
        st.inflight_at_close = len(self.inflight) if self.ended_by_server else 0

    async def session(self) -> None:
        """One connection's life. Always raises when it ends (the runner reconnects)."""
        self._reconciled.clear()
        self.max_announced = 0  # announcements are per connection (never replayed); ids restart with a boot
        self._last_alive = None
        self._observed = False
        tasks = [asyncio.ensure_future(self.follow())]  # open the stream first so no live event is missed
        try:
            await asyncio.sleep(0)
            try:
                await self.reconcile()
            except httpx.ConnectError as exc:
                if refused(exc):  # evidence that no boot was serving at this moment
                    self.state.absent_at = [*self.state.absent_at[-255:], utcnow()]
                raise
            self._last_alive = utcnow()
            tasks += [asyncio.ensure_future(self._perf_loop()), asyncio.ensure_future(self._liveness_loop())]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
            raise StreamEnded("session ended")
        except asyncio.CancelledError:
            raise
        except BaseException:
            if self._observed:
                stream_gone = tasks[0].done()
                await self._stop(tasks)
                await self._settle(stream_gone)
            raise
        finally:
            await self._stop(tasks)

    @staticmethod
    async def _stop(tasks: Sequence[asyncio.Future[None]]) -> None:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
