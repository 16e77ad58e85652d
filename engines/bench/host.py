"""What the bench engine needs from a host, for llama-swap and for a bare OpenAI-compatible server.

`BenchHost` is the seam: the sweep never talks to llama-swap's management API directly. Two
implementations:

* `LlamaSwapHost`: in-flight state from ``/api/events``, warm via ``GET /upstream/<model>/`` (no activity
  row), unload via ``/api/models/unload/<model>``, cancel via ``/api/inflight/<id>/cancel``, version,
  ``/v1/models`` entry, llama-server ``/props`` through ``/upstream`` and GPU power from
  ``/api/performance``.
* `OpenAIHost`: a server reached directly (e.g. llama.cpp's own llama-server): in-flight state from
  ``/slots`` when it exists, no load/unload (the model is always resident), ``/props`` when present.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from connectors.llama_swap import ProtocolError, parse_timestamp
from connectors.llama_swap_api import Features, InflightTracker, LlamaSwapAPI, LlamaSwapError
from engines.bench.exact import ServerTokenizer
from engines.bench.gate import (
    BENCH_HEADER,
    InflightSnapshot,
    read_inflight_snapshot,
    read_llama_server_slots,
    request_tag,
)

log = logging.getLogger(__name__)


@dataclass
class HostInfo:
    """Identity of what was benchmarked, stored with the run."""

    kind: str
    version: dict[str, Any] = field(default_factory=dict)
    model_entry: dict[str, Any] | None = None
    props: dict[str, Any] | None = None
    hardware: dict[str, Any] | None = None


@dataclass
class ForeignWatch:
    """The host's live in-flight list during a run (from one open ``/api/events`` stream), and the ids of the
    requests seen that did not carry this run's tag. Cleanup reads `live` instead of reopening the stream."""

    active: bool = False  # the stream is open now
    connected: bool = False  # it was open at some point
    ids: set[str] = field(default_factory=set)
    detail: str = ""
    headers_known: bool = True
    tracker: InflightTracker = field(default_factory=InflightTracker)

    @property
    def count(self) -> int:
        return len(self.ids)

    def live(self) -> InflightSnapshot | None:
        """The in-flight list right now, or None when the stream is not open or has not sent its snapshot."""
        if not self.active or not self.tracker.have_snapshot:
            return None
        return InflightSnapshot(requests=tuple(self.tracker.requests.values()), source="/api/events (live)",
                                headers_known=self.headers_known)


class BenchHost(Protocol):
    kind: str
    chat_base: str  # requests go to chat_base + endpoint
    headers: dict[str, str]

    async def inflight(self) -> InflightSnapshot: ...
    async def loaded_models(self) -> set[str] | None: ...
    async def warm(self, model_id: str) -> float: ...
    async def unload(self, model_id: str) -> None: ...
    async def cancel(self, request_ids: Sequence[str]) -> int: ...
    async def describe(self, model_id: str, tag: str | None = None) -> HostInfo: ...
    async def power_samples(self) -> list[tuple[float, float]] | None: ...
    async def last_request_at(self) -> datetime | None:
        """When the host's newest request finished (None: it has served none); `LookupError` when unknowable."""
        ...

    def watch_foreign(self, tag: str) -> contextlib.AbstractAsyncContextManager[ForeignWatch]: ...

    def identify(self, tag: str) -> None:
        """From now on carry ``X-BooControl-Bench: <tag>`` on every connection to the host's API (the gate's
        in-flight reads, the run's watch), so the host can tell a benchmark holds it (the demo simulator
        pauses its synthetic traffic; real llama-swap ignores the header)."""
        ...


