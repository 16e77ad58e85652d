"""Canary probes: one one-token request to every *loaded* model of every host, never one that would load a model.

A probe cycle (``probe_fleet``), per host, all hosts concurrently (at most ``concurrency`` at a time):

1. **Skip** a host whose kind has no model states (an OpenAI-compatible API: "loaded" means nothing there) or
   that is under a host lease (a benchmark, an eval, an action holds it: ``leased`` names the holder).
2. Read the host's own model states (``GET /running``). Only models in ``ready`` are probed.
3. Note the newest activity id, then for each ready model: read ``/running`` **again right before** its request
   and probe only if the model is still ``ready`` (a TTL unload or a swap in between means no probe, recorded as
   not probed). The request (the official ``openai`` client, streaming, ``max_tokens: 1``) is sent straight
   after; TTFT is the time to the first content chunk. A window of a few milliseconds remains between the check
   and llama-swap routing the request: if the model was unloaded in exactly that window, llama-swap would load
   it — nothing over HTTP can close that window (llama-swap has no "only if loaded" flag).
4. Find the activity row each probe made (newest-first page: above the noted id, same model, at most one output
   token), so user statistics leave it out (``warehouse.queries.canaries.not_a_probe``).

No Prefect here: ``flows/canary.py`` calls ``probe_fleet`` and stores the cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import httpx
import openai
from sqlalchemy import Engine

from connectors.llama_swap import ProtocolError, parse_activity
from connectors.llama_swap_api import LlamaSwapAPI, LlamaSwapError
from core.providers import Provider
from warehouse.queries import canaries as q
from warehouse.queries.canaries import ProbeRow

PROMPT = "Reply with one word: ok"
HEADER = "X-BooControl-Canary"  # marks the request for anyone reading captures or proxy logs
MATCH_TRIES = 5  # reads of the activity list while a probe's row is not there yet
MATCH_WAIT_S = 0.2


@dataclass
class HostResult:
    provider_id: str
    probes: list[ProbeRow] = field(default_factory=list)
    skipped: str | None = None  # why the host was not probed at all
    not_probed: list[str] = field(default_factory=list)  # ready at first, not ready right before its probe


@dataclass(frozen=True)
class Cycle:
    started_at: datetime
    finished_at: datetime
    hosts: tuple[HostResult, ...]

    @property
    def probes(self) -> list[ProbeRow]:
        return [p for h in self.hosts for p in h.probes]

    @property
    def skipped(self) -> dict[str, str]:
        out = {h.provider_id: h.skipped for h in self.hosts if h.skipped}
        for h in self.hosts:
            if h.not_probed and not h.skipped:
                out[h.provider_id] = "not ready right before its probe: " + ", ".join(h.not_probed)
        return out


def _now() -> datetime:
    return datetime.now(UTC)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


async def ready_models(api: LlamaSwapAPI) -> dict[str, str]:
    """The host's own model states (``/running`` lists every model that is not stopped)."""
    return {str(r.get("model")): str(r.get("state")) for r in await api.running()}


def openai_client(provider: Provider, environ: Mapping[str, str] | None, timeout_s: float) -> openai.AsyncOpenAI:
    """The official client for one host's OpenAI-compatible routes, marked as canary traffic, no retries."""
    key = provider.api_key(environ) or "none"  # the client sends it as the bearer token; never logged
    return openai.AsyncOpenAI(base_url=provider.spec.openai_base_url(provider.base_url), api_key=key,
                              max_retries=0, timeout=timeout_s, default_headers={HEADER: "1"})


