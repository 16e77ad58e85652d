"""The fleet coordination lease: who holds which host, for what, since when, until when.

One lease per (provider, scope), kept in Postgres (``leases``, history in ``lease_events``):

* ``SCOPE_HOST`` — exclusive use of a host for work that changes it: actions, benchmark runs, evals.
* ``SCOPE_FOLLOW`` — the connector process that follows the provider (one follower per provider at a time).

A holder is a string naming the process (`holder_id`). A lease lasts ``ttl_s`` seconds past its last
heartbeat; a holder that dies stops heartbeating and its lease is reclaimed by the next `try_acquire` after it
expired. Every time is Postgres's ``now()``, so clocks of the machines involved do not matter. `LeaseKeeper`
(asyncio) and `hold` (threads) take a lease without blocking an event loop, heartbeat it in the background and
release it at the end; both report a lease that was lost (broken by an operator or expired and taken over).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

SCOPE_HOST = "host"
SCOPE_FOLLOW = "follow"
SCOPES = (SCOPE_HOST, SCOPE_FOLLOW)
DEFAULT_TTL_S = 30.0

_COLS = "provider_id, scope, holder, purpose, acquired_at, heartbeat_at, expires_at, expires_at < now()"


@dataclass(frozen=True)
class Lease:
    provider_id: str
    scope: str
    holder: str
    purpose: str
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    expired: bool = False

    def describe(self) -> str:
        state = "expired at" if self.expired else "until"
        return (f"{self.provider_id} ({self.scope}) is held by {self.holder} for {self.purpose} since "
                f"{self.acquired_at:%Y-%m-%d %H:%M:%S} UTC, {state} {self.expires_at:%H:%M:%S} UTC")


class LeaseHeld(RuntimeError):
    """The lease is held by someone else (the message says who, for what, until when)."""

    def __init__(self, lease: Lease | None, provider_id: str, scope: str) -> None:
        self.lease = lease
        super().__init__(lease.describe() if lease else f"{provider_id} ({scope}) is held by another process")


def holder_id(role: str) -> str:
    """A holder name that says which process holds a lease: ``role@host:pid:nonce``."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _lease(row: Sequence[Any]) -> Lease:
    pid, scope, holder, purpose, acquired, beat, expires, expired = row
    return Lease(pid, scope, holder, purpose, acquired, beat, expires, bool(expired))


def _event(cur: psycopg.Cursor[Any], lease_key: tuple[str, str], holder: str, purpose: str, event: str,
           detail: str | None = None) -> None:
    cur.execute("INSERT INTO lease_events (provider_id, scope, holder, purpose, event, at, detail) "
                "VALUES (%s, %s, %s, %s, %s, now(), %s)", (*lease_key, holder, purpose, event, detail))


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"unknown lease scope {scope!r} (one of {', '.join(SCOPES)})")


def current(conn: psycopg.Connection[Any], provider_id: str, scope: str) -> Lease | None:
    row = conn.execute(f"SELECT {_COLS} FROM leases WHERE provider_id=%s AND scope=%s",  # noqa: S608 - constant
                       (provider_id, scope)).fetchone()
    return _lease(row) if row else None


def try_acquire(conn: psycopg.Connection[Any], provider_id: str, scope: str, holder: str, purpose: str,
                ttl_s: float = DEFAULT_TTL_S) -> Lease | None:
    """Take the lease if it is free, expired or already ours; None when someone else holds it. Never waits."""
    _check_scope(scope)
    key = (provider_id, scope)
    with conn.transaction():
        cur = conn.cursor()
        row = cur.execute(f"SELECT {_COLS} FROM leases WHERE provider_id=%s AND scope=%s FOR UPDATE",  # noqa: S608
                          key).fetchone()
        if row is None:
            got = cur.execute(
                "INSERT INTO leases (provider_id, scope, holder, purpose, acquired_at, heartbeat_at, expires_at) "
                "VALUES (%s, %s, %s, %s, now(), now(), now() + make_interval(secs => %s)) "
                f"ON CONFLICT DO NOTHING RETURNING {_COLS}", (*key, holder, purpose, ttl_s)).fetchone()
            if got is None:  # inserted by another process meanwhile
                return None
            _event(cur, key, holder, purpose, "acquired")
            return _lease(got)
        prev = _lease(row)
        if prev.holder != holder and not prev.expired:
            return None
        same = prev.holder == holder
        got = cur.execute(
            "UPDATE leases SET holder=%s, purpose=%s, heartbeat_at=now(), "
            "expires_at = now() + make_interval(secs => %s), "
            "acquired_at = CASE WHEN %s THEN acquired_at ELSE now() END "
            f"WHERE provider_id=%s AND scope=%s RETURNING {_COLS}", (holder, purpose, ttl_s, same, *key)).fetchone()
        if not same:
            _event(cur, key, holder, purpose, "reclaimed",
                   f"from {prev.holder} ({prev.purpose}), expired at {prev.expires_at.isoformat()}")
        assert got is not None
        return _lease(got)


