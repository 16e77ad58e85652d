"""Drive requests: one streamed chat completion, a closed-loop point, an open-loop point.

Timestamps are taken with one monotonic clock (``time.perf_counter`` unless a clock is injected). With
the engine's own transport (`engines.bench.transport.LeanTransport`) they are *wire* times: ``send`` is
the instant the request's bytes were handed to the socket and every chunk is stamped with the instant
its bytes reached the client (the transport stamps them as the event loop delivers them), so the time
the client spends queueing behind other streams' callbacks before it parses a chunk is not counted as
server latency. Events that arrived in one piece share its stamp (that is what the client really saw).
With any other transport the stamps are taken when ``stream_one`` gets the bytes. Body encoding and
JSON decoding happen outside the timed path either way.

Cancellation: every response is closed when its request ends (`_sent`); cancelling the point's
task cancels the request tasks, which closes their connections. llama-swap and llama-server treat
a closed connection as "client gone" and stop generating.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from engines.bench.gate import BENCH_HEADER
from engines.bench.metrics import RequestRecord
from engines.bench.sse import SSEDecoder
from engines.bench.transport import CLOCK, WIRE, WireTimes
from engines.bench.workload import RequestSpec

_loads: Callable[[bytes], Any]
try:  # orjson parses a stream chunk several times faster; plain json is the fallback
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads

Clock = Callable[[], float]
OnDone = Callable[[RequestRecord], None]
_DONE = b"[DONE]"


@dataclass(frozen=True)
class ChatTarget:
    """Where and how to send chat completions for one benchmark run."""

    url: str  # full URL of /v1/chat/completions
    model: str
    tag: str  # run tag, sent as X-BooControl-Bench so the host's in-flight list shows our requests
    headers: Mapping[str, str] = field(default_factory=dict)
    ignore_eos: bool = True  # llama.cpp / vLLM: run to max_tokens so output lengths are exact
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 600.0

    def request_headers(self) -> dict[str, str]:
        return {
            **self.headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",  # compression would make the proxy or client buffer chunks
            BENCH_HEADER: self.tag,
        }

    def body(self, spec: RequestSpec, seed: int | None = None) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": spec.messages(),
            "max_tokens": spec.output_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.ignore_eos:
            body["ignore_eos"] = True
        if seed is not None:
            body["seed"] = seed
        body.update(self.extra_body)
        return json.dumps(body, separators=(",", ":")).encode()


def _content_and_finish(obj: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(does this event carry generated text, its finish_reason) in one pass over ``choices``."""
    content = False
    finish = None
    for ch in obj.get("choices") or ():
        if not isinstance(ch, Mapping):
            continue
        delta = ch.get("delta")
        if isinstance(delta, Mapping) and (
            delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls")
        ):
            content = True
        elif ch.get("text"):
            content = True
        if ch.get("finish_reason"):
            finish = str(ch["finish_reason"])
    return content, finish


def _error_text(obj: Any) -> str:
    err = obj.get("error") if isinstance(obj, Mapping) else None
    if isinstance(err, Mapping):
        return str(err.get("message") or err)
    return str(err if err is not None else obj)[:500]