async def probe_model(oa: openai.AsyncOpenAI, provider_id: str, model_id: str) -> ProbeRow:
    """One streaming one-token chat request; TTFT to the first content chunk."""
    sent_at = _now()
    t0 = time.perf_counter()
    ttft: float | None = None
    try:
        stream = await oa.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": PROMPT}], max_tokens=1, temperature=0,
            stream=True)
        async for chunk in stream:
            if ttft is None and any(c.delta is not None and (c.delta.content or getattr(c.delta, "reasoning_content",
                                                                                       None))
                                    for c in chunk.choices):
                ttft = (time.perf_counter() - t0) * 1000
        total = (time.perf_counter() - t0) * 1000
        if ttft is None:  # an answer without any content chunk: the first token is the end
            ttft = total
        return ProbeRow(provider_id, model_id, sent_at, True, round(ttft, 3), round(total, 3), 200, None)
    except openai.APIStatusError as exc:
        total = (time.perf_counter() - t0) * 1000
        return ProbeRow(provider_id, model_id, sent_at, False, None, round(total, 3), exc.status_code,
                            _short(exc))
    except (TimeoutError, openai.APIError, httpx.HTTPError) as exc:
        total = (time.perf_counter() - t0) * 1000
        return ProbeRow(provider_id, model_id, sent_at, False, None, round(total, 3), None, _short(exc))


async def _newest_id(api: LlamaSwapAPI) -> int:
    page = await api.activity_page(limit=1, sort="id", order="desc")
    rows = page.get("data") or []
    return int(rows[0]["id"]) if rows and isinstance(rows[0].get("id"), int) else 0


def _host_offset_s(api: LlamaSwapAPI) -> float:
    """Best guess of ``host clock - our clock`` (the middle of the bounds from its Date headers; 0 unknown)."""
    lo, hi = api.clock.lo, api.clock.hi
    return (lo + hi) / 2 if lo is not None and hi is not None else 0.0


async def match_rows(api: LlamaSwapAPI, probes: Sequence[ProbeRow], after_id: int,
                     tries: int = MATCH_TRIES, wait_s: float = MATCH_WAIT_S) -> list[ProbeRow]:
    """Each probe with the id and timestamp of the activity row it made, as far as found: among the rows above
    ``after_id`` of its model (not given to another probe), the one whose time on the host is nearest the probe's
    end (whole seconds: llama-swap's timestamps may have no fraction), a row of at most one output token first
    (servers that honour ``max_tokens``), then the lowest id."""
    out = list(probes)
    for attempt in range(tries):
        page = await api.activity_page(limit=max(50, 4 * len(probes)), sort="id", order="desc")
        rows = []
        for entry in page.get("data") or []:
            try:
                rows.append(parse_activity(entry, api.provider.id, ""))
            except ProtocolError:
                continue
        offset = timedelta(seconds=_host_offset_s(api))
        taken: set[int] = {p.activity_upstream_id for p in out if p.activity_upstream_id is not None}
        for i, p in enumerate(out):
            if p.activity_upstream_id is not None:
                continue
            ended = p.sent_at + timedelta(milliseconds=p.total_ms or 0.0) + offset  # on the host's clock
            mine = [a for a in rows if a.upstream_id > after_id and a.upstream_id not in taken
                    and a.model_id == p.model_id]
            if not mine:
                continue
            a = min(mine, key=lambda a: (round(abs((a.finished_at - ended).total_seconds())), a.output_tokens > 1,
                                         a.upstream_id))
            out[i] = replace(p, activity_upstream_id=a.upstream_id, activity_finished_at=a.finished_at)
            taken.add(a.upstream_id)
        if all(p.activity_upstream_id is not None for p in out) or attempt == tries - 1:
            break
        await asyncio.sleep(wait_s)
    return out


LeaseCheck = Callable[[str], Awaitable[str | None]]  # provider -> "holder (purpose)" while under a host lease