def heartbeat(conn: psycopg.Connection[Any], provider_id: str, scope: str, holder: str,
              ttl_s: float = DEFAULT_TTL_S, purpose: str | None = None) -> bool:
    """Extend our lease (and say what it is for now, when ``purpose`` is given); False when it is no longer
    ours (broken, or expired and taken over). Never takes a lease that is gone."""
    cur = conn.execute("UPDATE leases SET heartbeat_at=now(), expires_at=now() + make_interval(secs => %s), "
                       "purpose=COALESCE(%s, purpose) WHERE provider_id=%s AND scope=%s AND holder=%s",
                       (ttl_s, purpose, provider_id, scope, holder))
    return cur.rowcount == 1


def heartbeat_all(conn: psycopg.Connection[Any], scope: str, holder: str, ttl_s: float = DEFAULT_TTL_S) -> set[str]:
    """Extend every lease of ``scope`` that ``holder`` holds in one statement; the provider ids still held."""
    rows = conn.execute("UPDATE leases SET heartbeat_at=now(), expires_at=now() + make_interval(secs => %s) "
                        "WHERE scope=%s AND holder=%s RETURNING provider_id", (ttl_s, scope, holder)).fetchall()
    return {r[0] for r in rows}


def release(conn: psycopg.Connection[Any], provider_id: str, scope: str, holder: str) -> bool:
    """Give the lease back; False when it was not ours any more."""
    with conn.transaction():
        cur = conn.cursor()
        row = cur.execute("DELETE FROM leases WHERE provider_id=%s AND scope=%s AND holder=%s RETURNING purpose",
                          (provider_id, scope, holder)).fetchone()
        if row is None:
            return False
        _event(cur, (provider_id, scope), holder, row[0], "released")
        return True


def release_all(conn: psycopg.Connection[Any], scope: str, holder: str) -> list[str]:
    """Give back every lease of ``scope`` held by ``holder`` (a clean shutdown); the provider ids released."""
    with conn.transaction():
        cur = conn.cursor()
        rows = cur.execute("DELETE FROM leases WHERE scope=%s AND holder=%s RETURNING provider_id, purpose",
                           (scope, holder)).fetchall()
        for pid, purpose in rows:
            _event(cur, (pid, scope), holder, purpose, "released")
        return [r[0] for r in rows]


def break_lease(conn: psycopg.Connection[Any], provider_id: str, scope: str, by: str) -> Lease | None:
    """Remove a lease whoever holds it (an operator's `lease break`); the lease that was broken, if any."""
    _check_scope(scope)
    with conn.transaction():
        cur = conn.cursor()
        row = cur.execute(f"DELETE FROM leases WHERE provider_id=%s AND scope=%s RETURNING {_COLS}",  # noqa: S608
                          (provider_id, scope)).fetchone()
        if row is None:
            return None
        lease = _lease(row)
        _event(cur, (provider_id, scope), lease.holder, lease.purpose, "broken", f"by {by}")
        return lease


def list_leases(conn: psycopg.Connection[Any], scope: str | None = None) -> list[Lease]:
    """Every lease row (expired ones flagged), by provider then scope."""
    rows = conn.execute(f"SELECT {_COLS} FROM leases WHERE %s::text IS NULL OR scope = %s "  # noqa: S608
                        "ORDER BY provider_id, scope", (scope, scope)).fetchall()
    return [_lease(r) for r in rows]


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True,
                           connect_timeout=5)


