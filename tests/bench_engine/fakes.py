"""In-memory doubles for the bench engine: an OpenAI-style streaming handler for httpx.MockTransport
and a `BenchHost` that records what the engine asked of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from engines.bench.gate import InflightSnapshot
from engines.bench.host import ForeignWatch, HostInfo


def sse(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def llama_stream(n_tokens: int, prompt_tokens: int = 10, pieces: int = 1) -> list[bytes]:
    """The byte chunks llama-server sends for a streamed chat completion with include_usage."""
    out = [sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]})]
    for i in range(n_tokens):
        out.append(sse({"choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}]}))
    timings = {"prompt_n": prompt_tokens, "prompt_ms": 1.5, "predicted_n": n_tokens, "predicted_ms": 2.0 * n_tokens,
               "predicted_per_second": 500.0, "prompt_per_second": 1000.0, "cache_n": 0}  # fmt: skip
    out.append(sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "timings": timings}))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": n_tokens,
        "total_tokens": prompt_tokens + n_tokens,
    }
    out.append(sse({"choices": [], "usage": usage, "timings": timings}))
    out.append(sse(b"[DONE]"))
    if pieces > 1:  # re-split the whole body at awkward boundaries
        body = b"".join(out)
        step = max(1, len(body) // (pieces * len(out)))
        out = [body[i : i + step] for i in range(0, len(body), step)]
    return out


@dataclass
class ChatServer:
    """A MockTransport handler for POST /v1/chat/completions that streams max_tokens tokens."""

    delay_s: float = 0.0  # between chunks
    fail: Callable[[dict[str, Any]], int | None] = lambda body: None  # status to fail with
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)
    open_streams: int = 0
    max_open: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        self.headers.append(request.headers)
        status = self.fail(body)
        if status:
            return httpx.Response(status, json={"error": {"message": "injected failure"}})
        chunks = llama_stream(
            int(body["max_tokens"]), prompt_tokens=len(body["messages"][0]["content"].split())
        )

        async def gen() -> AsyncIterator[bytes]:
            self.open_streams += 1
            self.max_open = max(self.max_open, self.open_streams)
            try:
                for c in chunks:
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    yield c
            finally:
                self.open_streams -= 1

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=gen())


@dataclass
class FakeHost:
    kind: str = "llama-swap"
    chat_base: str = "http://host.test"
    headers: dict[str, str] = field(default_factory=dict)
    inflight_requests: list[dict[str, Any]] = field(default_factory=list)
    known: bool = True
    loaded: set[str] = field(default_factory=set)
    evict_on_warm: bool = False
    calls: list[str] = field(default_factory=list)
    power: list[tuple[float, float]] | None = None
    last_request: datetime | None = None
    identified: list[str] = field(default_factory=list)  # tags the engine announced (`BenchHost.identify`)
    busy_polls: int = 0  # the first N in-flight reads list inflight_requests, later ones none (a host going idle)

    async def inflight(self) -> InflightSnapshot:
        self.calls.append("inflight")
        if self.busy_polls and self.calls.count("inflight") > self.busy_polls:
            return InflightSnapshot(requests=(), known=self.known, detail="fake")
        return InflightSnapshot(requests=tuple(self.inflight_requests), known=self.known, detail="fake")

    async def loaded_models(self) -> set[str] | None:
        return set(self.loaded)

    async def warm(self, model_id: str) -> float:
        self.calls.append(f"warm {model_id}")
        if self.evict_on_warm:
            self.loaded.clear()
        self.loaded.add(model_id)
        return 0.0

    async def unload(self, model_id: str) -> None:
        self.calls.append(f"unload {model_id}")
        self.loaded.discard(model_id)

    async def cancel(self, request_ids: Sequence[str]) -> int:
        self.calls.append(f"cancel {','.join(request_ids)}")
        return len(request_ids)

    async def describe(self, model_id: str, tag: str | None = None) -> HostInfo:
        return HostInfo(kind=self.kind, version={"version": "v250", "commit": "0bdb372"},
                        model_entry={"id": model_id}, props={"default_generation_settings": {"n_ctx": 4096}})  # fmt: skip

    async def power_samples(self) -> list[tuple[float, float]] | None:
        return self.power

    async def last_request_at(self) -> datetime | None:
        return self.last_request

    def identify(self, tag: str) -> None:
        self.identified.append(tag)

    @contextlib.asynccontextmanager
    async def watch_foreign(self, tag: str) -> AsyncIterator[ForeignWatch]:
        yield ForeignWatch(connected=True)
