"""A tiny OpenAI-style streaming upstream that answers instantly, for client-overhead measurements.

Raw asyncio protocol (no framework), HTTP/1.1 keep-alive, chunked transfer encoding. For
``POST /v1/chat/completions`` it writes the response headers and the first content chunk as soon as
the request body is complete, then one content chunk every ``--itl-ms`` milliseconds until
``max_tokens`` chunks were sent, then a finish chunk, a usage chunk and ``[DONE]``. With
``--itl-ms 0`` every chunk is written at once (the client is then the only limit).
``GET /v1/models`` and ``GET /slots`` answer so `engines.bench.host.OpenAIHost` can gate and warm;
``GET /stats`` counts connections accepted and requests served (keep-alive reuse shows there).

**Known latency model** (``load_ms`` > 0, for capacity searches): the gap before each next chunk is
``itl_ms + load_ms · (streams in flight − 1)`` at the moment it is scheduled, so per-token latency grows
linearly with concurrency like a batching server's; with ``load_ms`` 0 (the default) it is constant.

Run: ``python -m tests.bench_engine.instant_server --port 18555 --itl-ms 20 [--cpu 1]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from tests.support.raw_http import SSE_HEAD, RequestProtocol, chunk, json_response

CONTENT = b'data: {"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}\n\n'
ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}\n\n'
FINISH = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
DONE = b"data: [DONE]\n\n"
C_CONTENT = chunk(CONTENT)


STATS = {"connections": 0, "requests": 0}
ACTIVE = {"streams": 0}


class Upstream(RequestProtocol):
    def __init__(self, itl_s: float, load_s: float = 0.0) -> None:
        super().__init__()
        self.itl_s = itl_s
        self.load_s = load_s
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        STATS["connections"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._stream_done()

    def _stream_done(self) -> None:
        if self.streaming:
            self.streaming = False
            ACTIVE["streams"] -= 1

    def gap(self) -> float:
        return self.itl_s + self.load_s * max(0, ACTIVE["streams"] - 1)

    def handle(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        STATS["requests"] += 1
        if method == "GET" and path.startswith("/stats"):
            self.transport.write(json_response(STATS))
        elif method == "GET" and path.startswith("/slots"):
            self.transport.write(json_response([{"id": 0, "is_processing": False}]))
        elif method == "GET" and path.startswith("/v1/models"):
            self.transport.write(json_response({"object": "list", "data": [{"id": "instant"}]}))
        elif method == "POST" and path.startswith("/v1/chat/completions"):
            n = int(json.loads(body).get("max_tokens", 16))
            self.transport.write(SSE_HEAD + chunk(ROLE) + C_CONTENT)
            self.streaming = True
            ACTIVE["streams"] += 1
            if self.itl_s <= 0 and self.load_s <= 0:
                self.transport.write(C_CONTENT * (n - 1))
                self.finish(n)
            else:
                self.timer = self.loop.call_later(self.gap(), self.tick, n - 1, n)
        else:
            self.transport.write(json_response({"error": "not found"}, "404 Not Found"))

    def tick(self, left: int, n: int) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if left > 0:
            self.transport.write(C_CONTENT)
            self.timer = self.loop.call_later(self.gap(), self.tick, left - 1, n)
        else:
            self.finish(n)

    def finish(self, n: int) -> None:
        assert self.transport is not None
        usage = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
        usage_chunk = b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
        self.transport.write(chunk(FINISH) + chunk(usage_chunk) + chunk(DONE) + b"0\r\n\r\n")
        self.timer = None
        self._stream_done()


async def serve(port: int, itl_ms: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Upstream(itl_ms / 1000.0), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    a = ap.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    asyncio.run(serve(a.port, a.itl_ms))


if __name__ == "__main__":
    main()
