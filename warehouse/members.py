"""The connector processes sharing one fleet: who is alive, and how many providers each should follow.

Each `boocontrol connect` keeps one ``connector_members`` row (its lease holder name, host, pid), pushed forward
with the same heartbeat as its follow leases (`warehouse.lease`, scope ``follow``). A connector that dies stops
heartbeating; its row expires together with its leases, so the others' shares grow at the moment its providers
become free. Times are Postgres's ``now()``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True)
class Member:
    holder: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    expires_in_s: float = 0.0  # seconds from Postgres's now() to ``expires_at`` when the row was read


def beat(conn: psycopg.Connection[Any], holder: str, ttl_s: float, host: str | None = None,
         pid: int | None = None) -> None:
    """Join, or stay a member for ``ttl_s`` more seconds (a member whose row expired joins again)."""
    conn.execute(
        "INSERT INTO connector_members (holder, host, pid, started_at, heartbeat_at, expires_at) "
        "VALUES (%s, %s, %s, now(), now(), now() + make_interval(secs => %s)) "
        "ON CONFLICT (holder) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at",
        (holder, host or socket.gethostname(), os.getpid() if pid is None else pid, ttl_s))


def leave(conn: psycopg.Connection[Any], holder: str) -> bool:
    """Stop being a member (a clean exit); also forgets members that expired more than a day ago."""
    gone = conn.execute("DELETE FROM connector_members WHERE holder = %s", (holder,)).rowcount == 1
    conn.execute("DELETE FROM connector_members WHERE expires_at < now() - interval '1 day'")
    return gone


def live_members(conn: psycopg.Connection[Any]) -> list[Member]:
    """Members whose row has not expired, oldest first (ties by holder), the order `share` counts in."""
    rows = conn.execute("SELECT holder, host, pid, started_at, heartbeat_at, expires_at, "
                        "extract(epoch FROM expires_at - now())::float8 FROM connector_members "
                        "WHERE expires_at >= now() ORDER BY started_at, holder").fetchall()
    return [Member(*r) for r in rows]


def share(n_providers: int, members: Sequence[str], me: str) -> int:
    """How many of ``n_providers`` the member ``me`` should follow so that the live ``members`` split them exactly.

    Every member gets ``n // m``; the first ``n % m`` members (in the given order, the same for everyone) one
    more, so the shares add up to ``n``. A holder missing from ``members`` (its row not visible yet) counts as
    the last one.
    """
    order = list(members) if me in members else [*members, me]
    base, extra = divmod(n_providers, len(order))
    return base + (1 if order.index(me) < extra else 0)
