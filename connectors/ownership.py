"""Which providers this connector follows: one follower per provider across every connector sharing a fleet.

Ownership is the fleet lease (`warehouse.lease`, scope ``follow``), one per provider, held by the connector's
holder name; the live connectors are ``connector_members`` (`warehouse.members`). Each tick (`Ownership.tick`,
synchronous, run in a worker thread) does, on one Postgres connection:

1. heartbeat: the member row and every follow lease we hold, in two statements; what comes back is what we
   still hold (a lease broken by an operator, or expired and taken over, is gone);
2. balance: our share is `members.share(providers, live members)`, so N connectors split P providers
   exactly; above it we hand providers back (the runner stops their followers and drains the writer first),
   below it we take free or expired leases — never a live one, so a new owner waits for the old one's expiry;
3. state: for every provider we hold but do not follow yet, `load_state` from the warehouse, after the lease
   is ours, hence after the previous owner stopped and its writes landed.

Heartbeats also run every ``ttl / 5`` in their own thread (`Heartbeat`), so an event loop busy for seconds
(hundreds of followers starting at once on a loaded machine stalled it for 5-12 s) cannot starve them; the
thread skips beats while the loop has not run for three leases, so a hung process lets its leases expire. The runner stops every follower when no
heartbeat has succeeded for half the lease time, well before the leases can expire and be taken by another
connector, so two followers never overlap. (Residual: a process frozen for longer than a whole lease that then
wakes up may land the records its followers had in hand before its watchdog runs.)

A dead connector's providers move when its member row and leases expire (``ttl`` after its last heartbeat): the
survivors do not wait for their next regular tick (every ``ttl / 5``) but tick right when a member's row is due
to expire (`next_tick_in`), so the move takes the lease time plus the acquisitions, not up to one period more.

A connector on the same machine whose process is gone (``kill -9``, a crash, then a restart) cannot write any
more, so with ``take_over_local_dead`` its membership and leases are taken at once instead of after expiry.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from warehouse import lease, members
from warehouse.records import ProviderState

log = logging.getLogger(__name__)

PURPOSE = "follow"
EXPIRY_MARGIN_S = 0.25  # tick this long after a member's row is due to expire (its leases expire a few ms later)


def next_tick_in(period_s: float, others_expire_in: Sequence[float]) -> float:
    """Seconds until the next ownership tick: the regular ``period_s``, or sooner when another member's row expires
    before that (its heartbeats stopped: a live member's row always has more than ``ttl - period`` left), just after
    it expires, so its providers are taken at once rather than at the next regular tick."""
    due = [max(e, 0.0) + EXPIRY_MARGIN_S for e in others_expire_in]
    soonest = min(due, default=period_s)
    return soonest if soonest < period_s else period_s


def dead_local_holder(holder: str, host: str | None = None) -> bool:
    """True when ``holder`` (a `lease.holder_id`, ``role@host:pid:nonce``) names a process of this machine that no
    longer exists. Unknown formats, other machines and live or unknowable processes are False."""
    try:
        where, pid_text, _nonce = holder.split("@", 1)[1].rsplit(":", 2)
        pid = int(pid_text)
    except (IndexError, ValueError):
        return False
    if where != (host or socket.gethostname()) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists but not ours (EPERM)
        return False
    return False


@dataclass
class Plan:
    """What one tick decided: ``held`` (leases we hold now), ``start`` (held, not followed yet, with the state to
    follow from), ``release`` (held above our share: stop, drain, then `Ownership.release`)."""

    held: set[str]
    start: dict[str, ProviderState] = field(default_factory=dict)
    release: list[str] = field(default_factory=list)
    share: int = 0
    members: int = 1
    wake_in: float | None = None  # seconds until the next tick should run (`next_tick_in`); None: the regular period


class Ownership:
    """The Postgres side of ownership for one connector process (not thread-safe: one tick at a time)."""

    def __init__(self, dsn: str, holder: str, providers: Sequence[str], ttl_s: float,
                 take_over_local_dead: bool = True) -> None:
        self.dsn, self.holder, self.ttl_s = dsn, holder, ttl_s
        self.take_over_local_dead = take_over_local_dead
        self.providers = list(providers)
        self.closing = False  # set by the runner on shutdown: take nothing more
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _beat(self, conn: psycopg.Connection[Any], ok: Callable[[float], None]) -> set[str]:
        t0 = time.monotonic()
        members.beat(conn, self.holder, self.ttl_s)
        held = lease.heartbeat_all(conn, lease.SCOPE_FOLLOW, self.holder, self.ttl_s)
        ok(t0)
        return held

    def tick(self, following: set[str], ok: Callable[[float], None], hold_back: set[str] | None = None) -> Plan:
        """One heartbeat + balance + state round. ``ok(t)`` is called after each successful heartbeat that
        started at monotonic time ``t`` (the runner's watchdog counts from it). Providers in ``hold_back`` get
        no state and no start this round (``None``: none does) — their previous follower has not ended yet, or
        its records are not all in Postgres yet."""
        try:
            return self._tick(self._connection(), following, ok, hold_back)
        except psycopg.Error:
            self.close()
            raise

    def _tick(self, conn: psycopg.Connection[Any], following: set[str], ok: Callable[[float], None],
              hold_back: set[str] | None) -> Plan:
        from warehouse.ingest import load_state

        held = self._beat(conn, ok)
        last_beat = time.monotonic()

        def keep_alive() -> None:  # a long round (hundreds of acquisitions at start) must not starve the heartbeat
            nonlocal last_beat
            if time.monotonic() - last_beat > self.ttl_s / 5:
                held.intersection_update(self._beat(conn, ok))
                last_beat = time.monotonic()

        t0 = time.monotonic()
        rows = members.live_members(conn)
        live = [m.holder for m in rows]
        wake_in = next_tick_in(self.ttl_s / 5, [m.expires_in_s for m in rows if m.holder != self.holder])
        if self.take_over_local_dead:
            for dead in [h for h in live if dead_local_holder(h)]:
                log.warning("connector %s on this machine is gone: taking its follow leases now", dead)
                members.leave(conn, dead)
                for x in lease.list_leases(conn, lease.SCOPE_FOLLOW):
                    if x.holder == dead:
                        lease.break_lease(conn, x.provider_id, lease.SCOPE_FOLLOW, by=f"{self.holder} (holder gone)")
                live.remove(dead)
        mine = members.share(len(self.providers), live, self.holder)
        plan = Plan(held, share=mine, members=max(len(live), 1), wake_in=wake_in)
        before = len(held)
        if len(held) > mine:
            plan.release = sorted(held)[mine:]
        elif len(held) < mine and not self.closing:
            taken: set[str] = set()
            gone: dict[str, bool] = {}
            for x in lease.list_leases(conn, lease.SCOPE_FOLLOW):
                if x.expired:
                    continue
                if x.holder not in gone:
                    gone[x.holder] = self.take_over_local_dead and dead_local_holder(x.holder)
                if gone[x.holder]:  # a gone process of this machine whose member row may have expired already
                    lease.break_lease(conn, x.provider_id, lease.SCOPE_FOLLOW, by=f"{self.holder} (holder gone)")
                    continue
                taken.add(x.provider_id)
            free = [p for p in self.providers if p not in held and p not in taken]
            random.shuffle(free)  # connectors starting together contend less
            for pid in free:
                if len(held) >= mine or self.closing:
                    break
                keep_alive()
                if lease.try_acquire(conn, pid, lease.SCOPE_FOLLOW, self.holder, PURPOSE, self.ttl_s) is not None:
                    held.add(pid)
        for pid in sorted(held - following - set(plan.release)):
            if self.closing or hold_back is None:
                break
            if pid in hold_back:
                continue
            if self.closing:
                break
            keep_alive()
            plan.start[pid] = load_state(conn, pid)
        if len(held) > before or plan.start:
            log.info("follow leases: took %d, loaded %d state(s) in %.1f s", len(held) - before, len(plan.start),
                     time.monotonic() - t0)
        return plan

    def release(self, provider_ids: Sequence[str]) -> list[str]:
        """Hand providers back (their followers stopped and their records written); the ids that were ours."""
        conn = self._connection()
        return [p for p in provider_ids if lease.release(conn, p, lease.SCOPE_FOLLOW, self.holder)]

    def leave(self) -> list[str]:
        """A clean exit: give back every follow lease and the membership, on a fresh connection."""
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            gone = lease.release_all(conn, lease.SCOPE_FOLLOW, self.holder)
            members.leave(conn, self.holder)
        return gone


class Heartbeat:
    """Heartbeat the membership and every follow lease of ``holder`` every ``ttl_s / 5`` from a thread of its own
    (own connection), independent of the event loop; ``ok(t)`` after each success. Beats are skipped while
    ``loop_alive()`` (monotonic time the loop last ran) is older than three leases (a stuck loop, not a busy one)."""

    def __init__(self, dsn: str, holder: str, ttl_s: float, ok: Callable[[float], None],
                 loop_alive: Callable[[], float]) -> None:
        self.dsn, self.holder, self.ttl_s, self.ok, self.loop_alive = dsn, holder, ttl_s, ok, loop_alive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follow-lease-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.wait(self.ttl_s / 5):
            if time.monotonic() - self.loop_alive() > 3 * self.ttl_s:
                continue  # the loop is stuck: let the leases lapse so another connector takes over
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                t0 = time.monotonic()
                members.beat(conn, self.holder, self.ttl_s)
                lease.heartbeat_all(conn, lease.SCOPE_FOLLOW, self.holder, self.ttl_s)
                self.ok(t0)
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
