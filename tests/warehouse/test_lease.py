"""The fleet lease against the suite's real Postgres: exclusivity, heartbeats, expiry and reclaim, break, history."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from warehouse import lease as L
from warehouse.db import psycopg_dsn


@pytest.fixture()
def conn(db, db_url):
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as c:
        yield c


def events(conn):
    return conn.execute("SELECT provider_id, scope, holder, event FROM lease_events ORDER BY id").fetchall()


def test_one_holder_at_a_time_and_reentrant(conn):
    a = L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "a", "bench run 1", ttl_s=30)
    assert a is not None and a.holder == "a" and not a.expired
    assert L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "b", "warm") is None
    again = L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "a", "bench run 1, point 2")
    assert again is not None and again.acquired_at == a.acquired_at and again.purpose == "bench run 1, point 2"
    # scopes are independent: following a host does not block operating it
    assert L.try_acquire(conn, "gpu1", L.SCOPE_FOLLOW, "connector-1", "follow") is not None
    assert [(x.provider_id, x.scope, x.holder) for x in L.list_leases(conn)] == [
        ("gpu1", "follow", "connector-1"), ("gpu1", "host", "a")]
    assert L.release(conn, "gpu1", L.SCOPE_HOST, "b") is False
    assert L.release(conn, "gpu1", L.SCOPE_HOST, "a") is True
    assert L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "b", "warm") is not None
    assert events(conn) == [("gpu1", "host", "a", "acquired"), ("gpu1", "follow", "connector-1", "acquired"),
                            ("gpu1", "host", "a", "released"), ("gpu1", "host", "b", "acquired")]


def test_expired_lease_is_reclaimed_and_the_old_holder_learns_it(conn):
    assert L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "dead", "bench run 7", ttl_s=0.2) is not None
    assert L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "b", "warm") is None
    time.sleep(0.3)
    assert L.current(conn, "gpu1", L.SCOPE_HOST).expired is True
    got = L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "b", "warm")
    assert got is not None and got.holder == "b"
    assert L.heartbeat(conn, "gpu1", L.SCOPE_HOST, "dead") is False
    assert L.heartbeat(conn, "gpu1", L.SCOPE_HOST, "b") is True
    ev = conn.execute("SELECT holder, event, detail FROM lease_events ORDER BY id").fetchall()
    assert [e[:2] for e in ev] == [("dead", "acquired"), ("b", "reclaimed")]
    assert ev[1][2].startswith("from dead (bench run 7), expired at ")


def test_heartbeat_all_release_all_and_break(conn):
    for p in ("h1", "h2", "h3"):
        assert L.try_acquire(conn, p, L.SCOPE_FOLLOW, "c1", "follow") is not None
    assert L.heartbeat_all(conn, L.SCOPE_FOLLOW, "c1") == {"h1", "h2", "h3"}
    broken = L.break_lease(conn, "h2", L.SCOPE_FOLLOW, by="operator")
    assert broken is not None and broken.holder == "c1"
    assert L.break_lease(conn, "h2", L.SCOPE_FOLLOW, by="operator") is None
    assert L.heartbeat_all(conn, L.SCOPE_FOLLOW, "c1") == {"h1", "h3"}
    assert sorted(L.release_all(conn, L.SCOPE_FOLLOW, "c1")) == ["h1", "h3"]
    assert L.list_leases(conn) == []
    assert [e[3] for e in events(conn)].count("broken") == 1
    with pytest.raises(ValueError, match="unknown lease scope 'hots'"):
        L.try_acquire(conn, "h1", "hots", "c1", "x")


def test_keeper_waits_without_blocking_the_loop_heartbeats_and_reports_loss(conn, db_url):
    L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "other", "warm", ttl_s=30)

    async def main() -> tuple[int, bool]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.get_running_loop().create_task(ticker())
        keeper = L.LeaseKeeper(db_url, "gpu1", L.SCOPE_HOST, "bench run 3", holder="me", ttl_s=0.6,
                               wait_s=None, poll_s=0.05)
        waiting = asyncio.get_running_loop().create_task(keeper.__aenter__())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        L.release(conn, "gpu1", L.SCOPE_HOST, "other")
        await waiting
        await asyncio.sleep(0.9)  # > ttl: alive only through heartbeats
        still = L.current(conn, "gpu1", L.SCOPE_HOST)
        assert still is not None and still.holder == "me" and not still.expired
        L.break_lease(conn, "gpu1", L.SCOPE_HOST, by="test")
        await asyncio.wait_for(keeper.lost.wait(), 5)
        await keeper.__aexit__(None, None, None)
        t.cancel()
        return ticks, keeper.lost.is_set()

    ticks, lost = asyncio.run(main())
    assert lost and ticks > 20  # the loop kept running while the lease was awaited


def test_keeper_times_out_with_who_holds_it(conn, db_url):
    L.try_acquire(conn, "gpu1", L.SCOPE_HOST, "bench@box:1:abc", "bench run 9", ttl_s=30)

    async def main() -> None:
        async with L.LeaseKeeper(db_url, "gpu1", L.SCOPE_HOST, "warm", wait_s=0.2, poll_s=0.05):
            pass

    with pytest.raises(L.LeaseHeld, match=r"gpu1 \(host\) is held by bench@box:1:abc for bench run 9 since "):
        asyncio.run(main())


def test_sync_hold_releases_at_the_end(conn, db_url):
    with L.hold(db_url, "gpu1", L.SCOPE_HOST, "unload", holder="action-1", ttl_s=0.6) as lost:
        time.sleep(0.9)
        assert L.current(conn, "gpu1", L.SCOPE_HOST).holder == "action-1" and not lost.is_set()
        with pytest.raises(L.LeaseHeld):
            L.acquire_blocking(db_url, "gpu1", L.SCOPE_HOST, "action-2", "warm", wait_s=0.1)
    assert L.current(conn, "gpu1", L.SCOPE_HOST) is None
