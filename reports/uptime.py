"""Uptime of each llama-swap instance from its boots and the time the connector observed it running.

Two facts are known for certain:

* **A boot marker is the process start.** ``/api/hardware`` ``captured_at`` (v247+) is taken once when
  llama-swap starts and changes only when it restarts. So a boot whose marker parses as a time started
  then, and every later sighting with the *same* marker proves the same process kept running in
  between: such a boot ran from its marker to its last sighting, even across a connector outage.
* **Sightings.** Every message and poll the connector stores (``raw_events``, tagged with the boot marker
  it was received under) and the boot row's first/last sighting show the instance up at that moment.

Before v247 there is no marker (the connector names the boot ``seen:<time>`` and keeps that name across
reconnects, so it proves nothing about restarts): only runs of sightings no more than ``max_gap`` apart
count as up. A boot never extends past the start of the provider's next boot. Nothing after the last
sighting counts: uptime is what was seen, so a day nobody observed is 0 %, never 100 %.

``running_intervals`` and ``overlap_seconds`` are plain functions (tested on known boots);
``uptime_by_provider`` reads the warehouse and applies them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from connectors.llama_swap import ProtocolError, parse_timestamp
from warehouse.queries import reports as q
from warehouse.queries._frames import Db

MAX_GAP = timedelta(seconds=90)  # sightings closer than this are one run (the connector polls every 5 s)

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class BootRow:
    provider_id: str
    boot_marker: str
    version: str | None
    first_seen_at: datetime
    last_seen_at: datetime


def process_start(marker: str) -> datetime | None:
    """The process start a boot marker names (``captured_at``), or None for ``seen:`` and other names."""
    try:
        return parse_timestamp(marker)
    except ProtocolError:
        return None


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def running_intervals(
    boots: Sequence[BootRow], islands: Sequence[tuple[str, str, datetime, datetime]]
) -> dict[str, list[Interval]]:
    """Per provider, the disjoint, sorted intervals it is known to have been running.

    ``islands`` are ``(provider_id, boot_marker, first, last)`` runs of sightings (gaps within a run no
    longer than the caller's ``max_gap``).
    """
    by_boot: dict[tuple[str, str], list[Interval]] = {}
    for pid, marker, a, b in islands:
        by_boot.setdefault((pid, marker), []).append((a, b))
    per_provider: dict[str, list[BootRow]] = {}
    for boot in boots:
        per_provider.setdefault(boot.provider_id, []).append(boot)
    out: dict[str, list[Interval]] = {}
    for pid, rows in per_provider.items():
        starts = [_start(r) for r in rows]
        order = sorted(range(len(rows)), key=lambda i: starts[i])
        spans: list[Interval] = []
        for pos, i in enumerate(order):
            boot = rows[i]
            runs = by_boot.get((pid, boot.boot_marker), [])
            last = max([boot.last_seen_at, *(b for _, b in runs)])
            if process_start(boot.boot_marker) is not None:
                mine = [(starts[i], last)]  # one process from its start to its last sighting
            else:
                mine = list(runs)
            if pos + 1 < len(order):
                cap = starts[order[pos + 1]]
                mine = [(a, min(b, cap)) for a, b in mine]
            spans.extend(mine)
        out[pid] = _union(spans)
    return out


def _start(boot: BootRow) -> datetime:
    started = process_start(boot.boot_marker)
    # a host clock ahead of ours cannot make the process start after we first saw it
    return min(started, boot.first_seen_at) if started is not None else boot.first_seen_at


def overlap_seconds(intervals: Iterable[Interval], start: datetime, end: datetime) -> float:
    """Seconds of ``intervals`` (disjoint) inside ``[start, end)``."""
    total = 0.0
    for a, b in intervals:
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            total += (hi - lo).total_seconds()
    return total


UPTIME_SCHEMA = {
    "provider_id": pl.Utf8,
    "boots": pl.Int64,
    "restarts": pl.Int64,
    "uptime_s": pl.Float64,
    "uptime_pct": pl.Float64,
    "version": pl.Utf8,
}


def uptime_by_provider(db: Db, start: datetime, end: datetime, max_gap: timedelta = MAX_GAP) -> pl.DataFrame:
    """Boots, restarts and observed uptime per provider in ``[start, end)``.

    ``boots`` counts boots first seen in the window, ``restarts`` those that followed an earlier boot of
    the same provider; ``uptime_s`` is the running time (module docstring) inside the window and
    ``uptime_pct`` its share of the window; ``version`` is that of the newest boot seen by ``end``.
    """
    boot_frame = q.boots_until(db, end)
    boots = [BootRow(**r) for r in boot_frame.iter_rows(named=True)]
    # runs of sightings matter only for boots without a process-start marker (before v247)
    unmarked = sorted({b.boot_marker for b in boots if process_start(b.boot_marker) is None})
    runs = q.sighting_runs(db, start - max_gap, end, max_gap, unmarked) if unmarked else None
    islands = [
        (r["provider_id"], r["boot_marker"], r["first_at"], r["last_at"])
        for r in (runs.iter_rows(named=True) if runs is not None else [])
    ]
    running = running_intervals(boots, islands)
    span = (end - start).total_seconds()
    providers = sorted(
        set(q.active_providers(db)) | {b.provider_id for b in boots if _touches(b, running, start)}
    )
    rows = []
    for pid in providers:
        mine = sorted((b for b in boots if b.provider_id == pid), key=_start)
        firsts = [b for b in mine if start <= b.first_seen_at < end]
        restarts = sum(1 for b in firsts if any(o.first_seen_at < b.first_seen_at for o in mine))
        up = overlap_seconds(running.get(pid, []), start, end)
        rows.append(
            {
                "provider_id": pid,
                "boots": len(firsts),
                "restarts": restarts,
                "uptime_s": up,
                "uptime_pct": up / span * 100 if span > 0 else None,
                "version": mine[-1].version if mine else None,
            }
        )
    return pl.DataFrame(rows, schema=UPTIME_SCHEMA)


def _touches(boot: BootRow, running: dict[str, list[Interval]], start: datetime) -> bool:
    """An inactive provider still belongs in the table when it ran in (or after) the window's start."""
    return boot.first_seen_at >= start or any(b >= start for _, b in running.get(boot.provider_id, []))
