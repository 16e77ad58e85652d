"""Window arithmetic shared by the flows: default windows and splitting a window into UTC days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from warehouse.rollups import ceil_to, floor_to

DAY = timedelta(days=1)


def as_utc(ts: datetime) -> datetime:
    """Naive datetimes (as typed into the Prefect UI without an offset) are taken as UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def resolve_window(start: datetime | None, end: datetime | None, hours: float) -> tuple[datetime, datetime]:
    """``[start, end)`` with defaults: ``end`` = now, ``start`` = ``end - hours``."""
    e = as_utc(end) if end else datetime.now(UTC)
    s = as_utc(start) if start else e - timedelta(hours=hours)
    if e <= s:
        raise ValueError(f"empty window [{s.isoformat()}, {e.isoformat()})")
    return s, e


def split_days(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at UTC midnights, so each piece lies within one day."""
    pieces = []
    s = start
    while s < end:
        e = min(floor_to(s, DAY) + DAY, end)
        pieces.append((s, e))
        s = e
    return pieces


def days_ending(last: date, days: int) -> list[date]:
    """The ``days`` UTC dates ending with ``last``, oldest first."""
    return [last - timedelta(days=i) for i in range(days - 1, -1, -1)]


def yesterday(now: datetime | None = None) -> date:
    now = now or datetime.now(UTC)
    return (floor_to(as_utc(now), DAY) - DAY).date()


__all__ = ["as_utc", "ceil_to", "days_ending", "resolve_window", "split_days", "yesterday"]