async def stream_one(
    client: httpx.AsyncClient,
    target: ChatTarget,
    spec: RequestSpec,
    rec: RequestRecord,
    clock: Clock = time.perf_counter,
    seed: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> RequestRecord:
    """Send one streamed chat completion and fill ``rec`` (never raises except on cancellation)."""
    body = target.body(spec, seed)
    hdrs = dict(headers) if headers is not None else target.request_headers()
    rec.target_input_tokens = spec.input_tokens
    rec.target_output_tokens = spec.output_tokens
    chunks = rec.chunks
    dec = SSEDecoder()
    loads = _loads
    # A keep-alive race: llama-server closes the connection after every streamed response, and the
    # next request can go out on that pooled connection before its FIN is noticed — by this client
    # (the request fails before any response) or by llama-swap's Go proxy (an empty-bodied 502).
    # The server never read such a request, so it is retried once (counted in ``rec.retries``);
    # ``rec.send`` stays at the first attempt, so the retry's cost is inside TTFT, never hidden.
    # The request object is built before the send instant: URL and header merging are preparation,
    # not latency (the body was encoded above for the same reason). A transport that publishes wire
    # times moves ``send`` to the instant the first attempt's bytes went out.
    request = client.build_request(
        "POST", target.url, content=body, headers=hdrs, timeout=target.timeout_s, extensions={CLOCK: clock}
    )
    rec.send = clock()
    try:
        async with asyncio.timeout(target.timeout_s):
            for attempt in (0, 1):
                got_response = False
                try:
                    async with _sent(client, request) as resp:
                        got_response = True
                        wire = resp.extensions.get(WIRE)
                        if not isinstance(wire, WireTimes):
                            wire = None
                        elif attempt == 0:
                            rec.send = wire.sent
                        rec.status = resp.status_code
                        if resp.status_code != 200:
                            text = (await resp.aread())[:1000].decode("utf-8", "replace")
                            if resp.status_code == 502 and not text.strip() and attempt == 0:
                                rec.retries += 1
                                continue
                            rec.end = clock()
                            try:
                                rec.error = f"HTTP {resp.status_code}: {_error_text(json.loads(text))}"
                            except ValueError:
                                rec.error = f"HTTP {resp.status_code}: {text.strip()[:300]}"
                            return rec
                        done = False
                        # Read to the natural end of the body (just after [DONE]) so a keep-alive connection can go
                        # back to the pool (llama-swap keeps it; a reconnect per request would count in TTFT).
                        async for raw in resp.aiter_raw():
                            now = clock() if wire is None else wire.arrival
                            for payload in dec.feed(raw):
                                if payload == _DONE:
                                    done = True
                                    rec.end = now
                                    continue
                                try:
                                    obj = loads(payload)
                                except ValueError:
                                    continue
                                content, fr = _content_and_finish(obj)
                                if content:
                                    chunks.append(now)
                                if fr:
                                    rec.finish_reason = fr
                                usage = obj.get("usage")
                                if usage:
                                    rec.usage = usage
                                timings = obj.get("timings")
                                if timings:
                                    rec.timings = timings
                                if "error" in obj and obj["error"]:
                                    rec.error = _error_text(obj)
                        if rec.end is None:
                            rec.end = clock()
                        if not done and rec.error is None and rec.finish_reason is None:
                            rec.error = "stream ended without [DONE] or finish_reason"
                except asyncio.CancelledError:
                    rec.cancelled = True
                    rec.end = None
                    raise
                except (httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError) as exc:
                    if attempt == 0 and not got_response:
                        rec.retries += 1
                        continue
                    rec.end = clock()
                    rec.error = f"{type(exc).__name__}: {exc}"[:500]
                except httpx.HTTPError as exc:
                    rec.end = clock()
                    rec.error = f"{type(exc).__name__}: {exc}"[:500]
                break
    except TimeoutError:
        rec.cancelled = False
        rec.end = clock()
        rec.error = f"timeout: no complete answer within {target.timeout_s:g} s"
    return rec


@contextlib.asynccontextmanager
async def _sent(client: httpx.AsyncClient, request: httpx.Request) -> AsyncIterator[httpx.Response]:
    """``client.stream`` for a prebuilt request: send it, yield the streaming response, always close it."""
    resp = await client.send(request, stream=True)
    try:
        yield resp
    finally:
        await resp.aclose()


Sender = Callable[[RequestSpec, RequestRecord], Awaitable[RequestRecord]]


async def run_closed_loop(
    send: Sender,
    specs: Sequence[RequestSpec],
    concurrency: int,
    clock: Clock = time.perf_counter,
    max_duration_s: float | None = None,
    on_done: OnDone | None = None,
    ramp_s: float = 0.0,
) -> list[RequestRecord]:
    """``concurrency`` workers; each sends its next request as soon as its previous one ends.

    ``ramp_s`` staggers the workers' first requests evenly over that many seconds (worker *k* starts
    at k·ramp_s/concurrency) instead of all at t = 0. After ``max_duration_s`` no new request is
    started (those already running finish)."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    records: list[RequestRecord] = []
    pending = iter(specs)
    t0 = clock()

    async def worker(k: int) -> None:
        if ramp_s > 0 and k:
            await asyncio.sleep(k * ramp_s / concurrency)
        for spec in pending:
            if max_duration_s is not None and clock() - t0 > max_duration_s:
                return
            rec = RequestRecord(index=spec.index, send=clock())
            records.append(rec)
            await send(spec, rec)
            if on_done is not None:
                on_done(rec)

    try:
        async with asyncio.TaskGroup() as tg:
            for k in range(min(concurrency, len(specs))):
                tg.create_task(worker(k))
    finally:
        records.sort(key=lambda r: r.index)
    return records


async def run_open_loop(
    send: Sender,
    specs: Sequence[RequestSpec],
    offsets: Sequence[float],
    max_concurrency: int | None = None,
    clock: Clock = time.perf_counter,
    max_duration_s: float | None = None,
    on_done: OnDone | None = None,
) -> list[RequestRecord]:
    """Send request i at ``t0 + offsets[i]`` whatever happens to earlier ones (open loop).

    ``max_concurrency`` caps outstanding requests (a safety bound on a shared host); when it is hit
    the send waits, and the wait shows up as ``schedule_lag`` (send − scheduled) instead of being
    silently hidden (coordinated omission)."""
    if len(offsets) != len(specs):
        raise ValueError("one offset per request")
    records: list[RequestRecord] = []
    sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    t0 = clock()

    async def one(spec: RequestSpec, rec: RequestRecord) -> None:
        try:
            await send(spec, rec)
        finally:
            if sem is not None:
                sem.release()
        if on_done is not None:
            on_done(rec)

    try:
        async with asyncio.TaskGroup() as tg:
            for spec, off in zip(specs, offsets, strict=True):
                if max_duration_s is not None and off > max_duration_s:
                    break
                delay = t0 + off - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                if sem is not None:
                    await sem.acquire()
                rec = RequestRecord(index=spec.index, send=clock(), scheduled=t0 + off)
                records.append(rec)
                tg.create_task(one(spec, rec))
    finally:
        records.sort(key=lambda r: r.index)
    return records