async def probe_host(provider: Provider, client: httpx.AsyncClient, *, leased: Mapping[str, str],
                     lease_check: LeaseCheck | None = None, environ: Mapping[str, str] | None = None,
                     timeout_s: float = 30.0) -> HostResult:
    res = HostResult(provider.id)
    if not provider.spec.host_operations:
        res.skipped = f"kind {provider.kind}: no model states to tell a loaded model from one that would load"
        return res
    holder = leased.get(provider.id)
    if holder is None and lease_check is not None:  # a lease taken since the cycle started
        holder = await lease_check(provider.id)
    if holder is not None:
        res.skipped = f"host lease held by {holder}"
        return res
    api = LlamaSwapAPI(provider, client, environ)
    try:
        states = await ready_models(api)
        ready = sorted(m for m, s in states.items() if s == "ready")
        if not ready:
            res.skipped = "no model loaded"
            return res
        after_id = await _newest_id(api)
        async with openai_client(provider, environ, timeout_s) as oa:
            for model_id in ready:
                now_states = await ready_models(api)  # the host's own states, right before this model's request
                if now_states.get(model_id) != "ready":
                    res.not_probed.append(model_id)
                    continue
                res.probes.append(await probe_model(oa, provider.id, model_id))
        if res.probes:
            res.probes = await match_rows(api, res.probes, after_id)
    except (LlamaSwapError, httpx.HTTPError, ValueError, KeyError) as exc:
        res.skipped = f"unreachable: {_short(exc)}"
    return res


async def probe_fleet(providers: Sequence[Provider], client: httpx.AsyncClient, *, leased: Mapping[str, str],
                      lease_check: LeaseCheck | None = None, environ: Mapping[str, str] | None = None,
                      concurrency: int = 64, timeout_s: float = 30.0) -> Cycle:
    """One canary cycle over ``providers`` (see the module doc)."""
    started = _now()
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(p: Provider) -> HostResult:
        async with sem:
            return await probe_host(p, client, leased=leased, lease_check=lease_check, environ=environ,
                                    timeout_s=timeout_s)

    results = await asyncio.gather(*(one(p) for p in providers))
    return Cycle(started, _now(), tuple(results))


class CycleRunning(RuntimeError):
    """Another canary cycle is still running (a slow fleet, or two schedulers): this one does nothing."""


def run_cycle(engine: Engine, providers: Sequence[Provider], *, environ: Mapping[str, str] | None = None,
              concurrency: int = 64, timeout_s: float = 30.0) -> tuple[int, Cycle]:
    """One canary cycle, stored (``canary_cycles`` + ``canary_probes``): (cycle id, the cycle).

    Only one cycle runs at a time (a Postgres advisory lock; `CycleRunning` otherwise), so a cycle slower than
    its schedule never doubles the probes. Host leases are read once at the start and again for each host right
    before it is probed."""
    with engine.connect() as lock_conn:
        got = q.try_cycle_lock(lock_conn)
        lock_conn.commit()  # a session lock: no transaction stays open for the minutes of a cycle
        if not got:
            raise CycleRunning("the previous canary cycle is still running")
        try:
            return _run_cycle(engine, providers, environ=environ, concurrency=concurrency, timeout_s=timeout_s)
        finally:
            q.release_cycle_lock(lock_conn)
            lock_conn.commit()


def _run_cycle(engine: Engine, providers: Sequence[Provider], *, environ: Mapping[str, str] | None,
               concurrency: int, timeout_s: float) -> tuple[int, Cycle]:
    leased = q.held_hosts(engine)

    async def check(provider_id: str) -> str | None:
        return (await asyncio.to_thread(q.held_hosts, engine, provider_id)).get(provider_id)

    async def go() -> Cycle:
        limits = httpx.Limits(max_connections=max(concurrency * 2, 10), max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits) as client:
            return await probe_fleet(providers, client, leased=leased, lease_check=check, environ=environ,
                                     concurrency=concurrency, timeout_s=timeout_s)

    cycle = asyncio.run(go())
    with engine.begin() as conn:
        cycle_id = q.store_cycle(conn, cycle.started_at, cycle.finished_at, len(providers), cycle.probes,
                                  cycle.skipped)
    return cycle_id, cycle