def acquire_blocking(dsn: str, provider_id: str, scope: str, holder: str, purpose: str, *,
                     ttl_s: float = DEFAULT_TTL_S, wait_s: float | None = 0.0, poll_s: float = 0.25) -> Lease:
    """Take the lease, polling until ``wait_s`` has passed (None: no limit); raises `LeaseHeld` on time-out."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    with _connect(dsn) as conn:
        while True:
            got = try_acquire(conn, provider_id, scope, holder, purpose, ttl_s)
            if got is not None:
                return got
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseHeld(current(conn, provider_id, scope), provider_id, scope)
            time.sleep(poll_s)


class LeaseKeeper:
    """Hold one lease from asyncio code: ``async with LeaseKeeper(...) as keeper:``.

    Acquiring polls in a worker thread (the event loop never blocks), heartbeats every ``ttl_s / 3`` and releases
    on exit. ``keeper.lost`` is set when a heartbeat finds the lease gone; the work should stop then.
    """

    def __init__(self, dsn: str, provider_id: str, scope: str, purpose: str, *, holder: str | None = None,
                 ttl_s: float = DEFAULT_TTL_S, wait_s: float | None = 0.0, poll_s: float = 0.25) -> None:
        self.dsn, self.provider_id, self.scope, self.purpose = dsn, provider_id, scope, purpose
        self.holder = holder or holder_id(scope)
        self.ttl_s, self.wait_s, self.poll_s = ttl_s, wait_s, poll_s
        self.lost = asyncio.Event()
        self.lease: Lease | None = None
        self._beat: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseKeeper:
        deadline = None if self.wait_s is None else time.monotonic() + self.wait_s
        while True:  # one short attempt per thread call, so cancelling the waiter is prompt
            try:
                self.lease = await asyncio.to_thread(acquire_blocking, self.dsn, self.provider_id, self.scope,
                                                     self.holder, self.purpose, ttl_s=self.ttl_s, wait_s=0.0)
                break
            except LeaseHeld:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(self.poll_s)
        self._beat = asyncio.get_running_loop().create_task(self._heartbeats())
        return self

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                ok = await asyncio.to_thread(self._beat_once)
            except psycopg.Error:
                continue  # Postgres away: the lease may expire; the next beat tells
            if not ok:
                self.lost.set()
                return

    def _beat_once(self) -> bool:
        with _connect(self.dsn) as conn:
            return heartbeat(conn, self.provider_id, self.scope, self.holder, self.ttl_s, purpose=self.purpose)

    async def confirm(self) -> bool:
        """Whether the lease is still ours right now (one heartbeat, not waiting for the next): call it before a
        step that must not run without the lease. Sets ``lost`` when it is not; a Postgres error counts as not."""
        try:
            ok = await asyncio.to_thread(self._beat_once)
        except psycopg.Error:
            ok = False
        if not ok:
            self.lost.set()
        return ok

    def rename(self, purpose: str) -> None:
        """Say what the lease is for from now on (a benchmark, once its run has a number): written at once (one
        short statement) and with every heartbeat."""
        self.purpose = purpose
        with contextlib.suppress(psycopg.Error):
            self._beat_once()

    async def __aexit__(self, *exc: object) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(BaseException):
                await self._beat
        with contextlib.suppress(psycopg.Error):
            await asyncio.to_thread(self._release)

    def _release(self) -> None:
        with _connect(self.dsn) as conn:
            release(conn, self.provider_id, self.scope, self.holder)


@contextlib.contextmanager
def hold(dsn: str, provider_id: str, scope: str, purpose: str, *, holder: str | None = None,
         ttl_s: float = DEFAULT_TTL_S, wait_s: float | None = 0.0) -> Iterator[threading.Event]:
    """Hold one lease from synchronous code; heartbeats run in a daemon thread. Yields the ``lost`` event."""
    who = holder or holder_id(scope)
    acquire_blocking(dsn, provider_id, scope, who, purpose, ttl_s=ttl_s, wait_s=wait_s)
    lost, stop = threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                with _connect(dsn) as conn:
                    if not heartbeat(conn, provider_id, scope, who, ttl_s):
                        lost.set()
                        return
            except psycopg.Error:
                continue

    t = threading.Thread(target=beat, name=f"lease-{provider_id}", daemon=True)
    t.start()
    try:
        yield lost
    finally:
        stop.set()
        t.join(timeout=5)
        with contextlib.suppress(psycopg.Error), _connect(dsn) as conn:
            release(conn, provider_id, scope, who)