def _epoch(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


def power_series(gpu_stats: Any) -> list[tuple[float, float]]:
    """``/api/performance`` ``gpu_stats`` → [(epoch seconds, total watts over all GPUs)], time-sorted.

    Samples of different GPUs taken at the same instant are summed; a GPU reporting 0 W counts as 0
    (llama-swap writes 0 for missing readings, so an all-zero series means "no power reading").
    """
    by_t: dict[float, float] = {}
    for s in gpu_stats or []:
        if not isinstance(s, Mapping):
            continue
        t = _epoch(str(s.get("timestamp", "")))
        w = s.get("power_draw_w")
        if t is None or not isinstance(w, int | float):
            continue
        by_t[t] = by_t.get(t, 0.0) + float(w)
    return sorted(by_t.items())


class LlamaSwapHost:
    kind = "llama-swap"

    def __init__(self, api: LlamaSwapAPI) -> None:
        self.api = api
        self.client = api.client
        self.base = api.base
        self.chat_base = api.base
        self.headers = dict(api.headers)
        self._features: Features | None = None

    def tokenizer(self, model_id: str) -> ServerTokenizer:
        """The model's llama-server tokenizer through ``/upstream/<model>/`` (exact-length prompts)."""
        return ServerTokenizer(self.client, f"{self.base}/upstream/{quote(model_id, safe='/')}", self.headers)

    async def features(self) -> Features:
        if self._features is None:
            try:
                v = await self.api.version()
                self._features = Features.from_version(str(v.get("version") or "") or None)
            except (LlamaSwapError, httpx.HTTPError):
                self._features = Features.from_version(None)
        return self._features

    async def inflight(self) -> InflightSnapshot:
        feats = await self.features()
        if feats.number is not None and feats.number < 235:
            return InflightSnapshot(
                known=False, detail=f"llama-swap {feats.version} has no in-flight tracking (needs v235+)"
            )
        return await read_inflight_snapshot(self.client, self.base, self.api.headers)

    def identify(self, tag: str) -> None:
        self.api.headers[BENCH_HEADER] = tag  # not self.headers: the bench requests set their own tag

    async def loaded_models(self) -> set[str] | None:
        try:
            running = await self.api.running()
        except (LlamaSwapError, httpx.HTTPError) as exc:
            log.warning("cannot read /running: %s", exc)
            return None
        return {str(r.get("model")) for r in running if r.get("state") in ("ready", "starting")}

    async def warm(self, model_id: str) -> float:
        return await self.api.warm(model_id)

    async def unload(self, model_id: str) -> None:
        await self.api.unload(model_id)

    async def cancel(self, request_ids: Sequence[str]) -> int:
        n = 0
        for rid in request_ids:
            if await self.api.cancel_inflight(rid):
                n += 1
        return n

    async def describe(self, model_id: str, tag: str | None = None) -> HostInfo:
        info = HostInfo(kind=self.kind)
        headers = {BENCH_HEADER: tag} if tag else {}
        with contextlib.suppress(LlamaSwapError, httpx.HTTPError):
            info.version = await self.api.version()
        with contextlib.suppress(LlamaSwapError, httpx.HTTPError):
            for m in await self.api.models():
                if m.get("id") == model_id:
                    info.model_entry = m
                    break
        with contextlib.suppress(LlamaSwapError, httpx.HTTPError):
            info.hardware = await self.api.hardware()
        # /upstream traffic resets the model's TTL: acceptable, the model is in use by the bench anyway.
        with contextlib.suppress(httpx.HTTPError, ValueError):
            resp = await self.api.upstream_get(model_id, "props", headers)
            if resp.status_code == 200:
                info.props = _trim_props(resp.json())
        return info

    async def power_samples(self) -> list[tuple[float, float]] | None:
        try:
            perf = await self.api.performance()
        except (LlamaSwapError, httpx.HTTPError):
            return None
        series = power_series(perf.get("gpu_stats"))
        return series if any(w > 0 for _, w in series) else None

    async def last_request_at(self) -> datetime | None:
        try:
            page = await self.api.activity_page(sort="id", order="desc", limit=1)
        except (LlamaSwapError, httpx.HTTPError) as exc:
            raise LookupError(f"/api/metrics/activity: {exc}") from exc
        rows = [r for r in page.get("data") or [] if isinstance(r, Mapping)]
        if not rows:
            return None
        try:
            return parse_timestamp(str(rows[0].get("timestamp", "")))
        except ProtocolError as exc:
            raise LookupError(f"/api/metrics/activity: {exc}") from exc

    @contextlib.asynccontextmanager
    async def watch_foreign(self, tag: str) -> AsyncIterator[ForeignWatch]:
        """Follow ``/api/events`` for the block's duration and collect ids of requests not tagged ``tag``."""
        watch = ForeignWatch()
        task = asyncio.create_task(self._watch(tag, watch))
        try:
            yield watch
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _watch(self, tag: str, watch: ForeignWatch) -> None:
        try:
            async with self.api.events() as events:
                watch.active = watch.connected = True
                async for ev in events:
                    if ev.type != "inflight" or not watch.tracker.apply(ev.data):
                        continue
                    if watch.tracker.full_lists:
                        watch.headers_known = False
                        continue
                    for rid, r in watch.tracker.requests.items():
                        if request_tag(r) != tag:
                            watch.ids.add(rid)
        except LlamaSwapError as exc:
            watch.detail = f"/api/events HTTP {exc.status}"
        except httpx.HTTPError as exc:
            watch.detail = f"{type(exc).__name__}: {exc}"
        finally:
            watch.active = False


class OpenAIHost:
    """A directly reached OpenAI-compatible server (llama.cpp's llama-server, vLLM, ...)."""

    kind = "openai"

    def __init__(self, base_url: str, client: httpx.AsyncClient, headers: Mapping[str, str] | None = None):
        self.base = base_url.rstrip("/")
        self.chat_base = self.base
        self.client = client
        self.headers = dict(headers or {})

    def tokenizer(self, model_id: str) -> ServerTokenizer:
        """The server's own tokenizer (llama-server; other servers answer 404 and lengths stay calibrated)."""
        return ServerTokenizer(self.client, self.base, self.headers)

    async def inflight(self) -> InflightSnapshot:
        return await read_llama_server_slots(self.client, self.base, self.headers)

    async def loaded_models(self) -> set[str] | None:
        return None  # always resident; nothing to restore

    async def warm(self, model_id: str) -> float:
        t0 = time.monotonic()
        resp = await self.client.get(self.base + "/v1/models", headers=self.headers, timeout=60.0)
        resp.raise_for_status()
        return time.monotonic() - t0

    async def unload(self, model_id: str) -> None:
        return None

    async def cancel(self, request_ids: Sequence[str]) -> int:
        return 0  # no server-side cancel; closing the stream is what stops llama-server's generation

    async def describe(self, model_id: str, tag: str | None = None) -> HostInfo:
        info = HostInfo(kind=self.kind)
        with contextlib.suppress(httpx.HTTPError, ValueError):
            resp = await self.client.get(self.base + "/v1/models", headers=self.headers, timeout=15.0)
            if resp.status_code == 200:
                data = resp.json().get("data") or []
                info.model_entry = next(
                    (m for m in data if m.get("id") == model_id), data[0] if data else None
                )
        with contextlib.suppress(httpx.HTTPError, ValueError):
            resp = await self.client.get(self.base + "/props", headers=self.headers, timeout=15.0)
            if resp.status_code == 200:
                info.props = _trim_props(resp.json())
                build = info.props.get("build_info") if info.props else None
                if build:
                    info.version = {"version": str(build)}
        return info

    async def power_samples(self) -> list[tuple[float, float]] | None:
        return None

    async def last_request_at(self) -> datetime | None:
        raise LookupError("a directly reached OpenAI-compatible server keeps no request history")

    @contextlib.asynccontextmanager
    async def watch_foreign(self, tag: str) -> AsyncIterator[ForeignWatch]:
        yield ForeignWatch(active=False, detail="no in-flight event stream on this kind of host")

    def identify(self, tag: str) -> None:
        return None  # the requests carry the tag; a bare server has nothing else to tell


_PROPS_KEEP = (
    "model_path",
    "model_alias",
    "total_slots",
    "build_info",
    "modalities",
    "n_ctx",
    "default_generation_settings",
)


def _trim_props(props: Any) -> dict[str, Any] | None:
    """Keep the identifying parts of llama-server /props (the chat template can be kilobytes)."""
    if not isinstance(props, Mapping):
        return None
    out = {k: props[k] for k in _PROPS_KEEP if k in props}
    dgs = out.get("default_generation_settings")
    if isinstance(dgs, Mapping):
        out["default_generation_settings"] = {
            k: dgs[k] for k in ("n_ctx", "model", "speculative", "params") if k in dgs
        }
        params = out["default_generation_settings"].get("params")
        if isinstance(params, Mapping):
            out["default_generation_settings"]["params"] = {
                k: params[k]
                for k in (
                    "n_predict",
                    "temperature",
                    "top_k",
                    "top_p",
                    "min_p",
                    "samplers",
                    "speculative.n_max",
                )
                if k in params
            }
    if "chat_template" in props:
        out["chat_template_chars"] = len(str(props["chat_template"]))
    return out
