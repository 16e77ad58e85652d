"""LeanTransport against real sockets: the instant upstream, and a raw server for the awkward framings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from engines.bench import transport
from engines.bench.eventloop import new_event_loop
from engines.bench.load import ChatTarget, stream_one
from engines.bench.metrics import RequestRecord
from engines.bench.transport import WIRE, LeanTransport, WireTimes
from engines.bench.workload import RequestSpec

from . import instant_server

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def instant(itl_ms: float = 0.0) -> AsyncIterator[str]:
    instant_server.STATS.update(connections=0, requests=0)
    server = await asyncio.get_running_loop().create_server(
        lambda: instant_server.Upstream(itl_ms / 1000), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


@contextlib.asynccontextmanager
async def raw_server(
    reply: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reply(r, w)
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def read_request(r: asyncio.StreamReader) -> bytes:
    head = await r.readuntil(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    return head + (await r.readexactly(n) if n else b"")


async def test_streams_and_reuses_keep_alive_connections() -> None:
    async with instant() as base, httpx.AsyncClient(transport=LeanTransport()) as c:
        target = ChatTarget(url=base + "/v1/chat/completions", model="m", tag="t")
        for i in range(5):
            rec = await stream_one(c, target, RequestSpec(i, "hello", 1, 7), RequestRecord(index=i, send=0.0))
            assert rec.ok and rec.output_tokens == 7 and len(rec.chunks) == 7 and rec.retries == 0
        models = await c.get(base + "/v1/models")
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "instant"
        missing = await c.get(base + "/nope")
        assert missing.status_code == 404 and missing.json() == {"error": "not found"}
        stats = (await c.get(base + "/stats")).json()
    assert stats["connections"] == 1 and stats["requests"] == 8


async def test_request_is_written_once_with_content_length() -> None:
    seen: list[bytes] = []

    async def reply(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(await read_request(r))
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()

    async with raw_server(reply) as base, httpx.AsyncClient(transport=LeanTransport()) as c:
        resp = await c.post(base + "/x?y=1", content=b'{"a":1}', headers={"X-T": "v"})
    assert resp.text == "ok"
    req = seen[0]
    assert req.startswith(b"POST /x?y=1 HTTP/1.1\r\n") and req.endswith(b'\r\n\r\n{"a":1}')
    assert b"\r\nContent-Length: 7\r\n" in req and b"\r\nX-T: v\r\n" in req


async def test_close_delimited_body_chunk_extensions_and_trailers() -> None:
    async def close_delimited(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello ")
        await w.drain()
        w.write(b"world")
        await w.drain()

    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
        await w.drain()
        w.write(b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        await w.drain()

    async with httpx.AsyncClient(transport=LeanTransport()) as c:
        async with raw_server(close_delimited) as base:
            assert (await c.get(base)).text == "hello world"
        async with raw_server(chunked) as base:
            assert (await c.get(base)).text == "hello world"


async def test_server_closing_before_answering_is_a_protocol_error() -> None:
    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)

    async with raw_server(hang_up) as base, httpx.AsyncClient(transport=LeanTransport()) as c:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await c.post(base, content=b"x")

    async def truncated(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        await w.drain()

    async with raw_server(truncated) as base, httpx.AsyncClient(transport=LeanTransport()) as c:
        with pytest.raises(httpx.RemoteProtocolError, match="middle of a chunked body"):
            await c.post(base, content=b"x")


async def test_connect_errors_and_https_fallback() -> None:
    async with httpx.AsyncClient(transport=LeanTransport()) as c:
        with pytest.raises(httpx.ConnectError):
            await c.get("http://127.0.0.1:9/")

    seen = []

    class Fallback(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(str(request.url))
            return httpx.Response(200, json={"via": "fallback"})

    async with httpx.AsyncClient(transport=LeanTransport(fallback=Fallback())) as c:
        assert (await c.get("https://example.test/x")).json() == {"via": "fallback"}
    assert seen == ["https://example.test/x"]


async def test_abandoned_stream_closes_its_connection() -> None:
    async with instant(itl_ms=5) as base, httpx.AsyncClient(transport=LeanTransport()) as c:
        body = json.dumps({"max_tokens": 1000}).encode()
        async with c.stream("POST", base + "/v1/chat/completions", content=body) as r:
            async for _ in r.aiter_raw():
                break
        await c.get(base + "/v1/models")
        stats = (await c.get(base + "/stats")).json()
    assert stats["connections"] == 2  # the half-read stream's connection was not reused


async def test_read_timeout_applies_to_the_head_and_plain_bodies() -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        await asyncio.sleep(5)

    async def stalls(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await w.drain()
        await asyncio.sleep(5)

    async with httpx.AsyncClient(transport=LeanTransport(), timeout=0.2) as c:
        async with raw_server(silent) as base:
            with pytest.raises(httpx.ReadTimeout, match="no response within 0.2 s"):
                await c.get(base)
        async with raw_server(stalls) as base:
            with pytest.raises(httpx.ReadTimeout, match="no data for 0.2 s"):
                await c.get(base)


HEAD_AND_A = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n"


async def _held_back_piece(hog_s: float) -> tuple[float, float, float]:
    """Read chunk A; then the server writes chunk B while a ``hog_s`` callback is queued ahead of the
    client's I/O callback. Returns (wire.sent, B's wire arrival, when the client got B)."""
    writers: list[asyncio.StreamWriter] = []
    ready = asyncio.Event()

    async def reply(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(HEAD_AND_A)
        writers.append(w)
        ready.set()
        await asyncio.sleep(5)

    async with raw_server(reply) as base, httpx.AsyncClient(transport=LeanTransport()) as c:
        async with c.stream("GET", base) as resp:
            wire = resp.extensions[WIRE]
            assert isinstance(wire, WireTimes)
            it = resp.aiter_raw()
            assert await anext(it) == b"A"
            await ready.wait()
            writers[0].write(b"1\r\nB\r\n0\r\n\r\n")  # a synchronous send: B is now in the client's socket
            asyncio.get_running_loop().call_soon(time.sleep, hog_s)  # runs before the I/O callback
            assert await anext(it) == b"B"
            return wire.sent, wire.arrival, time.perf_counter()


def test_kernel_receive_stamps_exclude_callbacks_queued_ahead_on_any_loop() -> None:
    for factory in (new_event_loop, asyncio.new_event_loop):
        with asyncio.Runner(loop_factory=factory) as r:
            sent, arrival, got = r.run(_held_back_piece(0.05))
        # SO_TIMESTAMPNS: stamped when the kernel received B, before the hog ran
        assert sent < arrival and got - arrival >= 0.05, factory


def test_without_kernel_stamps_the_stamping_loop_stamps_at_the_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "_enable_rx_timestamps", lambda sock: False)
    with asyncio.Runner(loop_factory=new_event_loop) as r:
        sent, arrival, got = r.run(_held_back_piece(0.05))
    assert sent < arrival and got - arrival >= 0.05  # stamped when the poll returned, before the hog ran
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as r:
        sent, arrival, got = r.run(_held_back_piece(0.05))
    assert sent < arrival and got - arrival < 0.05  # plain loop: stamped in the callback, after the hog


async def test_stream_one_uses_wire_times_and_the_injected_clock() -> None:
    ticks = iter(range(1, 10_000))

    def clock() -> float:
        return float(next(ticks))

    async with instant(itl_ms=1) as base, httpx.AsyncClient(transport=LeanTransport()) as c:
        target = ChatTarget(url=base + "/v1/chat/completions", model="m", tag="t")
        rec = await stream_one(c, target, RequestSpec(0, "hi", 1, 5), RequestRecord(index=0, send=0.0), clock)
    assert rec.ok and len(rec.chunks) == 5
    # Every stamp came from the injected clock, in order: the send, then one per received piece
    # (role + first content arrive together, so the first chunk shares the head's piece).
    assert rec.send == int(rec.send) and all(t == int(t) for t in rec.chunks)
    assert rec.send < rec.chunks[0] < rec.chunks[1] < rec.chunks[-1] <= (rec.end or 0)
