"""`ask` sends a request once more when the kept-alive connection it went out on was closed or reset by the
server before any answer (uvicorn closes a connection after an error response on it): a real asyncio server that
drops the first request's connection and answers the second."""

from __future__ import annotations

import asyncio
import json

import httpx

from engines.evals.completions import ask

SAMPLING = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8}
ANSWER = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


async def _serve(drop_first: int) -> tuple[asyncio.Server, list[int]]:
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        seen.append(len(seen) + 1)
        if len(seen) <= drop_first:
            writer.close()  # no answer at all: what a closed kept-alive connection looks like to the client
            return
        body = json.dumps(ANSWER).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


def _ask(drop_first: int) -> tuple[str | None, str | None, int]:
    async def main() -> tuple[str | None, str | None, int]:
        server, seen = await _serve(drop_first)
        port = server.sockets[0].getsockname()[1]
        async with server, httpx.AsyncClient() as client:
            a = await ask(client, f"http://127.0.0.1:{port}/v1/chat/completions", {}, "m", "hi", SAMPLING, 1, 10.0)
        return a.text, a.error, len(seen)

    return asyncio.run(main())


def test_a_dropped_connection_is_asked_once_more() -> None:
    assert _ask(drop_first=1) == ("ok", None, 2)


def test_a_server_that_keeps_dropping_is_an_error_after_the_second_try() -> None:
    text, error, tries = _ask(drop_first=5)
    assert (text, tries) == (None, 2)
    assert error is not None and error.startswith("RemoteProtocolError")
