"""An instant OpenAI-compatible upstream with fault injection, for the gateway's tests and benchmark.

Raw asyncio protocol (no framework, HTTP/1.1 keep-alive), so its own cost is small and constant:

* ``POST /v1/chat/completions`` and ``/v1/completions``: ``stream: true`` -> SSE (chunked), the role chunk and
  first content chunk at once, then ``max_tokens - 1`` content chunks every ``itl_s`` (all at once when 0),
  then the finish chunk, a usage chunk and ``[DONE]``; otherwise one JSON answer with ``usage``.
* ``POST /v1/embeddings``: one 4-dimensional vector per input.
* ``GET /v1/models``: the configured model ids.

Fault modes (``Upstream.mode``, changeable while it runs): ``ok``; ``die_mid_stream`` (a stream sends its first
content chunks, then the connection is closed); ``silent`` (reads the request, never answers); ``status_500``;
``status_429`` (with ``Retry-After: 1``). Every request is counted per path (``hits``), with the model it asked
for (``models``), so tests can say exactly where a request went.

Run standalone (benchmark): ``python -m tests.gateway.upstream --port 18600 [--itl-ms 0] [--cpu 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.raw_http import SSE_HEAD, RequestProtocol, chunk, json_response


def _sse(obj: object) -> bytes:
    return chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


def _json(obj: object, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return json_response(obj, status, extra, separators=(",", ":"))


@dataclass
class UpstreamState:
    models: tuple[str, ...] = ("instant",)
    mode: str = "ok"
    itl_s: float = 0.0
    die_after: int = 2  # content chunks sent before die_mid_stream closes the connection
    hits: Counter[str] = field(default_factory=Counter)
    asked: list[str] = field(default_factory=list)  # the model of every completion/embedding request


class _Protocol(RequestProtocol):
    def __init__(self, state: UpstreamState) -> None:
        super().__init__()
        self.state = state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self, method: str, path: str, body: bytes) -> None:
        t, st = self.transport, self.state
        assert t is not None
        st.hits[path] += 1
        if method == "GET" and path.startswith("/v1/models"):
            t.write(_json({"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"}
                                                      for m in st.models]}))
            return
        if method != "POST":
            t.write(_json({"error": {"message": "not found"}}, "404 Not Found"))
            return
        req: dict[str, Any] = json.loads(body or b"{}")
        st.asked.append(str(req.get("model")))
        if st.mode == "silent":
            return
        if st.mode == "status_500":
            t.write(_json({"error": {"message": "upstream exploded"}}, "500 Internal Server Error"))
            return
        if st.mode == "status_429":
            t.write(_json({"error": {"message": "too many requests"}}, "429 Too Many Requests", b"Retry-After: 1\r\n"))
            return
        model = str(req.get("model"))
        if path.startswith("/v1/embeddings"):
            inputs = req.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            t.write(_json({"object": "list", "model": model,
                           "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3, 0.4]}
                                    for i in range(len(items))],
                           "usage": {"prompt_tokens": len(items), "total_tokens": len(items)}}))
            return
        chat = path.startswith("/v1/chat/completions")
        n = max(1, int(req.get("max_tokens") or 16))
        if not req.get("stream"):
            choice: dict[str, Any] = ({"index": 0, "message": {"role": "assistant", "content": " tok" * n},
                                       "finish_reason": "length"} if chat else
                                      {"index": 0, "text": " tok" * n, "finish_reason": "length"})
            t.write(_json({"id": "x", "object": "chat.completion" if chat else "text_completion", "created": 0,
                           "model": model, "choices": [choice],
                           "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}}))
            return
        obj = "chat.completion.chunk" if chat else "text_completion"

        def piece(content: str | None, finish: str | None = None, role: bool = False) -> bytes:
            if chat:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else (
                    {"content": content} if content is not None else {})
                c: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                c = {"index": 0, "text": content or "", "finish_reason": finish}
            return _sse({"id": "x", "object": obj, "created": 0, "model": model, "choices": [c]})

        def finish() -> bytes:
            usage = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
            return (piece(None, "length") + _sse({"id": "x", "object": obj, "created": 0, "model": model,
                                                   "choices": [], "usage": usage})
                    + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

        content = piece(" tok")
        t.write(SSE_HEAD + (piece(None, role=True) if chat else b"") + content)
        if st.mode == "die_mid_stream":
            t.write(content * (st.die_after - 1))
            self.loop.call_soon(t.abort)
            return
        if st.itl_s <= 0:
            t.write(content * (n - 1) + finish())
            return

        def tick(left: int) -> None:
            if t.is_closing():
                return
            if left > 0:
                t.write(content)
                self.timer = self.loop.call_later(st.itl_s, tick, left - 1)
            else:
                t.write(finish())
                self.timer = None

        self.timer = self.loop.call_later(st.itl_s, tick, n - 1)


async def serve(state: UpstreamState, sock: socket.socket, started: threading.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(state), sock=sock, backlog=4096)
    async with server:
        if started is not None:
            started.set()
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()


@dataclass
class RunningUpstream:
    base_url: str  # the server root (a provider's base_url); the OpenAI base is base_url + "/v1"
    state: UpstreamState
    port: int


@contextmanager
def run_upstream(state: UpstreamState | None = None, port: int = 0) -> Iterator[RunningUpstream]:
    """Serve on 127.0.0.1 in a thread until the block ends. ``port`` lets a test bring one back on the same port."""
    st = state or UpstreamState()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = int(sock.getsockname()[1])
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    th = threading.Thread(target=lambda: loop.run_until_complete(serve(st, sock, started, stop)), daemon=True)
    th.start()
    assert started.wait(10), "upstream did not start"
    try:
        yield RunningUpstream(f"http://127.0.0.1:{port}", st, port)
    finally:
        loop.call_soon_threadsafe(stop.set)
        th.join(10)
        loop.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--itl-ms", type=float, default=0.0)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    a = ap.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", a.port))
    try:
        import uvloop

        uvloop.run(serve(UpstreamState(itl_s=a.itl_ms / 1000.0), sock))
    except ImportError:
        asyncio.run(serve(UpstreamState(itl_s=a.itl_ms / 1000.0), sock))


if __name__ == "__main__":
    main()
