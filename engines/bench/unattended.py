"""The unattended rule: a scheduled benchmark nobody watches runs only on a host that has been idle a while.

An operator who starts a benchmark by hand has looked at the host; a schedule has not. So, besides the host
lease and the takeover gate that every run passes, an unattended run needs the host to have been idle for
``idle_s`` seconds (`core.settings.Settings.bench_unattended_idle_seconds`): nothing in flight or queued now,
and the host's newest request finished at least that long ago. When it cannot be told, the answer is no.
A run that may not start is recorded as ``skipped`` with the reason (`engines.bench.service`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from engines.bench.gate import InflightSnapshot, TakeoverRefused
from engines.bench.host import BenchHost


class BenchSkipped(TakeoverRefused):
    """An unattended run did not start (lease held, host busy or not idle long enough); the message says why."""


def idle_verdict(snapshot: InflightSnapshot, last_request_at: datetime | None, now: datetime,
                 idle_s: float) -> str | None:
    """Why an unattended run may not start now, or None when it may."""
    if not snapshot.known:
        return f"the host's in-flight requests cannot be read ({snapshot.detail or 'unknown'})"
    if snapshot.requests:
        return f"the host has {len(snapshot.requests)} request(s) in flight or queued"
    if last_request_at is not None:
        idle_for = (now - last_request_at).total_seconds()
        if idle_for < idle_s:
            return (f"the host's last request finished {max(idle_for, 0.0):.0f} s ago; an unattended run needs "
                    f"{idle_s:g} s of idle")
    return None


async def idle_refusal(host: BenchHost, idle_s: float, now: datetime | None = None) -> str | None:
    """`idle_verdict` for a live host (reads its in-flight list and its newest request)."""
    snapshot = await host.inflight()
    try:
        last = await host.last_request_at()
    except LookupError as exc:
        return f"cannot tell how long the host has been idle: {exc}"
    return idle_verdict(snapshot, last, now or datetime.now(UTC), idle_s)
