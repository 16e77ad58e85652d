"""Uptime from known boots and sightings: exact seconds for the cases a newcomer saw wrong.

Before: a provider with no boot in the day showed 100 % (SQL ``least``/``greatest`` skip the NULLs of the
missing boot, so the overlap was the whole window), so did a v239 instance (no boot marker) nobody saw that
day, and an instance booted at 10:00 and followed for 18 minutes showed 0 % (its boot row's first and last
sighting were the same). Measured with the old query on this data: Mar 1 fresh/old 100 %, Mar 2 fresh 0 %,
restarted 0 %, old 100 %.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, insert

from reports.digest import build_digest, render_digest
from reports.uptime import BootRow, overlap_seconds, process_start, running_intervals, uptime_by_provider
from tests.flows.synthetic import add_boot, add_provider
from warehouse import schema as s

D = datetime(2026, 3, 2, tzinfo=UTC)
DAY = timedelta(days=1)


def t(hh: int, mm: int = 0, ss: int = 0, day: datetime = D) -> datetime:
    return day + timedelta(hours=hh, minutes=mm, seconds=ss)


def sightings(
    conn: Connection,
    pid: str,
    marker: str,
    first: datetime,
    last: datetime,
    every_s: int = 5,
    type_: str = "poll:/api/performance",
) -> None:
    at = first
    while at <= last:
        conn.execute(
            insert(s.raw_events).values(
                event_uid=uuid.uuid4(),
                provider_id=pid,
                boot_marker=marker,
                received_at=at,
                type=type_,
                payload={},
            )
        )
        at += timedelta(seconds=every_s)


def load_boots(db) -> None:  # type: ignore[no-untyped-def]
    with db.begin() as c:
        for pid in ("fresh", "old", "steady", "restarted"):
            add_provider(c, pid)
        # booted 10:00 on D, one connect at 10:00:02, polled every 5 s until 10:18:00, then gone
        add_boot(c, "2026-03-02T10:00:00Z", t(10, 0, 2), t(10, 0, 2), pid="fresh")
        sightings(c, "fresh", "2026-03-02T10:00:00Z", t(10, 0, 5), t(10, 18))
        # v239: no boot marker; the connector's "seen:" boot spans every reconnect (last seen on D+1);
        # sighted Feb 27 08:00-08:10, nothing on Mar 1, on D 12:00-12:01 and 12:10-12:11 (a 9-minute gap)
        seen = "seen:2026-02-27T08:00:00+00:00"
        c.execute(
            insert(s.instance_boots).values(
                provider_id="old",
                boot_marker=seen,
                version="v239",
                first_seen_at=t(8, day=D - 3 * DAY),
                last_seen_at=t(9, day=D + DAY),
            )
        )
        sightings(c, "old", seen, t(8, day=D - 3 * DAY), t(8, 10, day=D - 3 * DAY))
        sightings(c, "old", seen, t(12), t(12, 1))
        sightings(c, "old", seen, t(12, 10), t(12, 11))
        # v250 up since Feb 20, reconnected (same marker) on D+1 00:30: the same process ran all of D
        add_boot(c, "2026-02-20T00:00:00Z", t(0, 0, 1, day=D - 10 * DAY), t(0, 30, day=D + DAY), pid="steady")
        # restarted: boot 1 last sighted D 06:00; boot 2 started 06:30 and was followed until 07:00. The
        # reconnect's /api/version poll at 06:30:01 still carries boot 1's marker: not a sighting of boot 1
        b1, b2 = "2026-03-01T00:00:00Z", "2026-03-02T06:30:00Z"
        add_boot(c, b1, t(0, 0, 1, day=D - DAY), t(0, 0, 1, day=D - DAY), pid="restarted")
        sightings(c, "restarted", b1, t(5, 59, 55), t(6))
        sightings(c, "restarted", b1, t(6, 30, 1), t(6, 30, 1), type_="poll:/api/version")
        add_boot(c, b2, t(6, 30, 2), t(6, 30, 2), pid="restarted")
        sightings(c, "restarted", b2, t(6, 30, 5), t(7))


def by_provider(db, start: datetime, end: datetime) -> dict[str, dict]:  # type: ignore[no-untyped-def, type-arg]
    return {r["provider_id"]: r for r in uptime_by_provider(db, start, end).iter_rows(named=True)}


def test_uptime_of_known_boots(db) -> None:  # type: ignore[no-untyped-def]
    load_boots(db)
    up = by_provider(db, D, D + DAY)
    assert up["fresh"]["uptime_s"] == 18 * 60  # 10:00:00 (boot marker) -> 10:18:00 (last poll)
    assert up["fresh"]["uptime_pct"] == pytest.approx(1.25)
    assert (up["fresh"]["boots"], up["fresh"]["restarts"]) == (1, 0)
    assert up["old"]["uptime_s"] == 120  # two followed minutes; nothing in the 9-minute gap
    assert up["steady"]["uptime_s"] == 86400 and up["steady"]["uptime_pct"] == 100
    assert up["restarted"]["uptime_s"] == 6 * 3600 + 30 * 60
    assert (up["restarted"]["boots"], up["restarted"]["restarts"]) == (1, 1)
    # Mar 1: "fresh" had no boot at all yet and nobody saw the v239 instance all day -> 0 %, not 100 %
    prev = by_provider(db, D - DAY, D)
    assert prev["fresh"]["uptime_s"] == 0 and prev["fresh"]["boots"] == 0
    assert prev["old"]["uptime_s"] == 0 and prev["old"]["uptime_pct"] == 0
    assert prev["restarted"]["uptime_s"] == 86400  # boot 1's process, marker 2026-03-01T00:00:00Z


def test_digest_shows_the_observed_uptime(db) -> None:  # type: ignore[no-untyped-def]
    load_boots(db)
    md = render_digest(build_digest(db, "daily", D)).markdown
    assert "| fresh | v250 | 1 | 0 | 18m | 1.2 % |" in md
    assert "| old | v239 | 0 | 0 | 2m | 0.1 % |" in md
    assert "| restarted | v250 | 1 | 1 | 6h 30m | 27.1 % |" in md
    assert "| steady | v250 | 0 | 0 | 24h 00m | 100.0 % |" in md


def test_running_intervals_plain() -> None:
    a = BootRow("p", "2026-03-02T10:00:00.5Z", "v250", t(10, 0, 3), t(10, 0, 3))
    b = BootRow("p", "2026-03-02T11:00:00Z", "v250", t(11, 0, 1), t(11, 0, 1))
    runs = [("p", a.boot_marker, t(10, 0, 5), t(11, 30)), ("p", b.boot_marker, t(11, 0, 5), t(11, 10))]
    # a's sightings past b's start are cut there (a poll tagged with the old marker on reconnect)
    got = running_intervals([b, a], runs)
    assert got == {"p": [(t(10, 0, 0) + timedelta(microseconds=500000), t(11, 10))]}
    assert overlap_seconds(got["p"], t(10, 30), t(12)) == 40 * 60
    assert process_start("seen:2026-03-02T10:00:00+00:00") is None
    assert process_start("2026-03-02T10:00:00.123456789Z") == t(10) + timedelta(microseconds=123456)
    # clock of the host ahead of ours: the process cannot start after we first saw it
    ahead = BootRow("q", "2026-03-02T10:05:00Z", None, t(10, 0, 1), t(10, 1))
    assert running_intervals([ahead], []) == {"q": [(t(10, 0, 1), t(10, 1))]}
