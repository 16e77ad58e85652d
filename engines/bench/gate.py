"""The takeover gate: a benchmark starts only on an idle host, and only when the caller said so.

Rules (all must hold, checked while the caller already holds the host's lease, `warehouse.lease`):

1. The caller passed an explicit takeover confirmation (``confirm_takeover=True`` /
   ``--yes-take-over``). There is no default that benchmarks a production host by accident.
2. The host reports **no** in-flight request. For llama-swap this is the live ``inflight`` snapshot
   that ``GET /api/events`` sends on connect (v240+: ``{"operation":"snapshot","requests":[...]}``;
   v235–v239: a plain ``{"requests":[...]}`` full list). Requests queued for a model load count.
   A busy host is asked again every second for up to ``idle_wait_s`` (`engines.bench.runner.wait_until_idle`,
   with a countdown in the progress) before the gate refuses; the engine's connections carry its run tag
   (``X-BooControl-Bench``), so the host can tell it is being taken over (the demo simulator pauses its
   synthetic traffic then).
3. When in-flight state cannot be read (llama-swap older than v235, SSE unreachable, a server with
   no ``/slots``), the gate refuses: unknown is not idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.llama_swap_api import InflightTracker, LlamaSwapError, open_events

BENCH_HEADER = "X-BooControl-Bench"
DEFAULT_IDLE_WAIT_S = 60.0  # how long the shells let the gate wait for a busy host to go idle (`runner.wait_until_idle`)


class TakeoverRefused(RuntimeError):
    """The gate said no; the message says why and what to do."""

    def __init__(self, reason: str, inflight: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.inflight = list(inflight)
        self.run_id: int | None = None  # the refused attempt's number once recorded (``bench list --all``)


@dataclass(frozen=True)
class InflightSnapshot:
    """The host's in-flight requests at one instant; ``known=False`` means it could not be read."""

    requests: tuple[Mapping[str, Any], ...] = ()
    known: bool = True
    source: str = ""
    detail: str = ""
    headers_known: bool = True  # v240+ entries carry req_headers; older full lists do not
    loaded_models: tuple[str, ...] | None = field(default=None)

    def tagged(self, tag: str) -> list[Mapping[str, Any]]:
        """Entries whose request carried ``X-BooControl-Bench: <tag>``."""
        return [r for r in self.requests if request_tag(r) == tag]

    def foreign(self, tag: str | None = None) -> list[Mapping[str, Any]]:
        return [r for r in self.requests if tag is None or request_tag(r) != tag]


def request_tag(entry: Mapping[str, Any]) -> str | None:
    headers = entry.get("req_headers")
    if not isinstance(headers, Mapping):
        return None
    want = BENCH_HEADER.lower()
    for k, v in headers.items():
        if str(k).lower() == want:
            return str(v)
    return None


def require_takeover_confirmation(confirm_takeover: bool) -> None:
    """Raise `TakeoverRefused` unless the caller explicitly confirmed the takeover: the one place the
    confirmation (``--yes-take-over`` / ``confirm_takeover``) is checked."""
    if confirm_takeover is not True:
        raise TakeoverRefused(
            "refusing to benchmark without an explicit takeover confirmation: a sweep saturates the host "
            "and every other client on it sees the slowdown (pass --yes-take-over / confirm_takeover=True)"
        )


def check_takeover(confirm_takeover: bool, snapshot: InflightSnapshot | None) -> None:
    """Raise `TakeoverRefused` unless the caller confirmed and the host is known to be idle."""
    require_takeover_confirmation(confirm_takeover)
    if snapshot is None or not snapshot.known:
        detail = f": {snapshot.detail}" if snapshot is not None and snapshot.detail else ""
        raise TakeoverRefused(f"refusing to benchmark: the host's in-flight requests cannot be read{detail}")
    if snapshot.requests:
        desc = ", ".join(
            f"{r.get('id', '?')} {r.get('method', '')} {r.get('req_path', '')} model={r.get('model', '')}".strip()
            for r in list(snapshot.requests)[:5]
        )
        more = "" if len(snapshot.requests) <= 5 else f" (+{len(snapshot.requests) - 5} more)"
        raise TakeoverRefused(
            f"refusing to benchmark: the host has {len(snapshot.requests)} request(s) in flight "
            f"[{desc}{more}]; wait until it is idle",
            snapshot.requests,
        )


async def read_inflight_snapshot(
    client: httpx.AsyncClient,
    base_url: str,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> InflightSnapshot:
    """Connect to ``/api/events`` (through `connectors.llama_swap_api.open_events`), return the first in-flight
    snapshot (with the loaded models seen in the same connection's ``modelStatus``), then disconnect. Never
    raises for a missing snapshot: returns ``known=False`` with the reason."""
    url = base_url.rstrip("/") + "/api/events"
    state = InflightTracker()
    loaded: tuple[str, ...] | None = None
    try:
        async with asyncio.timeout(timeout_s), open_events(client, base_url, headers,
                                                           connect_timeout_s=timeout_s) as events:
            async for ev in events:
                if ev.type == "modelStatus" and isinstance(ev.data, list):
                    loaded = loaded_model_ids(ev.data)
                elif ev.type == "inflight":
                    state.apply(ev.data)
                    if state.have_snapshot:
                        return InflightSnapshot(
                            requests=tuple(state.requests.values()),
                            source=url,
                            headers_known=not state.full_lists,
                            loaded_models=loaded,
                        )
            return InflightSnapshot(known=False, source=url, detail="event stream ended before a snapshot")
    except TimeoutError:
        return InflightSnapshot(
            known=False,
            source=url,
            detail=f"no inflight snapshot within {timeout_s:.0f} s (llama-swap older than v235?)",
        )
    except LlamaSwapError as exc:
        return InflightSnapshot(known=False, source=url, detail=f"HTTP {exc.status} {exc.message}")
    except httpx.HTTPError as exc:
        return InflightSnapshot(known=False, source=url, detail=f"{type(exc).__name__}: {exc}")


def loaded_model_ids(model_status: Sequence[Any]) -> tuple[str, ...]:
    """Local models a ``modelStatus`` message lists as ready or starting (peers' models excluded)."""
    return tuple(
        str(m.get("id"))
        for m in model_status
        if isinstance(m, Mapping) and m.get("state") in ("ready", "starting") and not m.get("peerID")
    )


async def read_llama_server_slots(
    client: httpx.AsyncClient, base_url: str, headers: Mapping[str, str] | None = None
) -> InflightSnapshot:
    """A bare llama-server has no in-flight list; its ``/slots`` says which slots are processing."""
    url = base_url.rstrip("/") + "/slots"
    try:
        resp = await client.get(url, headers=dict(headers or {}), timeout=10.0)
    except httpx.HTTPError as exc:
        return InflightSnapshot(known=False, source=url, detail=f"{type(exc).__name__}: {exc}")
    if resp.status_code != 200:
        return InflightSnapshot(
            known=False, source=url, detail=f"HTTP {resp.status_code} (start llama-server with --slots?)"
        )
    try:
        slots = resp.json()
    except ValueError:
        return InflightSnapshot(known=False, source=url, detail="/slots did not return JSON")
    busy = tuple(
        {"id": f"slot-{s.get('id')}", "method": "POST", "req_path": "(slot)", "model": ""}
        for s in slots
        if isinstance(s, Mapping) and s.get("is_processing")
    )
    return InflightSnapshot(requests=busy, source=url, headers_known=False)
