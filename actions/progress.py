"""An action's status line: where it is (queued → running → done/failed), for how long, and what it waits for.

Pure functions (no Streamlit, no I/O). The caller reads `warehouse.queries.actions.action_progress` (the row,
the database clock, the host lease, the target model's state) plus the model's measured load times and the
provider's in-flight requests, and gets one plain-text line back (the UI escapes and decorates it).

What a waiting action can be waiting for, in the order it is checked:

* **queued**: the host lease held by someone else (a benchmark, an eval, another executor: named with its
  purpose and for how long), earlier actions of the same host, or no executor at all;
* **running** (warm): in-flight requests on the loaded models, which llama-swap lets finish before it evicts
  one (its groups, which decide what it evicts, are not exposed over HTTP), the model loading for N s against its measured load time, or the model's server not
  answering yet although llama-swap reports it ready.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from warehouse.queries.actions import FINAL, ActionProgress

EXECUTOR_HOLDER_PREFIX = "actions@"  # `warehouse.lease.holder_id("actions")`
NO_EXECUTOR_AFTER_S = 30.0  # a queued action nobody has claimed for this long: say the executor may be down
SLOW_FACTOR = 2.0  # a load this many times its measured time is called out as slow


@dataclass(frozen=True)
class StatusLine:
    action_id: int
    status: str  # queued | running | succeeded | failed | refused
    text: str  # plain text, one line
    done: bool


def seconds(s: float | None) -> str:
    """``0.4 s``, ``3.2 s``, ``25 s``, ``4m 05s`` (a status line's durations)."""
    if s is None:
        return "?"
    s = max(float(s), 0.0)
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    m, sec = divmod(int(s), 60)
    return f"{m}m {sec:02d}s"


def measured_load_s(load_ms: Iterable[float | None]) -> float | None:
    """The median of a model's measured load times (ms, unmeasured ones skipped), in seconds."""
    known = [float(v) for v in load_ms if v is not None]
    return statistics.median(known) / 1000 if known else None


def _what(p: ActionProgress) -> str:
    return f"#{p.id} {p.action.replace('_', ' ')}" + (f" {p.target}" if p.target else "")


def _queued_reason(p: ActionProgress, waited_s: float) -> str:
    holder = p.lease_holder
    if holder is not None and not holder.startswith(EXECUTOR_HOLDER_PREFIX):
        why = f"waiting for the host lease held by {holder}"
        why += f" ({p.lease_purpose})" if p.lease_purpose else ""
        why += f" for {seconds(p.lease_held_s)}"
        if p.lease_expired:
            why += "; it stopped heartbeating, the executor takes the lease when it expires"
        return why
    if p.ahead:
        why = f"behind {p.ahead} earlier action{'s' if p.ahead != 1 else ''} on {p.provider_id}"
        if holder is not None and p.lease_purpose and p.lease_purpose.startswith("action "):
            why += f" (running: {p.lease_purpose})"
        return why
    if holder is None and waited_s > NO_EXECUTOR_AFTER_S:
        return "no action executor has picked it up: is `boocontrol up` (or `boocontrol actions run`) running?"
    return "waiting for the action executor"


def _running_detail(
    p: ActionProgress, ran_s: float, load_s: float | None, inflight_by_model: Mapping[str, int]
) -> str:
    if p.action != "warm" or not p.target:
        if p.action in ("unload", "cancel_inflight") and p.target and inflight_by_model.get(p.target):
            n = inflight_by_model[p.target]
            return f"{n} in-flight request{'s' if n != 1 else ''} on {p.target}"
        return ""
    measured = f"a measured ~{seconds(load_s)}" if load_s is not None else "no load time measured yet"
    if p.target_state == "starting":
        since = p.target_state_since or p.started_at
        loading = (p.now - since).total_seconds() if since is not None else ran_s
        if load_s is None:
            return f"loading for {seconds(loading)} ({measured})"
        slow = loading > SLOW_FACTOR * load_s
        return f"loading for {seconds(loading)} of {measured}" + (" (slower than usual)" if slow else "")
    if p.target_state == "ready":
        return "llama-swap reports it ready; waiting for its server to answer"
    others = {m: n for m, n in inflight_by_model.items() if n and m != p.target}
    if others:
        busy = ", ".join(f"{n} on {m}" for m, n in sorted(others.items()))
        total = sum(others.values())
        return (f"waiting for {total} in-flight request{'s' if total != 1 else ''} on loaded models ({busy}): "
                f"llama-swap lets a model's requests finish before it evicts it")
    return f"asking llama-swap to load it ({measured})"


def _result(p: ActionProgress) -> str:
    r = p.result or {}
    if p.action in ("warm", "unload") and r.get("state"):
        return f"{r.get('model', p.target)} is {r['state']}"
    if p.action == "unload_all":
        gone = r.get("unloaded") or []
        return "unloaded " + (", ".join(str(m) for m in gone) if gone else "nothing (no model was loaded)")
    if p.action == "cancel_inflight" and r.get("cancelled"):
        return f"request {r['cancelled']} cancelled"
    return ""


def describe(
    p: ActionProgress, load_s: float | None = None, inflight_by_model: Mapping[str, int] | None = None
) -> StatusLine:
    """The status line of one action: ``#12 warm qwen: running for 4.1 s — loading for 3.9 s of a measured ~3.0 s``.

    ``load_s`` is the target model's measured load time (`measured_load_s`), ``inflight_by_model`` the
    provider's in-flight requests per model now; both only matter while the action waits or runs."""
    busy = inflight_by_model or {}
    head = _what(p)
    if p.status == "queued":
        waited = (p.now - p.requested_at).total_seconds()
        eta = ""
        if p.action == "warm" and load_s is not None and p.target_state not in ("ready", "starting"):
            eta = f"; once it runs, the load should take ~{seconds(load_s)} (measured)"  # the load ETA
        return StatusLine(p.id, p.status,
                          f"{head}: queued for {seconds(waited)}: {_queued_reason(p, waited)}{eta}", False)
    if p.status == "running":
        ran = (p.now - (p.started_at or p.requested_at)).total_seconds()
        detail = _running_detail(p, ran, load_s, busy)
        return StatusLine(p.id, p.status, f"{head}: running for {seconds(ran)}" + (f": {detail}" if detail else ""),
                          False)
    end = p.finished_at or p.now
    ran = (end - (p.started_at or p.requested_at)).total_seconds()
    waited = ((p.started_at or p.requested_at) - p.requested_at).total_seconds()
    queue = f" (queued {seconds(waited)})" if waited >= 0.5 else ""
    if p.status == "succeeded":
        result = _result(p)
        return StatusLine(p.id, p.status, f"{head}: done in {seconds(ran)}{queue}" + (f": {result}" if result else ""),
                          True)
    if p.status in FINAL:
        verb = "refused" if p.status == "refused" else f"failed after {seconds(ran)}"
        return StatusLine(p.id, p.status, f"{head}: {verb}{queue}: {p.error or 'no error message'}", True)
    return StatusLine(p.id, p.status, f"{head}: {p.status}", False)
