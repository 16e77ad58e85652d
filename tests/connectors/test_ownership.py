"""Several connectors on one database: one follower per provider, through the fleet lease.

Real Postgres, real connectors (threads, and a `boocontrol connect` subprocess for kill -9) and the in-process demo
fleet. "Nothing doubled" is checked exactly: each request's SSE activity message is stored once, and the log text
stored for each host is exactly the host's own log (a second follower would store every line twice; a gap would
lose some).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from connectors.ownership import EXPIRY_MARGIN_S, Ownership, dead_local_holder, next_tick_in
from core.providers import Provider
from tests.support.connector import (
    ConnectorThread,
    chat,
    dsn,
    query,
    registry_for,
    upstream_activity,
    wait_until,
)
from warehouse import lease
from warehouse.members import share

# the two-connector resilience scenarios, on the simulator (the in-process demo fleet): counted in the pytest
# header and summary with the others


def two_connectors(test):  # noqa: ANN001, ANN201
    return pytest.mark.resilience(pytest.mark.simulator(test))

TTL = 3.0  # seconds; a tick every 0.6 s


@contextlib.contextmanager
def fleet(n: int) -> Iterator[tuple[list[str], list]]:
    """``n`` simulated llama-swap hosts with two quick models each, on their own loop in a thread."""
    from demo.fleet import serve_instances
    from demo.instance import GroupSpec, ModelSpec, SimulatedInstance

    sims = [SimulatedInstance([ModelSpec("responder-a", group="g", load_s=0.05),
                               ModelSpec("responder-b", group="g", load_s=0.05)],
                              [GroupSpec("g", swap=True, exclusive=False)], seed=i, perf_every_s=1.0)
            for i in range(n)]
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    running = asyncio.run_coroutine_threadsafe(serve_instances(sims), loop).result(30)
    try:
        yield running.base_urls, sims
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)


def providers(urls: list[str]) -> list[Provider]:
    return [Provider(id=f"h{i + 1}", label=f"h{i + 1}", base_url=u) for i, u in enumerate(urls)]


def follow_leases(db_url: str) -> dict[str, str]:
    return dict(query(db_url, "SELECT provider_id, holder FROM leases WHERE scope='follow' AND expires_at > now()"))


def split(db_url: str) -> list[int]:
    return sorted(Counter(follow_leases(db_url).values()).values(), reverse=True)


def health(db_url: str) -> dict[str, str]:
    return dict(query(db_url, "SELECT provider_id, status FROM connector_health"))


def all_connected(db_url: str, n: int) -> bool:
    h = health(db_url)
    return len(h) == n and set(h.values()) == {"connected"}


def traffic(urls: list[str], per_host: int) -> None:
    for _ in range(per_host):
        for u in urls:
            assert chat(u, "responder-a").status_code == 200


def activity_count(db_url: str) -> int:
    return query(db_url, "SELECT count(*) FROM activity")[0][0]


def stored_log(db_url: str, provider_id: str, source: str) -> str:
    return "".join(r[0] for r in query(db_url, "SELECT text FROM logs WHERE provider_id=%s AND source=%s ORDER BY id",
                                       (provider_id, source)))


def assert_nothing_doubled_or_lost(db_url: str, urls: list[str], sims: list) -> None:
    """Exact: activity = each host's own rows; each SSE activity message stored at most once (exactly once when
    the provider was followed without interruption); the stored log text of each host is the host's own log up to
    now (the followers' polls keep adding lines, so: everything the host had logged before the check, and nothing
    the host did not log)."""
    for p, url, sim in zip(providers(urls), urls, sims, strict=True):
        before = dict(sim.logs)
        for source, text in before.items():
            wait_until(lambda i=p.id, s=source, t=text: stored_log(db_url, i, s).startswith(t),
                       what=f"{p.id} {source} log landed")
            stored = stored_log(db_url, p.id, source)
            if not sim.logs[source].startswith(stored):
                diff = difflib.unified_diff(sim.logs[source].splitlines(), stored.splitlines(), "host", "stored",
                                            lineterm="")
                raise AssertionError(f"{p.id} {source} log differs:\n" + "\n".join(diff))
        up = upstream_activity(url)
        got = query(db_url, "SELECT upstream_id, model_id FROM activity WHERE provider_id=%s ORDER BY upstream_id",
                    (p.id,))
        assert got == [(u["id"], u["model"]) for u in up], p.id
        per_id = query(db_url, "SELECT payload->>'id', count(*) FROM raw_events WHERE provider_id=%s "
                               "AND type='sse:activity' GROUP BY 1", (p.id,))
        assert [c for _, c in per_id if c != 1] == [], f"{p.id}: SSE activity messages stored twice: {per_id}"


def connector(urls: list[str], db_url: str, spool: Path, **opts: object) -> ConnectorThread:
    return ConnectorThread(registry_for(*providers(urls)), db_url, spool, lease_ttl_s=TTL, **opts)


def test_share_splits_exactly_and_in_one_order():
    members = ["a", "b", "c"]
    assert [share(9, members, m) for m in members] == [3, 3, 3]
    assert [share(10, members, m) for m in members] == [4, 3, 3]
    assert [share(2, members, m) for m in members] == [1, 1, 0]
    assert share(9, ["a", "b"], "c") == 3  # not visible yet: counted last
    assert share(5, [], "a") == 5


def test_dead_local_holder_only_for_gone_processes_of_this_machine():
    import socket

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host = socket.gethostname()
    assert dead_local_holder(f"connector@{host}:{proc.pid}:abc123") is True
    assert dead_local_holder(f"connector@{host}:{os.getpid()}:abc123") is False  # ourselves
    assert dead_local_holder(f"connector@{host}:1:abc123") is False  # alive (init), not ours to signal
    assert dead_local_holder(f"connector@other-{host}:{proc.pid}:abc123") is False  # another machine: wait for expiry
    assert dead_local_holder("operator") is False


def test_next_tick_comes_just_after_another_member_expires():
    assert EXPIRY_MARGIN_S == 0.25
    assert next_tick_in(3.0, []) == 3.0  # alone: the regular period
    assert next_tick_in(3.0, [12.0, 14.5]) == 3.0  # live members (heartbeats every period) never expire sooner
    assert next_tick_in(3.0, [12.0, 1.0]) == 1.25  # one stopped beating: tick just after its row expires
    assert next_tick_in(3.0, [-0.5]) == 0.25  # already expired (read late): at once, plus the margin
    assert next_tick_in(3.0, [2.75]) == 3.0  # due with the regular tick anyway


def test_a_survivor_ticks_when_the_dead_members_row_expires_and_takes_its_providers(db, db_url):
    """The dead connector's member row and leases expire together; the tick planned for that moment takes them
    (before this, the survivor noticed only at its next regular tick, up to ttl / 5 later)."""
    me, dead = "connector@test-host:1:aaaaaa", "connector@elsewhere:2:bbbbbb"
    with psycopg.connect(dsn(db_url), autocommit=True) as conn:
        with conn.transaction():  # one statement time: its row and its leases expire at the same instant
            conn.execute("INSERT INTO connector_members VALUES (%s, 'elsewhere', 2, now(), now(), "
                         "now() + interval '1 second')", (dead,))
            for pid in ("h3", "h4"):
                conn.execute("INSERT INTO leases VALUES (%s, 'follow', %s, 'follow', now(), now(), "
                             "now() + interval '1 second')", (pid, dead))
    own = Ownership(dsn(db_url), me, ["h1", "h2", "h3", "h4"], ttl_s=15.0, take_over_local_dead=False)
    try:
        beats: list[float] = []
        plan = own.tick(set(), beats.append, set())
        assert (sorted(plan.held), plan.share, plan.members, sorted(plan.start)) == (["h1", "h2"], 2, 2, ["h1", "h2"])
        assert plan.wake_in is not None and EXPIRY_MARGIN_S < plan.wake_in <= 1.0 + EXPIRY_MARGIN_S  # not 3 s
        time.sleep(plan.wake_in)
        plan = own.tick({"h1", "h2"}, beats.append, set())
        assert (sorted(plan.held), plan.share, plan.members, sorted(plan.start)) == (
            ["h1", "h2", "h3", "h4"], 4, 1, ["h3", "h4"])
        assert plan.wake_in == 3.0  # alone again: the regular period
        assert sorted(query(db_url, "SELECT provider_id, event FROM lease_events WHERE holder=%s", (me,))) == [
            ("h1", "acquired"), ("h2", "acquired"), ("h3", "reclaimed"), ("h4", "reclaimed")]
    finally:
        own.close()


@two_connectors
def test_clean_stop_marks_only_its_own_providers_and_gives_back_its_leases(db, db_url, tmp_path):
    with fleet(4) as (urls, _sims), psycopg.connect(dsn(db_url), autocommit=True) as conn:
        other = "connector@elsewhere:1:000000"  # a live connector on another machine holding h3 and h4
        conn.execute("INSERT INTO connector_members VALUES (%s, 'elsewhere', 1, now(), now(), now() + interval '1 hour')",
                     (other,))
        for pid in ("h3", "h4"):
            assert lease.try_acquire(conn, pid, lease.SCOPE_FOLLOW, other, "follow", ttl_s=3600) is not None
        with connector(urls, db_url, tmp_path / "sp") as ct:
            wait_until(lambda: all_connected(db_url, 2), what="h1, h2 connected")
            assert sorted(ct.connector.following) == ["h1", "h2"]
            traffic(urls[:2], 2)
            wait_until(lambda: activity_count(db_url) == 4, what="4 rows")
        # exit: h1, h2 stopped and given back; h3, h4 untouched: no health row written for them by a non-owner
        assert health(db_url) == {"h1": "stopped", "h2": "stopped"}
        assert follow_leases(db_url) == {"h3": other, "h4": other}
        assert query(db_url, "SELECT count(*) FROM connector_members") == [(1,)]
        ev = query(db_url, "SELECT provider_id, event FROM lease_events WHERE holder <> %s ORDER BY id", (other,))
        assert sorted(ev) == [("h1", "acquired"), ("h1", "released"), ("h2", "acquired"), ("h2", "released")]


@two_connectors
def test_three_connectors_split_nine_providers_exactly_and_double_nothing(db, db_url, tmp_path):
    with fleet(9) as (urls, sims):
        cts = [connector(urls, db_url, tmp_path / f"sp{i}").start() for i in range(3)]
        try:
            # the leases can show 3/3/3 a moment before the last taker has started its followers (the health rows
            # still say connected from the connector that handed them over): wait for both
            wait_until(lambda: split(db_url) == [3, 3, 3] and all_connected(db_url, 9)
                       and sorted(len(ct.connector.following) for ct in cts) == [3, 3, 3], timeout=60,
                       what="a 3/3/3 split, all connected, each connector following its 3")
            assert set().union(*(set(ct.connector.following) for ct in cts)) == {p.id for p in providers(urls)}
            traffic(urls, 2)
            wait_until(lambda: activity_count(db_url) == 18, what="18 rows")
            wait_until(lambda: query(db_url, "SELECT count(*) FROM raw_events WHERE type='sse:activity'") == [(18,)],
                       what="18 SSE activity messages")
            cts.pop().stop()  # a clean exit hands its 3 providers to the other two at once: 5/4
            wait_until(lambda: split(db_url) == [5, 4] and all_connected(db_url, 9), timeout=30, what="a 5/4 split")
            traffic(urls, 1)
            wait_until(lambda: activity_count(db_url) == 27, what="27 rows")
            assert_nothing_doubled_or_lost(db_url, urls, sims)
        finally:
            for ct in cts:
                ct.stop()


def _connector_proc(db_url: str, registry_file: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BOOCONTROL_DATABASE_URL": db_url, "BOOCONTROL_CONNECTOR_FLUSH_SECONDS": "0.1",
           "BOOCONTROL_CONNECTOR_LEASE_SECONDS": str(TTL), "BOOCONTROL_CONNECTOR_TAKE_OVER_LOCAL_DEAD": "false"}
    return subprocess.Popen([sys.executable, "-m", "cli.main", "--data-dir", str(data_dir), "connect",
                             "--registry", str(registry_file)], env=env, cwd=Path(__file__).parents[2],
                            stdout=subprocess.DEVNULL, stderr=open(data_dir.parent / "connector.err", "wb"))


@two_connectors
@pytest.mark.parametrize("local_take_over", [False, True], ids=["after-expiry", "process-gone"])
def test_second_connector_takes_over_a_killed_one_without_doubling(local_take_over, db, db_url, tmp_path):
    with fleet(4) as (urls, sims):
        reg = tmp_path / "fleet.yaml"
        reg.write_text(yaml.safe_dump({"providers": [{"id": p.id, "label": p.label, "base_url": p.base_url}
                                                     for p in providers(urls)]}))
        (tmp_path / "data").mkdir()
        proc = _connector_proc(db_url, reg, tmp_path / "data")
        try:
            wait_until(lambda: len(follow_leases(db_url)) == 4, timeout=60, what="the first connector holds all 4")
            with connector(urls, db_url, tmp_path / "sp", take_over_local_dead=local_take_over) as ct:
                wait_until(lambda: split(db_url) == [2, 2] and all_connected(db_url, 4), timeout=60,
                           what="a 2/2 split")
                traffic(urls, 2)
                wait_until(lambda: activity_count(db_url) == 8, what="8 rows")
                wait_until(lambda: query(db_url, "SELECT count(*) FROM raw_events WHERE type='sse:activity'") == [(8,)],
                           what="8 SSE activity messages, each once")
                theirs = sorted(p for p, h in follow_leases(db_url).items() if h != ct.connector.holder)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed = time.monotonic()
                traffic(urls, 1)  # while nobody follows two of the hosts
                wait_until(lambda: sorted(ct.connector.following) == ["h1", "h2", "h3", "h4"], timeout=4 * TTL,
                           what=f"{theirs} taken over")
                moved_s = time.monotonic() - killed
                traffic(urls, 1)
                wait_until(lambda: activity_count(db_url) == 16, what="16 rows")
                wait_until(lambda: all_connected(db_url, 4), what="all connected")
                assert_nothing_doubled_or_lost(db_url, urls, sims)
            ev = query(db_url, "SELECT provider_id, event FROM lease_events WHERE holder=%s AND event<>'released' "
                               "ORDER BY id", (ct.connector.holder,))
            kinds = {p: e for p, e in ev if p in theirs}
            # after expiry the lease is "reclaimed"; a gone local process's lease is broken, then "acquired"
            assert set(kinds.values()) == ({"acquired"} if local_take_over else {"reclaimed"}), (ev, moved_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
