"""Per-host serialization of host-mutating work (actions and benchmark runs).

Every action that changes a provider (warm, unload, cancel, a benchmark sweep) holds that provider's
*slot* while it runs. The slot is a Postgres session-level advisory lock keyed on the provider id, so
it serializes across processes (cockpit, action executor, Prefect workers) and is released by
Postgres if the holder dies. Waiters are granted the lock in arrival order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, text

_LOCK_SQL = text("SELECT pg_advisory_lock(hashtextextended('boocontrol-host:' || :p, 0))")
_TRY_SQL = text("SELECT pg_try_advisory_lock(hashtextextended('boocontrol-host:' || :p, 0))")
_UNLOCK_SQL = text("SELECT pg_advisory_unlock(hashtextextended('boocontrol-host:' || :p, 0))")


class SlotBusy(RuntimeError):
    pass


@contextlib.contextmanager
def host_slot(engine: Engine, provider_id: str, wait_s: float | None = None) -> Iterator[Connection]:
    """Hold the provider's slot for the duration of the block.

    ``wait_s=None`` waits as long as it takes; a number waits at most that long and raises `SlotBusy`.
    The yielded connection is the one holding the lock (autocommit), usable for audit writes.
    """
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        if wait_s is None:
            conn.execute(_LOCK_SQL, {"p": provider_id})
        else:
            deadline = time.monotonic() + wait_s
            while not conn.execute(_TRY_SQL, {"p": provider_id}).scalar():
                if time.monotonic() >= deadline:
                    raise SlotBusy(f"provider {provider_id!r} is busy with another action or benchmark")
                time.sleep(0.05)
        try:
            yield conn
        finally:
            conn.execute(_UNLOCK_SQL, {"p": provider_id})
    finally:
        conn.close()


def slot_is_free(engine: Engine, provider_id: str) -> bool:
    with engine.connect() as conn:
        got = bool(conn.execute(_TRY_SQL, {"p": provider_id}).scalar())
        if got:
            conn.execute(_UNLOCK_SQL, {"p": provider_id})
        return got
