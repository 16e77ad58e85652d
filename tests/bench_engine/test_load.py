from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from engines.bench.gate import BENCH_HEADER
from engines.bench.load import ChatTarget, run_closed_loop, run_open_loop, stream_one
from engines.bench.metrics import RequestRecord
from engines.bench.workload import RequestSpec

from .fakes import ChatServer, llama_stream, sse

pytestmark = pytest.mark.anyio

TARGET = ChatTarget(url="http://h/v1/chat/completions", model="m", tag="bc-test")
SPEC = RequestSpec(0, "hello world", 2, 5)


def client_for(chunks: list[bytes], status: int = 200) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        async def gen() -> AsyncIterator[bytes]:
            for c in chunks:
                yield c

        return httpx.Response(status, content=gen())

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("pieces", [1, 3, 50])
async def test_stream_one_reads_llama_cpp_stream(pieces: int) -> None:
    async with client_for(llama_stream(5, prompt_tokens=7, pieces=pieces)) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert rec.ok, rec.error
    assert rec.status == 200 and rec.finish_reason == "length"
    assert rec.usage == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert rec.timings is not None and rec.timings["predicted_n"] == 5
    assert rec.output_tokens == 5 and rec.prompt_tokens == 7
    # the role chunk and the finish/usage chunks are not content: 5 content chunks
    assert len(rec.chunks) == 5
    assert rec.send <= rec.chunks[0] <= rec.chunks[-1] <= (rec.end or 0)
    assert (rec.target_input_tokens, rec.target_output_tokens) == (2, 5)


async def test_request_body_and_headers() -> None:
    server = ChatServer()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:
        await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0), seed=42)
    body = server.requests[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 5 and body["ignore_eos"] is True and body["seed"] == 42
    assert body["messages"] == [{"role": "user", "content": "hello world"}]
    h = server.headers[0]
    assert h[BENCH_HEADER] == "bc-test" and h["accept-encoding"] == "identity"


async def test_http_error_is_recorded() -> None:
    async with client_for([b'{"error":{"message":"model not found"}}'], status=404) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert not rec.ok and rec.status == 404 and rec.error == "HTTP 404: model not found"


async def test_error_event_mid_stream_and_truncated_stream() -> None:
    chunks = [sse({"choices": [{"delta": {"content": "a"}}]}), sse({"error": {"message": "slot crashed"}})]
    async with client_for(chunks) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert not rec.ok and rec.error == "slot crashed"
    async with client_for(chunks[:1]) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert not rec.ok and "without [DONE]" in (rec.error or "")


async def test_transport_error_is_recorded() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(boom)) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert not rec.ok and rec.error == "ConnectError: refused" and rec.retries == 1


async def test_closed_loop_keeps_exactly_c_in_flight() -> None:
    server = ChatServer(delay_s=0.001)
    specs = [RequestSpec(i, f"p{i}", 1, 3) for i in range(12)]
    done: list[int] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:

        async def send(s: RequestSpec, r: RequestRecord) -> RequestRecord:
            return await stream_one(c, TARGET, s, r)

        recs = await run_closed_loop(send, specs, 3, on_done=lambda r: done.append(r.index))
    assert [r.index for r in recs] == list(range(12))
    assert all(r.ok for r in recs) and sorted(done) == list(range(12))
    assert server.max_open == 3 and server.open_streams == 0


async def test_open_loop_sends_on_schedule_and_records_it() -> None:
    server = ChatServer()
    specs = [RequestSpec(i, f"p{i}", 1, 2) for i in range(4)]
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:

        async def send(s: RequestSpec, r: RequestRecord) -> RequestRecord:
            return await stream_one(c, TARGET, s, r)

        recs = await run_open_loop(send, specs, [0.0, 0.01, 0.02, 0.03], max_concurrency=2)
    assert all(r.ok and r.scheduled is not None for r in recs)
    sched = [r.scheduled or 0.0 for r in recs]
    assert [round(b - a, 6) for a, b in zip(sched, sched[1:], strict=False)] == [0.01, 0.01, 0.01]
    assert all(r.send >= (r.scheduled or 0.0) for r in recs)


async def test_cancelling_a_point_closes_every_stream() -> None:
    server = ChatServer(delay_s=0.05)
    specs = [RequestSpec(i, f"p{i}", 1, 1000) for i in range(8)]
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:

        async def send(s: RequestSpec, r: RequestRecord) -> RequestRecord:
            return await stream_one(c, TARGET, s, r)

        task = asyncio.create_task(run_closed_loop(send, specs, 4))
        while server.open_streams < 4:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert server.open_streams == 0


async def test_keep_alive_race_is_retried_once_on_a_fresh_connection() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

        async def gen() -> AsyncIterator[bytes]:
            for c in llama_stream(3):
                yield c

        return httpx.Response(200, content=gen())

    async with httpx.AsyncClient(transport=httpx.MockTransport(flaky)) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert rec.ok and rec.retries == 1 and calls["n"] == 2

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert not rec.ok and rec.retries == 1 and rec.error == "ConnectError: refused"


async def test_empty_502_from_the_proxy_is_retried_once() -> None:
    calls = {"n": 0}

    def proxy(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(502)

        async def gen() -> AsyncIterator[bytes]:
            for c in llama_stream(2):
                yield c

        return httpx.Response(200, content=gen())

    async with httpx.AsyncClient(transport=httpx.MockTransport(proxy)) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert rec.ok and rec.retries == 1

    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(502))) as c:
        rec = await stream_one(c, TARGET, SPEC, RequestRecord(index=0, send=0.0))
    assert not rec.ok and rec.status == 502 and rec.retries == 1


async def test_ramp_staggers_worker_starts_in_order() -> None:
    server = ChatServer()
    specs = [RequestSpec(i, f"p{i}", 1, 2) for i in range(4)]
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:

        async def send(s: RequestSpec, r: RequestRecord) -> RequestRecord:
            return await stream_one(c, TARGET, s, r)

        recs = await run_closed_loop(send, specs, 4, ramp_s=0.2)
    starts = [r.send for r in sorted(recs, key=lambda r: r.index)]
    assert starts == sorted(starts)  # worker k waits k·ramp/c before its first request
    assert all(r.ok for r in recs)


async def test_a_request_that_takes_too_long_is_a_timeout_not_a_cancellation() -> None:
    server = ChatServer(delay_s=0.05)
    slow = ChatTarget(url="http://h/v1/chat/completions", model="m", tag="t", timeout_s=0.1)
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as c:
        rec = await stream_one(c, slow, RequestSpec(0, "x", 1, 100), RequestRecord(index=0, send=0.0))
    assert not rec.ok and not rec.cancelled and rec.error == "timeout: no complete answer within 0.1 s"
    assert server.open_streams == 0
